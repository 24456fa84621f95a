"""Tool calls held for a person's approval, over HTTP: real Redis, the scripted model on
loopback and a non-idempotent HTTP tool that counts its calls.

The held call, the decision and the resumed turn are events in the conversation's log;
an approved call runs once, a refused one never, and its refusal is what the model reads.
Two processes and a SIGKILL are in test_agent_processes.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from agent_runtime.config import RuntimeConfig
from agent_runtime.server import create_app
from tests.support.loopback import serve_asgi
from tests.support.scripted_model import ScriptedModel
from tests.support.wait import async_wait_until

pytestmark = pytest.mark.asyncio

PAY = 'call payout {"amount": 7}'


class Payouts:
    """The tool's server: every call is a payout (not idempotent); can hold a call."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.release = asyncio.Event()
        self.release.set()

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/payout")
        async def payout(body: dict[str, Any]) -> dict[str, Any]:
            self.calls.append(body)
            await self.release.wait()
            return {"paid": body.get("amount")}

        return app


def approval_config(
    model_url: str, tool_url: str, redis_url: str, auth: dict[str, Any] | None = None
) -> RuntimeConfig:
    return RuntimeConfig.model_validate(
        {
            "pool": {"namespace": "tests", "name": "approvals"},
            "tasks": {"enabled": True},
            "auth": auth or {"mode": "disabled"},
            "agent": {"instructions": "be brief"},
            "model": {
                "primary": {"name": "scripted", "baseUrl": f"{model_url}/v1"},
                "timeoutSeconds": 5,
                "retry": {"maxAttempts": 1},
            },
            "tools": {
                "definitions": [
                    {
                        "name": "payout",
                        "description": "pay money out (not idempotent)",
                        "requireApproval": True,
                        "parameters": {
                            "type": "object",
                            "properties": {"amount": {"type": "number"}},
                            "required": ["amount"],
                        },
                        "http": {"url": f"{tool_url}/payout"},
                        "resilience": {"retry": {"enabled": False}},
                    }
                ]
            },
            "memory": {"redis": {"url": redis_url}},
        }
    )


@pytest.fixture
def payouts() -> Payouts:
    return Payouts()


