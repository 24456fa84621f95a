"""The command sandbox's argv rendering (pure): one value, one argv element, or a refusal."""

from __future__ import annotations

import os
from pathlib import PurePosixPath
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_runtime.config.tools import CommandImplementation
from agent_runtime.tools.command import render_argv, resolve_binaries
from agent_runtime.tools.errors import CommandRefusedError, ToolConfigError


def spec(*argv: str, allow_paths: bool = False) -> CommandImplementation:
    return CommandImplementation(
        argv=list(argv), allowed_binaries=[argv[0]], allow_paths=allow_paths
    )


@given(value=st.text(min_size=0, max_size=30))
def test_a_value_is_exactly_one_argv_element_or_refused(value: str) -> None:
    template = spec("grep", "-c", "{pattern}", "notes.txt")
    unsafe = (
        value.startswith("-")
        or "\x00" in value
        or value.startswith("/")
        or ".." in PurePosixPath(value).parts
    )
    if unsafe:
        with pytest.raises(CommandRefusedError):
            render_argv("t", template, {"pattern": value})
    else:
        assert render_argv("t", template, {"pattern": value}) == ["-c", value, "notes.txt"]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("-rf", "would be read as an option"),
        ("--output=/etc/x", "would be read as an option"),
        ("../../etc/passwd", "outside the working directory"),
        ("/etc/shadow", "outside the working directory"),
        ("a\x00b", "NUL byte"),
        ("\ud800", "not valid Unicode"),
    ],
)
def test_hostile_values_are_refused_with_a_reason(value: str, reason: str) -> None:
    with pytest.raises(CommandRefusedError, match=reason):
        render_argv("t", spec("cat", "{path}"), {"path": value})


def test_metacharacters_stay_literal() -> None:
    hostile = "; rm -rf / && $(id) `id` | tee x > y *"
    assert render_argv("t", spec("echo", "{text}"), {"text": hostile}) == [hostile]


def test_a_double_dash_ends_options() -> None:
    assert render_argv("t", spec("ls", "--", "{path}"), {"path": "-la"}) == ["--", "-la"]


def test_paths_are_allowed_when_the_tool_says_so() -> None:
    assert render_argv("t", spec("cat", "{p}", allow_paths=True), {"p": "/etc/hostname"}) == [
        "/etc/hostname"
    ]


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"n": 3}, ["--count=3"]),
        ({"n": True}, ["--count=true"]),
        ({}, []),  # an absent optional argument drops its element
    ],
)
def test_scalars_fill_placeholders_inside_an_element(
    arguments: dict[str, Any], expected: list[str]
) -> None:
    assert render_argv("t", spec("head", "--count={n}"), arguments) == expected


def test_an_element_missing_only_some_arguments_is_refused() -> None:
    with pytest.raises(CommandRefusedError, match=r"missing arguments \['b'\]"):
        render_argv("t", spec("echo", "{a}:{b}"), {"a": "x"})


def test_structured_values_are_refused() -> None:
    with pytest.raises(CommandRefusedError, match="string, number or boolean"):
        render_argv("t", spec("echo", "{x}"), {"x": ["a", "b"]})


def test_binaries_resolve_to_absolute_paths_or_fail_at_build_time() -> None:
    resolved = resolve_binaries("t", ["echo"])
    assert resolved["echo"].startswith("/")
    with pytest.raises(ToolConfigError, match="not an executable file"):
        resolve_binaries("t", ["definitely-not-a-binary-xyz"])


# ----------------------------------------------------------------------------- assembled paths

PIECES = st.sampled_from([".", "..", "/", "a", "b.txt", "-", "=", "./", "../", "x/..", "%2e", ""])
piece_values = st.lists(PIECES, min_size=1, max_size=4).map("".join)


def escapes(path: str) -> bool:
    """Would `path`, taken from the working directory, name something outside it?"""
    resolved = os.path.normpath(os.path.join("/work", path))
    return not (resolved == "/work" or resolved.startswith("/work/"))


