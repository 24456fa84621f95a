"""The command sandbox's argv rendering (pure): one value, one argv element, or a refusal."""

from __future__ import annotations

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