@pytest.fixture
async def api(payouts: Payouts, redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    model = ScriptedModel()
    async with serve_asgi(model.app()) as model_url, serve_asgi(payouts.app()) as tool_url:
        app = create_app(approval_config(model_url, tool_url, redis_url))
        async with (
            serve_asgi(app, lifespan="on") as url,
            httpx.AsyncClient(base_url=url, timeout=20) as client,
        ):
            yield client


async def held(api: httpx.AsyncClient, tenant: str = "alice") -> tuple[str, str]:
    """A conversation whose payout waits for approval: (conversation, call id)."""
    response = await api.post("/v1/chat", json={"message": PAY, "tenant": tenant})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["stopReason"] == "approvalRequired"
    assert body["answer"] is None
    (pending,) = body["pendingApproval"]
    assert (pending["tool"], pending["arguments"]) == ("payout", {"amount": 7})
    return body["conversationId"], pending["callId"]


def decide(call_id: str, approve: bool, **extra: Any) -> dict[str, Any]:
    return {"tenant": "alice", "decisions": [{"callId": call_id, "approve": approve, **extra}]}


async def test_an_approved_call_runs_once_and_the_turn_answers(
    api: httpx.AsyncClient, payouts: Payouts
) -> None:
    conversation, call_id = await held(api)
    assert payouts.calls == []
    listed = await api.get(f"/v1/conversations/{conversation}/approvals?tenant=alice")
    assert [c["callId"] for c in listed.json()["pendingApproval"]] == [call_id]
    # A new message must wait for the decision: the model has to see the call's outcome.
    early = await api.post(
        "/v1/chat", json={"message": "hi", "tenant": "alice", "conversationId": conversation}
    )
    assert early.status_code == 409
    assert call_id in early.json()["error"]["message"]

    approved = await api.post(
        f"/v1/conversations/{conversation}/approvals", json=decide(call_id, True, reason="ok")
    )
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert body["stopReason"] == "answered"
    assert body["answer"] == 'tool said: {"paid":7}'
    assert body["steps"][0]["approval"] == "granted"
    assert payouts.calls == [{"amount": 7}]

    again = await api.post(
        f"/v1/conversations/{conversation}/approvals", json=decide(call_id, True)
    )
    assert again.status_code == 409
    assert again.json()["error"]["type"] == "AlreadyDecidedError"
    assert payouts.calls == [{"amount": 7}]
    assert (await api.get(f"/v1/conversations/{conversation}/approvals?tenant=alice")).json()[
        "pendingApproval"
    ] == []
    events = (
        await api.get(f"/v1/conversations/{conversation}/events", params={"tenant": "alice"})
    ).json()["events"]
    kinds = [e["event"]["type"] for e in events]
    assert kinds.index("approvalRequested") < kinds.index("approvalGranted")
    assert kinds.index("approvalGranted") < kinds.index("toolResult")
    granted = next(e["event"] for e in events if e["event"]["type"] == "approvalGranted")
    assert (granted["callId"], granted["reason"]) == (call_id, "ok")


async def test_a_refusal_goes_back_to_the_model_as_the_result(
    api: httpx.AsyncClient, payouts: Payouts
) -> None:
    conversation, call_id = await held(api)
    refused = await api.post(
        f"/v1/conversations/{conversation}/approvals",
        json=decide(call_id, False, reason="not this month"),
    )
    assert refused.status_code == 200, refused.text
    body = refused.json()
    assert body["stopReason"] == "answered"
    # The scripted model repeats the tool results it was given.
    assert "refused" in body["answer"]
    assert "not this month" in body["answer"]
    assert payouts.calls == []
    history = (await api.get(f"/v1/conversations/{conversation}?tenant=alice")).json()
    assert history["status"] == "responded"
    assert history["toolCalls"][0]["status"] == "failed"


async def test_decisions_stream_like_a_turn(api: httpx.AsyncClient, payouts: Payouts) -> None:
    conversation, call_id = await held(api)
    response = await api.post(
        f"/v1/conversations/{conversation}/approvals",
        json={**decide(call_id, True), "stream": True},
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    steps = [
        json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")
    ]
    kinds = [s["type"] for s in steps]
    assert kinds[:3] == ["start", "approval", "toolResult"]
    assert kinds[-1] == "end"
    assert steps[1]["decision"] == "granted"
    assert steps[-1]["stopReason"] == "answered"
    assert len(payouts.calls) == 1


async def test_two_decisions_at_once_run_the_call_once(
    api: httpx.AsyncClient, payouts: Payouts
) -> None:
    conversation, call_id = await held(api)
    payouts.release.clear()  # the approved call stays in the tool while the second arrives
    url = f"/v1/conversations/{conversation}/approvals"
    first = asyncio.create_task(api.post(url, json=decide(call_id, True)))

    async def in_the_tool() -> bool:
        return bool(payouts.calls)

    await async_wait_until(in_the_tool, timeout=10, what="the approved call to start")
    second = await api.post(url, json=decide(call_id, True))
    assert second.status_code == 409  # the first holds the conversation's one writer
    payouts.release.set()
    assert (await first).status_code == 200
    third = await api.post(url, json=decide(call_id, False))
    assert third.status_code == 409
    assert len(payouts.calls) == 1


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        (b"{not json", 422, "RequestValidationError"),
        (b'{"tenant": "alice", "decisions": []}', 422, "RequestValidationError"),
        (b'{"tenant": "alice"}', 422, "RequestValidationError"),
        (b'{"tenant": "alice", "decisions": [{"callId": "x"}]}', 422, "RequestValidationError"),
        (
            b'{"tenant": "alice", "decisions": [{"callId": "x", "approve": "maybe"}]}',
            422,
            "RequestValidationError",
        ),
        (
            b'{"tenant": "alice", "decisions": [{"callId": "x", "approve": true, "y": 1}]}',
            422,
            "RequestValidationError",
        ),
        (
            b'{"tenant": "alice", "decisions": [{"callId": "C", "approve": true},'
            b' {"callId": "C", "approve": false}]}',
            422,
            "RequestValidationError",
        ),
        (b'{"tenant": "alice", "decisions": [{"callId": "v9.nope", "approve": true}]}', 404, ""),
        (b'{"tenant": "bob", "decisions": [{"callId": "C", "approve": true}]}', 404, ""),
    ],
)
async def test_bad_decisions_are_4xx_in_the_one_shape(
    api: httpx.AsyncClient, payouts: Payouts, body: bytes, status: int, kind: str
) -> None:
    conversation, call_id = await held(api)
    response = await api.post(
        f"/v1/conversations/{conversation}/approvals",
        content=body.replace(b'"C"', f'"{call_id}"'.encode()),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"]
    if kind:
        assert error["type"] == kind
    assert payouts.calls == []
    still = await api.get(f"/v1/conversations/{conversation}/approvals?tenant=alice")
    assert [c["callId"] for c in still.json()["pendingApproval"]] == [call_id]


async def test_a_task_on_a_conversation_waiting_for_approval_fails_saying_why(
    api: httpx.AsyncClient, payouts: Payouts
) -> None:
    conversation, call_id = await held(api)
    accepted = await api.post(
        "/v1/tasks", json={"input": "later", "tenant": "alice", "conversationId": conversation}
    )
    assert accepted.status_code == 202, accepted.text
    task = accepted.json()["id"]

    async def ended() -> dict[str, Any] | None:
        body: dict[str, Any] = (await api.get(f"/v1/tasks/{task}?tenant=alice")).json()
        return body if body["status"] in ("failed", "succeeded") else None

    finished = await async_wait_until(ended, timeout=20, what="the task to end")
    assert finished["status"] == "failed"
    assert call_id in finished["error"]
    assert payouts.calls == []


async def test_unknown_conversation_is_404(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/conversations/nope/approvals", json=decide("v2.x", True))
    assert response.status_code == 404
    listed = await api.get("/v1/conversations/nope/approvals?tenant=alice")
    assert listed.status_code == 404


async def test_the_routes_are_in_the_openapi_document(api: httpx.AsyncClient) -> None:
    paths = (await api.get("/openapi.json")).json()["paths"]
    route = paths["/v1/conversations/{conversation_id}/approvals"]
    assert {"get", "post"} <= set(route)
    assert {"401", "403", "404", "409", "422"} <= set(route["post"]["responses"])


async def test_decisions_need_credentials_for_the_conversations_tenant(
    payouts: Payouts, redis_url: str, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(
        "tokens:\n"
        "  - {name: alice-app, token: alice-token-0123456789, tenant: alice}\n"
        "  - {name: bob-app, token: bob-token-0123456789abc, tenant: bob}\n"
    )
    alice = {"Authorization": "Bearer alice-token-0123456789"}
    bob = {"Authorization": "Bearer bob-token-0123456789abc"}
    model = ScriptedModel()
    async with serve_asgi(model.app()) as model_url, serve_asgi(payouts.app()) as tool_url:
        config = approval_config(model_url, tool_url, redis_url, {"tokensFile": str(tokens)})
        async with (
            serve_asgi(create_app(config), lifespan="on") as url,
            httpx.AsyncClient(base_url=url, timeout=20) as client,
        ):
            started = await client.post("/v1/chat", json={"message": PAY}, headers=alice)
            conversation = started.json()["conversationId"]
            call_id = started.json()["pendingApproval"][0]["callId"]
            route = f"/v1/conversations/{conversation}/approvals"
            one = [{"callId": call_id, "approve": True}]
            anonymous = await client.post(route, json={"decisions": one})
            assert anonymous.status_code == 401
            forbidden = await client.post(
                route, json={"decisions": one, "tenant": "alice"}, headers=bob
            )
            assert forbidden.status_code == 403
            not_hers = await client.post(route, json={"decisions": one}, headers=bob)
            assert not_hers.status_code == 404
            assert payouts.calls == []
            approved = await client.post(route, json={"decisions": one}, headers=alice)
            assert approved.status_code == 200, approved.text
            assert payouts.calls == [{"amount": 7}]
            events = (
                await client.get(f"/v1/conversations/{conversation}/events", headers=alice)
            ).json()["events"]
            granted = next(e["event"] for e in events if e["event"]["type"] == "approvalGranted")
            assert granted["by"] == "token:alice-app"