@pytest.mark.parametrize("template", ["{a}{b}", "{a}/{b}", "{a}.{b}", "prefix-{a}{b}", "{a}/x/{b}"])
@given(a=piece_values, b=piece_values)
def test_concatenated_values_never_reach_outside_the_working_directory(
    template: str, a: str, b: str
) -> None:
    try:
        argv = render_argv("t", spec("cat", "--", template), {"a": a, "b": b})
    except CommandRefusedError:
        return
    assert not escapes(argv[1]), argv


@given(a=piece_values)
def test_the_value_of_an_option_is_checked_as_a_path(a: str) -> None:
    try:
        argv = render_argv("t", spec("sort", "--output={a}"), {"a": a})
    except CommandRefusedError:
        return
    assert not escapes(argv[0].removeprefix("--output=")), argv


@given(a=piece_values)
def test_a_template_that_starts_absolute_stays_beneath_its_directory(a: str) -> None:
    try:
        argv = render_argv("t", spec("cat", "/data/{a}"), {"a": a})
    except CommandRefusedError:
        return
    resolved = os.path.normpath(argv[0])
    assert resolved == "/data" or resolved.startswith("/data/"), argv


@pytest.mark.parametrize(
    ("template", "arguments"),
    [
        ("{a}{b}", {"a": ".", "b": "./etc"}),  # each alone is harmless: "../etc" assembled
        ("{a}{b}", {"a": "x/.", "b": "./../y"}),
        ("{a}/{b}", {"a": "..", "b": "x"}),
        ("{a}{b}", {"a": "/", "b": "etc/passwd"}),
        ("--file={a}", {"a": "../secret"}),
        ("--file={a}{b}", {"a": ".", "b": "./secret"}),
        ("/data/{a}", {"a": "x/../../etc"}),
    ],
)
def test_tricks_that_only_show_once_assembled_are_refused(
    template: str, arguments: dict[str, str]
) -> None:
    with pytest.raises(CommandRefusedError, match="outside the working directory"):
        render_argv("t", spec("cat", "--", template), arguments)


def test_a_literal_absolute_template_is_allowed() -> None:
    assert render_argv("t", spec("cat", "/data/{a}"), {"a": "notes.txt"}) == ["/data/notes.txt"]


# ----------------------------------------------------------------------------- omitted arguments

POSITIONAL = ["{a}", "{b}", "{c}"]


@given(present=st.sets(st.sampled_from(["a", "b", "c"])))
def test_an_omitted_argument_never_shifts_the_others(present: set[str]) -> None:
    arguments = {name: f"value-{name}" for name in present}
    kept = len(present)
    if set("abc"[:kept]) != present:  # a gap: leaving it out would move a later value left
        with pytest.raises(CommandRefusedError, match="shift"):
            render_argv("t", spec("cmd", *POSITIONAL), arguments)
        return
    argv = render_argv("t", spec("cmd", *POSITIONAL), arguments)
    # Every element kept is at its template position: nothing moved left.
    for index, element in enumerate(argv):
        assert element == f"value-{'abc'[index]}"


@pytest.mark.parametrize(
    ("argv", "arguments", "expected"),
    [
        (["grep", "{pattern}", "{file}"], {"pattern": "x"}, ["x"]),  # trailing: nothing shifts
        (["grep", "--max-count={n}", "{pattern}"], {"pattern": "x"}, ["x"]),  # an option
        (["head", "-n", "{n}"], {}, ["-n"]),  # trailing positional after a flag
    ],
)
def test_omissions_that_shift_nothing_are_allowed(
    argv: list[str], arguments: dict[str, Any], expected: list[str]
) -> None:
    assert render_argv("t", spec(*argv), arguments) == expected


@pytest.mark.parametrize(
    ("argv", "arguments"),
    [
        (["grep", "{pattern}", "{file}"], {"file": "notes.txt"}),  # file would become pattern
        (["cp", "{source}", "dest.txt"], {}),  # the literal would move left
        (["sort", "-o", "{out}", "{in}"], {"in": "data.txt"}),  # -o would take the input
    ],
)
def test_omissions_that_would_shift_the_others_are_refused(
    argv: list[str], arguments: dict[str, Any]
) -> None:
    with pytest.raises(CommandRefusedError, match="shift the arguments after it"):
        render_argv("t", spec(*argv), arguments)
