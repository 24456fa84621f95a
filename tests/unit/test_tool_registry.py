"""The registry: schema validation before anything runs, lossless export, registration."""

from __future__ import annotations

from typing import Any

import jsonschema
import mcp_types
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_runtime.config.tools import ToolHints
from agent_runtime.tools.errors import ToolConfigError, ToolNotFoundError, ToolValidationError
from agent_runtime.tools.registry import Tool, ToolRegistry
from agent_runtime.tools.tool import CallContext
from tests.support.identity import CONTEXT

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "query": {"type": "string", "minLength": 1},
        "limit": {"type": "integer", "minimum": 1, "maximum": 50},
        "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}},
        "filter": {
            "type": "object",
            "properties": {"since": {"type": "string", "format": "date"}},
            "additionalProperties": False,
        },
    },
    "required": ["query"],
    "additionalProperties": False,
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-100, 100) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
arguments = st.fixed_dictionaries(
    {},
    optional={
        "query": st.text(max_size=3) | json_values,
        "limit": st.integers(-5, 60) | json_values,
        "tags": st.lists(st.sampled_from(["a", "b", "c"]), max_size=3) | json_values,
        "filter": st.fixed_dictionaries(
            {}, optional={"since": st.sampled_from(["2024-01-02", "nope"])}
        )
        | json_values,
        "extra": json_values,
    },
)


def recording_registry() -> tuple[ToolRegistry, list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []

    async def search(args: dict[str, Any], _ctx: CallContext) -> Any:
        seen.append(args)
        return {"hits": []}

    registry = ToolRegistry()
    registry.register_function(search, name="search", description="Search", parameters=SCHEMA)
    return registry, seen


@settings(max_examples=150, deadline=None)
@given(args=arguments)
async def test_only_valid_arguments_reach_the_implementation(args: dict[str, Any]) -> None:
    registry, seen = recording_registry()
    checker = jsonschema.Draft202012Validator(
        SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    expected_valid = checker.is_valid(args)
    if expected_valid:
        result = await registry.call("search", args, context=CONTEXT)
        assert result.value == {"hits": []}
        assert seen == [args]
    else:
        with pytest.raises(ToolValidationError) as caught:
            await registry.call("search", args, context=CONTEXT)
        assert seen == []
        assert caught.value.issues
        for issue in caught.value.issues:
            assert issue.path.startswith("$")
            assert issue.rule in {
                "type",
                "minLength",
                "minimum",
                "maximum",
                "enum",
                "required",
                "additionalProperties",
                "format",
            }


@pytest.mark.parametrize(
    ("args", "path", "rule"),
    [
        ({}, "$", "required"),
        ({"query": 3}, "$.query", "type"),
        ({"query": "x", "tags": ["a", "z"]}, "$.tags[1]", "enum"),
        ({"query": "x", "limit": 99}, "$.limit", "maximum"),
        ({"query": "x", "filter": {"since": "yesterday"}}, "$.filter.since", "format"),
    ],
)
async def test_errors_name_the_path_and_the_rule(
    args: dict[str, Any], path: str, rule: str
) -> None:
    registry, _ = recording_registry()
    with pytest.raises(ToolValidationError) as caught:
        await registry.call("search", args, context=CONTEXT)
    assert [(i.path, i.rule) for i in caught.value.issues] == [(path, rule)]
    assert path in str(caught.value)
    assert f"rule: {rule}" in str(caught.value)


async def test_results_are_checked_against_the_result_schema() -> None:
    async def wrong(_: dict[str, Any], _ctx: CallContext) -> Any:
        return {"count": "three"}

    registry = ToolRegistry()
    registry.register_function(
        wrong,
        name="count",
        description="",
        result_schema={"type": "object", "properties": {"count": {"type": "integer"}}},
    )
    with pytest.raises(ToolValidationError, match=r"invalid result: \$\.count"):
        await registry.call("count", {}, context=CONTEXT)


def test_bad_registrations_are_refused() -> None:
    async def noop(_: dict[str, Any], _ctx: CallContext) -> None:
        return None

    registry = ToolRegistry()
    registry.register_function(noop, name="ok", description="")
    with pytest.raises(ToolConfigError, match="already registered"):
        registry.register_function(noop, name="ok", description="")
    with pytest.raises(ToolConfigError, match="does not match"):
        registry.register_function(noop, name="no spaces", description="")
    with pytest.raises(ToolConfigError, match=r"invalid JSON Schema at \$\.properties\.x"):
        registry.register_function(
            noop,
            name="bad",
            description="",
            parameters={"type": "object", "properties": {"x": {"type": 5}}},
        )


async def test_unknown_tools_are_named() -> None:
    registry, _ = recording_registry()
    with pytest.raises(ToolNotFoundError, match="no tool named 'nope'; registered: search"):
        await registry.call("nope", {}, context=CONTEXT)


async def _noop(_: dict[str, Any], _ctx: CallContext) -> None:
    return None


names = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,20}", fullmatch=True)


@given(
    name=names,
    description=st.text(max_size=20),
    read_only=st.booleans(),
    destructive=st.booleans(),
    idempotent=st.booleans(),
    open_world=st.booleans(),
    with_result=st.booleans(),
)
def test_export_keeps_everything(
    name: str,
    description: str,
    read_only: bool,
    destructive: bool,
    idempotent: bool,
    open_world: bool,
    with_result: bool,
) -> None:
    result_schema = (
        {"type": "object", "properties": {"n": {"type": "integer"}}} if with_result else None
    )
    tool = Tool(
        name=name,
        description=description,
        parameters=SCHEMA,
        implementation=_noop,
        hints=ToolHints(
            read_only=read_only,
            destructive=destructive,
            idempotent=idempotent,
            open_world=open_world,
        ),
        result_schema=result_schema,
    )
    registry = ToolRegistry()
    registry.register(tool)
    [openai] = registry.openai_tools()
    assert openai == {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": SCHEMA},
    }
    [exported] = registry.mcp_tools()
    parsed = mcp_types.Tool.model_validate(exported)  # the SDK's own model accepts it
    assert parsed.name == name
    assert parsed.description == description
    assert parsed.input_schema == SCHEMA
    assert parsed.output_schema == result_schema
    assert parsed.annotations is not None
    assert (
        parsed.annotations.read_only_hint,
        parsed.annotations.destructive_hint,
        parsed.annotations.idempotent_hint,
        parsed.annotations.open_world_hint,
    ) == (read_only, destructive, idempotent, open_world)


@pytest.mark.parametrize("arguments", [["a"], "text", 3])
async def test_arguments_that_are_not_an_object_are_refused(arguments: Any) -> None:
    registry, seen = recording_registry()
    with pytest.raises(ToolValidationError, match=r"\$: arguments must be an object"):
        await registry.call("search", arguments, context=CONTEXT)
    assert seen == []
