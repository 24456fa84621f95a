"""The tools section of the runtime config: camelCase documents, cross-field rules, merging."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from agent_runtime.config.tools import (
    CircuitBreakerSettings,
    ResilienceSettings,
    RetrySettings,
    ToolDefinition,
    ToolsConfig,
    merge_settings,
)

HTTP_TOOL: dict[str, Any] = {
    "name": "weather",
    "description": "Current weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "hints": {"readOnly": True},
    "http": {
        "url": "https://api.example.com/weather/{city}",
        "method": "GET",
        "headers": {"Authorization": {"valueFrom": {"env": "WEATHER_TOKEN"}}, "X-Lit": "v"},
        "timeoutSeconds": 5,
        "maxResponseBytes": 1000,
    },
    "resilience": {"retry": {"maxAttempts": 5}},
    "cache": {"ttlSeconds": 60},
}


def test_a_camel_case_document_loads_and_round_trips() -> None:
    tool = ToolDefinition.model_validate(HTTP_TOOL)
    assert tool.kind == "http"
    assert tool.http is not None
    assert tool.http.timeout_seconds == 5
    assert tool.hints.read_only
    again = ToolDefinition.model_validate(tool.model_dump(by_alias=True, exclude_unset=True))
    assert again == tool


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"command": {"argv": ["echo"], "allowedBinaries": ["echo"]}}, "exactly one"),
        ({"http": None}, "exactly one"),
        ({"parameters": None}, "`parameters` is required"),
        ({"parameters": {"type": "array"}}, '"type": "object"'),
        ({"name": "has space"}, "pattern"),
        ({"surprise": 1}, "Extra inputs"),
        ({"http": {"url": "https://x.example/{nope}"}}, "placeholders not declared"),
    ],
)
def test_bad_definitions_are_refused_with_a_message(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ToolDefinition.model_validate({**HTTP_TOOL, **change})


def command_tool(argv: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "name": "cmd",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
        "command": {"argv": argv, "allowedBinaries": ["ls"], **extra},
    }


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["{path}"], "literal binary"),
        (["rm", "{path}"], "not in allowedBinaries"),
        (["ls", "{nope}"], "not declared"),
        (["ls", "{0}"], "malformed placeholder"),
    ],
)
def test_command_templates_are_checked(argv: list[str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ToolDefinition.model_validate(command_tool(argv))


def test_agent_tools_need_exactly_one_target() -> None:
    with pytest.raises(ValidationError, match="exactly one of `url` or `pool`"):
        ToolDefinition.model_validate({"name": "a", "agent": {}})
    pool = ToolDefinition.model_validate(
        {"name": "a", "agent": {"pool": "researcher", "namespace": "team"}}
    )
    assert pool.agent is not None
    assert pool.agent.base_url() == "http://researcher.team.svc:8080"


def test_mcp_tools_choose_remote_tools_by_name_and_take_schemas_from_the_server() -> None:
    mcp = ToolDefinition.model_validate(
        {"name": "files", "mcp": {"url": "http://mcp:8000/mcp", "toolNames": ["read"]}}
    )
    assert mcp.mcp is not None
    assert (mcp.mcp.tool_names, mcp.mcp.prefix) == (["read"], None)
    with pytest.raises(ValidationError, match="from the server"):
        ToolDefinition.model_validate(
            {"name": "files", "parameters": {"type": "object"}, "mcp": {"url": "http://m/"}}
        )
    with pytest.raises(ValidationError, match="twice"):
        ToolDefinition.model_validate(
            {"name": "files", "mcp": {"url": "http://m/", "toolNames": ["a", "a"]}}
        )
    with pytest.raises(ValidationError, match="namespace"):
        ToolDefinition.model_validate(
            {"name": "files", "mcp": {"url": "http://m/", "namespace": "fs"}}
        )


def test_approval_is_off_unless_required() -> None:
    assert not ToolDefinition.model_validate(HTTP_TOOL).require_approval
    assert ToolDefinition.model_validate({**HTTP_TOOL, "requireApproval": True}).require_approval


def test_tool_names_are_unique() -> None:
    with pytest.raises(ValidationError, match="defined twice"):
        ToolsConfig.model_validate({"definitions": [HTTP_TOOL, HTTP_TOOL]})


def test_overrides_replace_only_the_fields_they_set() -> None:
    pool = ResilienceSettings.model_validate(
        {
            "retry": {"maxAttempts": 2, "initialBackoffSeconds": 1.5},
            "circuitBreaker": {"windowSize": 7},
        }
    )
    tool = ResilienceSettings.model_validate({"retry": {"maxAttempts": 5}})
    merged = merge_settings(pool, tool)
    assert merged.retry.max_attempts == 5
    assert merged.retry.initial_backoff_seconds == 1.5
    assert merged.circuit_breaker.window_size == 7


@given(
    base=st.builds(RetrySettings, max_attempts=st.integers(1, 20), jitter_seconds=st.floats(0, 9)),
    attempts=st.none() | st.integers(1, 20),
)
def test_merging_keeps_every_unset_field_of_the_base(
    base: RetrySettings, attempts: int | None
) -> None:
    override = RetrySettings() if attempts is None else RetrySettings(max_attempts=attempts)
    merged = merge_settings(base, override)
    assert merged.jitter_seconds == base.jitter_seconds
    assert merged.max_attempts == (base.max_attempts if attempts is None else attempts)
    assert merge_settings(base, None) is base


def test_breaker_defaults_count_server_trouble_but_not_client_mistakes() -> None:
    settings = CircuitBreakerSettings()
    assert "server" in settings.record_on
    assert "client" not in settings.record_on
