"""The HTTP API without Redis: tools, breakers, errors as clear 4xx bodies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agent_runtime.config import AuthConfig, PoolIdentity, RuntimeConfig
from agent_runtime.config.tools import ToolHints
from agent_runtime.runtime import Runtime
from agent_runtime.server import create_app
from agent_runtime.tools.errors import ToolError
from agent_runtime.tools.tool import CallContext

ADD_PARAMETERS = {
    "type": "object",
    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
    "required": ["a", "b"],
    "additionalProperties": False,
}


async def _start(config: RuntimeConfig) -> Runtime:
    runtime = await Runtime.start(config)

    async def add(args: dict[str, Any], _ctx: CallContext) -> int:
        return int(args["a"]) + int(args["b"])

    async def broken(args: dict[str, Any], _ctx: CallContext) -> None:
        raise ToolError("broken", "the dependency said no")

    registry = runtime.registry
    registry.register_function(
        add,
        name="add",
        description="Add two integers.",
        parameters=ADD_PARAMETERS,
        hints=ToolHints(read_only=True),
    )
    registry.register_function(broken, name="broken", description="Always fails.")
    return runtime


GATEWAY_TOKEN = "gateway-token-0123456789"
ALICE_TOKEN = "alice-token-0123456789"
BOB_TOKEN = "bob-token-0123456789abc"


def write_tokens(path: Path) -> Path:
    path.write_text(
        "tokens:\n"
        f"  - {{name: gateway, token: {GATEWAY_TOKEN}, tenant: '*'}}\n"
        f"  - {{name: alice-app, token: {ALICE_TOKEN}, tenant: alice}}\n"
        f"  - {{name: bob-app, token: {BOB_TOKEN}, tenant: bob}}\n"
    )
    return path


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    return write_tokens(tmp_path / "tokens.yaml")


@pytest.fixture
def api(tokens_file: Path) -> Iterator[TestClient]:
    """The API as a trusted gateway (any tenant) calls it."""
    config = RuntimeConfig(
        pool=PoolIdentity(namespace="tests", name="unit"),
        auth=AuthConfig(tokens_file=tokens_file),
    )
    with TestClient(create_app(config, start=_start), headers=bearer(GATEWAY_TOKEN)) as client:
        yield client


def test_health_and_readiness(api: TestClient) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz").json()
    assert ready["status"] == "ready"
    assert ready["pool"] == {"namespace": "tests", "name": "unit"}
    assert ready["memory"]["degraded"] is False
    assert "working memory only" in ready["memory"]["detail"]
    assert ready["auth"] == {"mode": "required", "tokens": 3, "serviceAccounts": False}


def test_tools_are_listed_in_both_formats(api: TestClient) -> None:
    mcp = api.get("/v1/tools").json()["tools"]
    memory_tools = {"remember", "recall", "forget"}  # no search_memory without episodes
    assert {t["name"] for t in mcp} == {"add", "broken", *memory_tools}
    assert next(t for t in mcp if t["name"] == "add")["inputSchema"] == ADD_PARAMETERS
    openai = api.get("/v1/tools", params={"format": "openai"}).json()["tools"]
    assert {t["function"]["name"] for t in openai} == {"add", "broken", *memory_tools}
    assert api.get("/v1/tools", params={"format": "soap"}).status_code == 422


def test_a_valid_call_answers(api: TestClient) -> None:
    response = api.post("/v1/tools/add/call", json={"arguments": {"a": 2, "b": 3}, "tenant": "t"})
    assert response.status_code == 200
    body = response.json()
    assert (body["value"], body["answeredBy"], body["tool"]) == (5, "primary", "add")


def test_invalid_arguments_get_422_naming_the_path(api: TestClient) -> None:
    body = {"arguments": {"a": "two", "b": 3}, "tenant": "t"}
    response = api.post("/v1/tools/add/call", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["type"] == "ToolValidationError"
    assert any(issue["path"] == "$.a" and issue["rule"] == "type" for issue in error["issues"])


@pytest.mark.parametrize(
    "body",
    [
        {"arguments": [1, 2], "tenant": "t"},
        {"arguments": {}, "tenant": "../etc"},
        {"arguments": {}},  # the tenant is always stated, never defaulted
        {"arguments": {}, "namespace": "t"},  # the old name is refused, not ignored
        {"argumnts": {}, "tenant": "t"},
    ],
)
def test_malformed_requests_get_422(api: TestClient, body: object) -> None:
    response = api.post("/v1/tools/add/call", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["type"] in {"RequestValidationError", "TenantRequiredError"}
    assert error["message"]


def test_not_json_gets_422(api: TestClient) -> None:
    response = api.post(
        "/v1/tools/add/call", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


def test_unknown_tool_is_404_and_names_no_other_tool(api: TestClient) -> None:
    response = api.post("/v1/tools/nope/call", json={"tenant": "t"})
    assert response.status_code == 404
    message = response.json()["error"]["message"]
    assert "nope" in message
    assert "add" not in message
    assert "broken" not in message


def test_a_failing_dependency_is_502_and_shows_on_the_breaker(api: TestClient) -> None:
    response = api.post("/v1/tools/broken/call", json={"tenant": "t"})
    assert response.status_code == 502
    assert "the dependency said no" in response.json()["error"]["message"]
    breakers = {b["name"]: b for b in api.get("/v1/breakers").json()["breakers"]}
    assert breakers["broken"]["state"] == "closed"
    assert breakers["broken"]["calls"] >= 1


def test_without_redis_memory_is_working_memory(api: TestClient) -> None:
    stored = api.put("/v1/memory/alice/colour", json={"value": "teal", "importance": 0.9})
    assert stored.status_code == 200
    assert stored.json()["tiers"] == ["working"]
    recalled = api.get("/v1/memory/alice/colour").json()
    assert (recalled["tier"], recalled["value"]) == ("working", "teal")
    assert api.get("/v1/memory/bob/colour").status_code == 404
    assert api.post("/v1/memory/alice/search", json={"query": "teal"}).json() == {"results": []}
    assert api.delete("/v1/memory/alice/colour").json()["forgotten"] == ["working"]
    assert api.get("/v1/memory/alice/colour").status_code == 404


def test_memory_tools_act_for_the_requests_tenant_only(api: TestClient) -> None:
    def call(tool: str, tenant: str, **arguments: object) -> Any:
        body = {"arguments": arguments, "tenant": tenant, "conversationId": "c-1"}
        response = api.post(f"/v1/tools/{tool}/call", json=body)
        assert response.status_code == 200, response.text
        return response.json()["value"]

    assert call("remember", "alice", key="colour", value="teal")["remembered"]
    assert call("recall", "alice", key="colour") == {
        "found": True,
        "tier": "working",
        "value": "teal",
    }
    assert call("recall", "bob", key="colour") == {"found": False}
    # The tenant is not a tool argument: a model cannot name another tenant.
    sneaky = {"arguments": {"key": "colour", "tenant": "alice"}, "tenant": "bob"}
    assert api.post("/v1/tools/recall/call", json=sneaky).status_code == 422


def test_tasks_on_a_pool_without_them_are_a_clear_404(api: TestClient) -> None:
    response = api.post("/v1/tasks", json={"input": "x", "tenant": "t"})
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "TasksDisabledError"
    assert api.get("/v1/tasks/abc", params={"tenant": "t"}).status_code == 404
