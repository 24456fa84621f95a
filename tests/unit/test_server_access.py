"""The HTTP API's door: credentials on every route but the probes, the tenant they carry,
the one error shape, and bodies refused before any route runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agent_runtime.config import AuthConfig, PoolIdentity, RuntimeConfig
from agent_runtime.edge import EdgeLimits
from agent_runtime.server import create_app
from tests.unit.test_server_api import (
    ALICE_TOKEN,
    BOB_TOKEN,
    GATEWAY_TOKEN,
    _start,
    bearer,
    write_tokens,
)


@pytest.fixture
def anonymous(tmp_path: Path) -> Iterator[TestClient]:
    config = RuntimeConfig(
        pool=PoolIdentity(namespace="tests", name="unit"),
        auth=AuthConfig(tokens_file=write_tokens(tmp_path / "tokens.yaml")),
    )
    app = create_app(config, start=_start, limits=EdgeLimits(max_body_bytes=64 * 1024))
    with TestClient(app) as client:
        yield client


def test_probes_are_open_and_everything_else_needs_credentials(anonymous: TestClient) -> None:
    for path in ["/healthz", "/readyz", "/metrics"]:
        assert anonymous.get(path).status_code == 200
    calls = [
        ("GET", "/v1/tools", None),
        ("GET", "/v1/breakers", None),
        ("POST", "/v1/tools/add/call", {"arguments": {"a": 1, "b": 2}, "tenant": "alice"}),
        ("PUT", "/v1/memory/alice/k", {"value": 1}),
        ("GET", "/v1/memory/alice/k", None),
        ("DELETE", "/v1/memory/alice/k", None),
        ("POST", "/v1/memory/alice/search", {"query": "x"}),
    ]
    for header in [{}, bearer("not-a-token-of-ours-at-all"), {"Authorization": "Basic YTpi"}]:
        for method, path, body in calls:
            response = anonymous.request(method, path, json=body, headers=header)
            assert response.status_code == 401, (method, path, header)
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert response.json()["error"]["type"] == "AuthenticationError"


def test_two_tenants_with_their_own_tokens_cannot_see_each_others_memory(
    anonymous: TestClient,
) -> None:
    alice, bob = bearer(ALICE_TOKEN), bearer(BOB_TOKEN)
    assert anonymous.put("/v1/memory/alice/k", json={"value": "a"}, headers=alice).is_success
    assert anonymous.put("/v1/memory/bob/k", json={"value": "b"}, headers=bob).is_success
    for method in ["GET", "DELETE"]:
        refused = anonymous.request(method, "/v1/memory/alice/k", headers=bob)
        assert refused.status_code == 403
        assert refused.json()["error"]["type"] == "TenantForbiddenError"
    assert anonymous.put("/v1/memory/alice/k", json={"value": "x"}, headers=bob).status_code == 403
    search = anonymous.post("/v1/memory/alice/search", json={"query": "a"}, headers=bob)
    assert search.status_code == 403
    assert anonymous.get("/v1/memory/alice/k", headers=alice).json()["value"] == "a"
    # Through the memory tools: the tenant comes from the token, not the body.
    recall = anonymous.post(
        "/v1/tools/recall/call", json={"arguments": {"key": "k"}}, headers=bob
    ).json()["value"]
    assert recall == {"found": True, "tier": "working", "value": "b"}
    sneaky = {"arguments": {"key": "k"}, "tenant": "alice"}
    assert anonymous.post("/v1/tools/recall/call", json=sneaky, headers=bob).status_code == 403


def test_a_gateway_names_the_tenant(anonymous: TestClient) -> None:
    gateway = bearer(GATEWAY_TOKEN)
    unnamed = anonymous.post(
        "/v1/tools/add/call", json={"arguments": {"a": 1, "b": 2}}, headers=gateway
    )
    assert unnamed.status_code == 422
    assert unnamed.json()["error"]["type"] == "TenantRequiredError"
    named = {"arguments": {"a": 1, "b": 2}, "tenant": "carol"}
    assert anonymous.post("/v1/tools/add/call", json=named, headers=gateway).json()["value"] == 3


def test_disabled_auth_is_explicit_and_visible() -> None:
    config = RuntimeConfig(
        pool=PoolIdentity(namespace="tests", name="unit"), auth=AuthConfig(mode="disabled")
    )
    with TestClient(create_app(config, start=_start)) as client:
        assert client.get("/readyz").json()["auth"]["mode"] == "disabled"
        assert client.get("/v1/tools").status_code == 200


def test_auth_is_required_by_default() -> None:
    assert RuntimeConfig(pool=PoolIdentity(namespace="a", name="b")).auth.mode == "required"


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b'{"arguments": {"a": NaN, "b": 1}, "tenant": "t"}', "non-finite"),
        (b'{"arguments": {"a": Infinity, "b": 1}, "tenant": "t"}', "non-finite"),
        (b'{"arguments": {"a": 1, "b": 1, "c": -Infinity}, "tenant": "t"}', "non-finite"),
        (b'{"arguments": {"a": "\\ud800", "b": 1}, "tenant": "t"}', "surrogate"),
        (b'{"arguments": {"\\udfff": 1}, "tenant": "t"}', "surrogate"),
        (b'{"arguments": {"a": ' + b"[" * 100 + b"]" * 100 + b'}, "tenant": "t"}', "deeper"),
        (b"[" * 30_000 + b"]" * 30_000, "deep"),
    ],
)
def test_unkeepable_json_is_422_at_the_door(anonymous: TestClient, raw: bytes, why: str) -> None:
    response = anonymous.post(
        "/v1/tools/add/call",
        content=raw,
        headers={"content-type": "application/json", **bearer(GATEWAY_TOKEN)},
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["type"] == "InvalidJson"
    assert why in error["message"]


def test_an_oversized_body_is_413(anonymous: TestClient) -> None:
    big = {"value": "x" * (65 * 1024)}
    response = anonymous.put("/v1/memory/t/k", json=big, headers=bearer(GATEWAY_TOKEN))
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "BodyTooLarge"


def test_fastapis_validation_errors_use_the_one_shape(anonymous: TestClient) -> None:
    response = anonymous.put(
        "/v1/memory/t/k", json={"value": 1, "importance": 7}, headers=bearer(GATEWAY_TOKEN)
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["type"] == "RequestValidationError"
    assert any(issue["path"] == "$.body.importance" for issue in error["issues"])
    unknown = anonymous.get("/v1/nothing-here", headers=bearer(GATEWAY_TOKEN))
    assert unknown.status_code == 404
    assert unknown.json()["error"]["type"] == "NotFound"
    wrong = anonymous.patch("/v1/tools", headers=bearer(GATEWAY_TOKEN))
    assert wrong.status_code == 405
    assert wrong.json()["error"]["type"] == "MethodNotAllowed"


def test_openapi_lists_each_routes_statuses(anonymous: TestClient) -> None:
    paths = anonymous.get("/openapi.json").json()["paths"]
    call = paths["/v1/tools/{name}/call"]["post"]["responses"]
    assert {"200", "401", "403", "404", "413", "422", "429", "502", "503", "504"} <= set(call)
    recall = paths["/v1/memory/{tenant}/{key}"]["get"]["responses"]
    assert {"200", "401", "403", "404", "422", "502", "503"} <= set(recall)
    error = call["401"]["content"]["application/json"]["schema"]
    assert error["required"] == ["error"]


def test_every_operation_lists_what_any_route_can_answer_in_the_one_shape(
    anonymous: TestClient,
) -> None:
    """Every operation but the probes lists the statuses of the edge, authentication,
    validation and Redis (ALWAYS); one that takes a tenant lists 403; every error status
    carries the one error schema."""
    from agent_runtime.api_errors import ALWAYS

    probes = {"/healthz", "/readyz", "/metrics"}
    document = anonymous.get("/openapi.json").json()
    paths, schemas = document["paths"], document["components"]["schemas"]

    def body_fields(operation: dict[str, Any]) -> set[str]:
        content = operation.get("requestBody", {}).get("content", {})
        ref = content.get("application/json", {}).get("schema", {}).get("$ref", "")
        return set(schemas[ref.rsplit("/", 1)[-1]].get("properties", {})) if ref else set()

    checked, with_tenant = 0, 0
    for path, operations in paths.items():
        if path in probes:
            continue
        for method, operation in operations.items():
            responses = operation["responses"]
            label = f"{method.upper()} {path}"
            assert {str(s) for s in ALWAYS} <= set(responses), label
            parameters = {p["name"] for p in operation.get("parameters", [])}
            if "tenant" in parameters | body_fields(operation):
                assert "403" in responses, label
                with_tenant += 1
            for status, response in responses.items():
                if int(status) >= 400:
                    schema = response["content"]["application/json"]["schema"]
                    assert schema["required"] == ["error"], (label, status)
            checked += 1
    assert checked >= 12
    assert with_tenant >= 8  # memory, tool calls, chat, conversations, tasks
