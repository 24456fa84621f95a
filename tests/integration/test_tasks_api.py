"""POST /v1/tasks and GET /v1/tasks/{id} against a real Redis: 202, results, tenants
from the credentials, idempotency, the error shape, and 503 while Redis is down."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agent_runtime.config import RuntimeConfig
from agent_runtime.runtime import Runtime
from agent_runtime.server import create_app
from agent_runtime.tasks import Task
from tests.support.identity import identity
from tests.support.redis_server import RedisServer
from tests.support.wait import wait_until


async def shout(task: Task) -> Any:
    return {"answer": str(task.input).upper()}


GATEWAY = {"Authorization": "Bearer gateway-token-0123456789"}  # any tenant it names
ACME = {"Authorization": "Bearer acme-token-0123456789ab"}  # bound to tenant acme
GLOBEX = {"Authorization": "Bearer globex-token-0123456789"}  # bound to tenant globex


def config(redis_url: str, tokens: Path) -> RuntimeConfig:
    tokens.write_text(
        "tokens:\n"
        "  - {name: gateway, token: gateway-token-0123456789, tenant: '*'}\n"
        "  - {name: acme-app, token: acme-token-0123456789ab, tenant: acme}\n"
        "  - {name: globex-app, token: globex-token-0123456789, tenant: globex}\n"
    )
    return RuntimeConfig.model_validate(
        {
            "pool": identity("tasks-api").model_dump(),
            "auth": {"tokensFile": str(tokens)},
            "memory": {
                "redis": {"url": redis_url, "reconnectBackoffMaxSeconds": 0.3},
                "longTerm": {"enabled": False},
                "episodic": {"enabled": False},
            },
            "tasks": {"enabled": True, "leaseSeconds": 2, "pollSeconds": 0.2, "maxInputBytes": 64},
        }
    )


@pytest.fixture
def api(redis_url: str, tmp_path: Path) -> Iterator[TestClient]:
    """The API as a trusted gateway calls it (naming the tenant)."""
    start = functools.partial(Runtime.start, task_handler=shout)
    app = create_app(config(redis_url, tmp_path / "tokens.yaml"), start=start)
    with TestClient(app, headers=GATEWAY) as client:
        yield client


def done(api: TestClient, task_id: str, tenant: str = "acme") -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        body: dict[str, Any] = api.get(f"/v1/tasks/{task_id}", params={"tenant": tenant}).json()
        return body if body["status"] == "succeeded" else None

    return wait_until(probe, timeout=15, what=f"task {task_id} to succeed")


def test_a_task_is_accepted_run_and_its_result_read(api: TestClient) -> None:
    response = api.post("/v1/tasks", json={"input": "hello", "tenant": "acme"})
    assert response.status_code == 202
    accepted = response.json()
    assert accepted["status"] == "queued"
    assert accepted["created"] is True
    assert response.headers["location"] == f"/v1/tasks/{accepted['id']}"
    body = done(api, accepted["id"])
    assert body["result"] == {"answer": "HELLO"}
    assert body["deliveries"] == 1
    assert body["tenant"] == "acme"
    assert body["error"] is None


def test_the_tenant_comes_from_the_credentials(api: TestClient) -> None:
    made = api.post("/v1/tasks", json={"input": "mine"}, headers=ACME)
    assert made.status_code == 202
    task_id = made.json()["id"]
    assert done(api, task_id)["tenant"] == "acme"
    assert api.get(f"/v1/tasks/{task_id}", headers=ACME).json()["result"] == {"answer": "MINE"}
    assert api.get(f"/v1/tasks/{task_id}", headers=GLOBEX).status_code == 404
    forbidden = api.post("/v1/tasks", json={"input": "x", "tenant": "globex"}, headers=ACME)
    assert forbidden.status_code == 403
    assert (
        api.get(f"/v1/tasks/{task_id}", params={"tenant": "globex"}, headers=ACME).status_code
        == 403
    )
    nobody = api.post("/v1/tasks", json={"input": "x"}, headers={"Authorization": ""})
    assert nobody.status_code == 401
    assert nobody.json()["error"]["type"] == "AuthenticationError"


def test_another_tenant_sees_no_such_task(api: TestClient) -> None:
    task_id = api.post("/v1/tasks", json={"input": "x", "tenant": "acme"}).json()["id"]
    response = api.get(f"/v1/tasks/{task_id}", params={"tenant": "globex"})
    assert response.status_code == 404
    unknown = api.get("/v1/tasks/" + "0" * 32, params={"tenant": "acme"})
    assert unknown.status_code == 404
    assert response.json()["error"]["message"] == unknown.json()["error"]["message"].replace(
        "0" * 32, task_id
    )


def test_an_idempotency_key_answers_the_same_task_or_409(api: TestClient) -> None:
    body = {"input": {"q": 1}, "tenant": "acme", "idempotencyKey": "order-7"}
    first = api.post("/v1/tasks", json=body)
    again = api.post("/v1/tasks", json=body)
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["created"] is False
    other = api.post("/v1/tasks", json=body | {"input": {"q": 2}})
    assert other.status_code == 409
    assert other.json()["error"]["type"] == "IdempotencyConflictError"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"input": "x"}, 422),  # the gateway may act for any tenant: it must name one
        ({"input": "x" * 100, "tenant": "acme"}, 413),
        ({"input": "x", "tenant": "not a tenant"}, 422),
        ({"input": "x", "tenant": "acme", "priority": 9}, 422),
        ({"tenant": "acme"}, 422),
        ({"input": "x", "tenant": "acme", "idempotencyKey": ""}, 422),
    ],
)
def test_bad_requests_get_a_clear_4xx(api: TestClient, body: dict[str, Any], status: int) -> None:
    response = api.post("/v1/tasks", json=body)
    assert response.status_code == status
    assert response.json()["error"]["message"]


def test_redis_down_is_a_503_and_nothing_is_lost_after(
    api: TestClient, redis_server: RedisServer
) -> None:
    before = api.post("/v1/tasks", json={"input": "kept", "tenant": "acme"}).json()["id"]
    done(api, before)
    redis_server.stop()
    try:
        response = api.post("/v1/tasks", json={"input": "x", "tenant": "acme"})
        assert response.status_code == 503
        assert response.json()["error"]["type"] == "StoreUnavailableError"
        assert api.get(f"/v1/tasks/{before}", params={"tenant": "acme"}).status_code == 503
    finally:
        redis_server.start()

    def accepted() -> dict[str, Any] | None:
        response = api.post("/v1/tasks", json={"input": "after", "tenant": "acme"})
        return response.json() if response.status_code == 202 else None

    after = wait_until(accepted, timeout=15, what="Redis to be back")
    assert done(api, after["id"])["result"] == {"answer": "AFTER"}
    assert done(api, before)["result"] == {"answer": "KEPT"}


def test_readiness_can_report_the_queue_without_a_redis_call(api: TestClient) -> None:
    runtime: Runtime = api.app.state.runtime  # type: ignore[attr-defined]
    task_id = api.post("/v1/tasks", json={"input": "x", "tenant": "acme"}).json()["id"]
    done(api, task_id)
    status = wait_until(
        lambda: (s := runtime.tasks_status()) and s["queued"] == 0 and s,
        timeout=10,  # read every load.publishIntervalSeconds
        what="the worker to read the depth",
    )
    assert status["worker"]
    assert status["running"] == 0
