"""The agent runtime as a real process: config file, real Redis, memory and tools over HTTP,
and a Redis outage in the middle."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.support.redis_server import RedisServer
from tests.support.runtime_process import RuntimeProcess, running_runtime
from tests.support.wait import wait_until


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    # An acknowledged write must survive the SIGKILL below, so fsync every write.
    with redis.Redis.from_url(server.url) as conn:
        conn.config_set("appendfsync", "always")
    yield server
    server.cleanup()


@pytest.fixture
def runtime_process(own_redis: RedisServer, tmp_path: Path) -> Iterator[RuntimeProcess]:
    config = {
        "pool": {"namespace": "tests", "name": "itest"},
        "tools": {
            "definitions": [
                {
                    "name": "echo",
                    "parameters": {
                        "type": "object",
                        "properties": {"text": {"type": "string"}},
                        "required": ["text"],
                    },
                    "hints": {"readOnly": True},
                    "command": {"argv": ["echo", "{text}"], "allowedBinaries": ["echo"]},
                }
            ]
        },
        "memory": {
            "redis": {"url": own_redis.url, "reconnectBackoffMaxSeconds": 0.5},
        },
    }
    with running_runtime(config, tmp_path) as runtime:
        yield runtime


@pytest.fixture
def agent(runtime_process: RuntimeProcess) -> Iterator[httpx.Client]:
    """The runtime as a trusted gateway (any tenant) calls it."""
    with runtime_process.client(runtime_process.gateway_token) as client:
        yield client


def test_every_route_but_the_probes_needs_credentials(runtime_process: RuntimeProcess) -> None:
    with runtime_process.client() as anonymous:
        assert anonymous.get("/healthz").status_code == 200
        assert anonymous.get("/readyz").json()["auth"]["mode"] == "required"
        refused = anonymous.get("/v1/memory/alice/colour")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")


def test_two_tenants_with_their_own_tokens_cannot_see_each_others_memory(
    runtime_process: RuntimeProcess,
) -> None:
    tokens = runtime_process.tenant_tokens
    with (
        runtime_process.client(tokens["alice"]) as alice,
        runtime_process.client(tokens["bob"]) as bob,
    ):
        assert alice.put("/v1/memory/alice/secret", json={"value": "a's"}).status_code == 200
        assert bob.put("/v1/memory/bob/secret", json={"value": "b's"}).status_code == 200
        assert bob.get("/v1/memory/alice/secret").status_code == 403
        assert bob.delete("/v1/memory/alice/secret").status_code == 403
        assert bob.post("/v1/memory/alice/search", json={"query": "a"}).status_code == 403
        as_bob = bob.post("/v1/tools/recall/call", json={"arguments": {"key": "secret"}})
        assert as_bob.json()["value"]["value"] == "b's"
        sneaky = {"arguments": {"key": "secret"}, "tenant": "alice"}
        assert bob.post("/v1/tools/recall/call", json=sneaky).status_code == 403
        assert alice.get("/v1/memory/alice/secret").json()["value"] == "a's"


def test_tools_and_memory_over_http(agent: httpx.Client) -> None:
    names = {t["name"] for t in agent.get("/v1/tools").json()["tools"]}
    assert {"echo", "remember", "recall", "search_memory", "forget"} <= names

    hostile = {"arguments": {"text": "$(id); rm -rf /"}, "tenant": "alice"}
    echoed = agent.post("/v1/tools/echo/call", json=hostile)
    assert echoed.status_code == 200
    assert echoed.json()["value"]["stdout"] == "$(id); rm -rf /\n"

    stored = agent.put(
        "/v1/memory/alice/colour", json={"value": {"fav": "teal"}, "importance": 0.9}
    )
    assert stored.status_code == 200
    assert "longTerm" in stored.json()["tiers"]
    recalled = agent.get("/v1/memory/alice/colour").json()
    assert recalled["value"] == {"fav": "teal"}
    assert agent.get("/v1/memory/bob/colour").status_code == 404  # another tenant

    # The model's memory tools act for the request's tenant, never another.
    call = agent.post(
        "/v1/tools/recall/call", json={"arguments": {"key": "colour"}, "tenant": "alice"}
    )
    assert call.json()["value"] == {
        "found": True,
        "tier": recalled["tier"],
        "value": {"fav": "teal"},
    }
    call = agent.post(
        "/v1/tools/recall/call", json={"arguments": {"key": "colour"}, "tenant": "bob"}
    )
    assert call.json()["value"] == {"found": False}

    assert agent.delete("/v1/memory/alice/colour").status_code == 200
    assert agent.get("/v1/memory/alice/colour").status_code == 404


def test_bad_input_gets_4xx_with_a_clear_body(agent: httpx.Client) -> None:
    refused = agent.post("/v1/tools/echo/call", json={"arguments": {"text": 5}, "tenant": "alice"})
    assert refused.status_code == 422
    assert refused.json()["error"]["issues"][0]["path"] == "$.text"
    bad = agent.put("/v1/memory/alice/k", json={"value": 1, "importance": 7})
    assert bad.status_code == 422
    assert "importance" in json.dumps(bad.json())
    assert agent.post("/v1/memory/alice/search", json={"query": ""}).status_code == 422


def test_a_redis_outage_degrades_refuses_writes_and_recovers(
    agent: httpx.Client, own_redis: RedisServer
) -> None:
    assert agent.put("/v1/memory/alice/before", json={"value": "kept"}).status_code == 200
    agent.get("/v1/memory/alice/before")  # now in this replica's working memory too
    own_redis.stop(kill=True)

    def degraded() -> dict[str, object] | None:
        body: dict[str, object] = agent.get("/readyz").json()
        return body if body["status"] == "degraded" else None

    ready = wait_until(degraded, timeout=20, what="/readyz to report degraded memory")
    assert ready["memory"]["degraded"] is True  # type: ignore[index]

    refused = agent.put("/v1/memory/alice/during", json={"value": "lost?"})
    assert refused.status_code == 503
    assert refused.json()["error"]["type"] == "StoreUnavailableError"
    # Working memory still answers for what this replica holds.
    assert agent.get("/v1/memory/alice/before").json()["value"] == "kept"

    own_redis.start()
    wait_until(
        lambda: agent.get("/readyz").json()["status"] == "ready",
        timeout=30,
        what="/readyz to recover",
    )
    assert agent.put("/v1/memory/alice/after", json={"value": "ok"}).status_code == 200
    assert agent.get("/v1/memory/alice/during").status_code == 404  # refused, not half-kept
    assert agent.get("/v1/memory/alice/before").json()["value"] == "kept"
