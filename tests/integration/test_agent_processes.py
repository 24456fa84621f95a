"""The agent service as real processes: two runtimes on one Redis and one scripted model.

A conversation moves between replicas with its memory; a replica SIGKILLed while a
non-idempotent tool runs leaves a conversation the other replica resumes without
running the tool again; a call held for approval on one replica is approved on the
other, and an approved call cut off by SIGKILL is not run twice; SIGTERM lets a running
turn finish before the process exits.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from agent_runtime.config.load import decode_samples, load_key
from tests.support.identity import identity
from tests.support.loopback import serve_asgi
from tests.support.redis_server import free_port
from tests.support.scripted_model import ScriptedModel
from tests.support.wait import async_wait_until

AGENT = str(Path(sys.executable).parent / "agentpool-agent")


class ToolServer:
    """A non-idempotent HTTP tool that records every call and can hang on demand."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.release = asyncio.Event()
        self.hang = False

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/charge")
        async def charge(body: dict[str, Any]) -> dict[str, Any]:
            self.calls.append(body)
            if self.hang:
                await self.release.wait()
            return {"charged": body.get("amount")}

        return app


class Replica:
    def __init__(self, proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.proc, self.url, self.log = proc, url, log
        self.client = httpx.AsyncClient(base_url=url, timeout=30)


@pytest.fixture
async def stack(redis_url: str, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    model, tools = ScriptedModel(), ToolServer()
    async with AsyncExitStack() as stack:
        model_url = await stack.enter_async_context(serve_asgi(model.app()))
        tool_url = await stack.enter_async_context(serve_asgi(tools.app()))
        config = {
            "pool": {"namespace": "tests", "name": "procs"},
            "auth": {"mode": "disabled"},
            "agent": {"instructions": "be brief", "limits": {"turnTimeoutSeconds": 30}},
            "model": {
                "primary": {"name": "scripted", "baseUrl": f"{model_url}/v1"},
                "retry": {"maxAttempts": 1},
            },
            "tools": {
                "definitions": [
                    {
                        "name": "charge",
                        "description": "charge a card (not idempotent)",
                        "parameters": {
                            "type": "object",
                            "properties": {"amount": {"type": "number"}},
                            "required": ["amount"],
                        },
                        "http": {"url": f"{tool_url}/charge", "timeoutSeconds": 60},
                        "resilience": {"retry": {"enabled": False}},
                    },
                    {
                        "name": "payout",
                        "description": "pay money out (not idempotent; a person approves)",
                        "requireApproval": True,
                        "parameters": {
                            "type": "object",
                            "properties": {"amount": {"type": "number"}},
                            "required": ["amount"],
                        },
                        "http": {"url": f"{tool_url}/charge", "timeoutSeconds": 60},
                        "resilience": {"retry": {"enabled": False}},
                    },
                ]
            },
            "memory": {"redis": {"url": redis_url}},
            "tasks": {"enabled": True, "leaseSeconds": 2},
        }
        path = tmp_path / "config.json"
        path.write_text(json.dumps(config))
        replicas: list[Replica] = []

        async def start(name: str) -> Replica:
            port = free_port()
            log = tmp_path / f"{name}.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(  # noqa: ASYNC220 - starts the process, does not wait
                    [AGENT, "--host=127.0.0.1", f"--port={port}", f"--config={path}"],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env={
                        **os.environ,
                        "AGENTPOOL_LOG_FORMAT": "json",
                        "AGENTPOOL_WRITER_LEASE_SECONDS": "2",
                        "POD_NAME": name,
                    },
                )
            replica = Replica(proc, f"http://127.0.0.1:{port}", log)
            replicas.append(replica)

            async def up() -> bool:
                assert proc.poll() is None, log.read_text()[-3000:]
                return (await replica.client.get("/readyz")).status_code == 200

            await async_wait_until(up, timeout=30, what=f"replica {name} to be ready")
            return replica

        try:
            yield {"model": model, "tools": tools, "start": start, "redis_url": redis_url}
        finally:
            tools.release.set()
            for replica in replicas:
                await replica.client.aclose()
                if replica.proc.poll() is None:
                    replica.proc.kill()
                replica.proc.wait(timeout=10)


async def chat(replica: Replica, message: str, conversation: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"message": message, "tenant": "alice"}
    if conversation:
        body["conversationId"] = conversation
    return await replica.client.post("/v1/chat", json=body)


async def test_a_conversation_continues_on_another_replica_with_its_memory(
    stack: dict[str, Any],
) -> None:
    start: Callable[[str], Any] = stack["start"]
    a, b = await start("a"), await start("b")
    first = await chat(a, 'call remember {"key": "plan", "value": "gold"}')
    conversation = first.json()["conversationId"]
    second = await chat(b, 'call recall {"key": "plan"}', conversation)
    assert second.status_code == 200, second.text
    assert "gold" in second.json()["answer"]
    assert second.json()["version"] > first.json()["version"]
    history = (await b.client.get(f"/v1/conversations/{conversation}?tenant=alice")).json()
    contents = [m["content"] for m in history["messages"] if m["role"] == "user"]
    assert contents == [
        'call remember {"key": "plan", "value": "gold"}',
        'call recall {"key": "plan"}',
    ]
    # Both replicas publish their load where the operator reads it.

    client = aioredis.Redis.from_url(os.environ.get("UNUSED", "") or _redis_of(a))
    fields = await client.hgetall(load_key("agentpool", identity("procs")))
    await client.aclose()

    samples = decode_samples(fields, now=time.time(), publish_interval_seconds=1.0)
    assert set(samples) == {"a", "b"}
    assert samples["a"].capacity == 8


def _redis_of(replica: Replica) -> str:
    config = json.loads(Path(replica.log.parent / "config.json").read_text())
    url: str = config["memory"]["redis"]["url"]
    return url


async def test_sigkill_mid_tool_then_resume_does_not_charge_twice(stack: dict[str, Any]) -> None:
    tools: ToolServer = stack["tools"]
    a, b = await stack["start"]("a"), await stack["start"]("b")
    first = await chat(a, "hello")
    conversation = first.json()["conversationId"]
    tools.hang = True
    turn = asyncio.create_task(chat(a, 'call charge {"amount": 42}', conversation))

    async def charged() -> bool:
        return len(tools.calls) == 1

    await async_wait_until(charged, timeout=15, what="the tool to be called")
    a.proc.send_signal(signal.SIGKILL)
    with pytest.raises(httpx.HTTPError):
        await turn
    tools.hang = False

    async def resumed() -> httpx.Response | None:
        response = await chat(b, "did it work?", conversation)
        return response if response.status_code == 200 else None  # 409 until the lease ends

    response = await async_wait_until(resumed, timeout=15, what="the conversation to resume")
    assert len(tools.calls) == 1  # the non-idempotent tool did not run again
    events = (await b.client.get(f"/v1/conversations/{conversation}/events?tenant=alice")).json()
    kinds = [e["event"].get("kind") for e in events["events"] if e["event"]["type"] == "error"]
    assert "interrupted" in kinds
    assert "not run again" in response.text


async def test_a_call_held_on_one_replica_is_approved_on_the_other(
    stack: dict[str, Any],
) -> None:
    tools: ToolServer = stack["tools"]
    a, b = await stack["start"]("a"), await stack["start"]("b")
    held = (await chat(a, 'call payout {"amount": 9}')).json()
    assert held["stopReason"] == "approvalRequired"
    conversation, call_id = held["conversationId"], held["pendingApproval"][0]["callId"]
    route = f"/v1/conversations/{conversation}/approvals"
    decision = {"tenant": "alice", "decisions": [{"callId": call_id, "approve": True}]}
    approved = await b.client.post(route, json=decision)
    assert approved.status_code == 200, approved.text
    assert approved.json()["answer"] == 'tool said: {"charged":9}'
    again = await a.client.post(route, json=decision)
    assert again.status_code == 409
    assert tools.calls == [{"amount": 9}]


async def test_sigkill_during_an_approved_call_does_not_pay_twice(stack: dict[str, Any]) -> None:
    tools: ToolServer = stack["tools"]
    a, b = await stack["start"]("a"), await stack["start"]("b")
    held = (await chat(a, 'call payout {"amount": 5}')).json()
    conversation, call_id = held["conversationId"], held["pendingApproval"][0]["callId"]
    route = f"/v1/conversations/{conversation}/approvals"
    decision = {"tenant": "alice", "decisions": [{"callId": call_id, "approve": True}]}
    tools.hang = True
    approving = asyncio.create_task(a.client.post(route, json=decision))

    async def paying() -> bool:
        return len(tools.calls) == 1

    await async_wait_until(paying, timeout=15, what="the approved call to start")
    a.proc.send_signal(signal.SIGKILL)
    with pytest.raises(httpx.HTTPError):
        await approving
    tools.hang = False
    # The grant is in the log: deciding again is refused, on any replica.
    assert (await b.client.post(route, json=decision)).status_code == 409

    async def resumed() -> httpx.Response | None:
        response = await chat(b, "did it pay?", conversation)
        return response if response.status_code == 200 else None  # 409 until the lease ends

    response = await async_wait_until(resumed, timeout=15, what="the conversation to resume")
    assert len(tools.calls) == 1  # the approved, non-idempotent call did not run again
    assert "not run again" in response.text


async def test_sigkill_mid_task_resumes_its_turn_without_charging_twice(
    stack: dict[str, Any],
) -> None:
    tools: ToolServer = stack["tools"]
    a = await stack["start"]("a")
    tools.hang = True
    accepted = await a.client.post(
        "/v1/tasks", json={"input": 'call charge {"amount": 8}', "tenant": "alice"}
    )
    assert accepted.status_code == 202, accepted.text
    task = accepted.json()["id"]

    async def charging() -> bool:
        return len(tools.calls) == 1

    await async_wait_until(charging, timeout=20, what="the task's tool call")
    a.proc.send_signal(signal.SIGKILL)
    tools.hang = False
    b = await stack["start"]("b")

    async def done() -> dict[str, Any] | None:
        body: dict[str, Any] = (await b.client.get(f"/v1/tasks/{task}?tenant=alice")).json()
        return body if body["status"] in ("succeeded", "failed") else None

    finished = await async_wait_until(done, timeout=40, what="the task, taken over by b")
    assert finished["status"] == "succeeded", finished
    assert finished["result"]["stopReason"] == "answered"
    assert len(tools.calls) == 1  # the charge did not run again
    log = await b.client.get(f"/v1/conversations/task-{task}/events?tenant=alice")
    events = [e["event"] for e in log.json()["events"]]
    assert [e["type"] for e in events].count("inputReceived") == 1  # not sent twice
    assert "interrupted" in [e.get("kind") for e in events if e["type"] == "error"]


async def test_sigterm_lets_the_running_turn_finish(stack: dict[str, Any]) -> None:
    a = await stack["start"]("a")
    turn = asyncio.create_task(chat(a, "slow 2"))

    async def running() -> bool:
        ready = (await a.client.get("/readyz")).json()
        return bool(ready["turns"]["active"] == 1)

    await async_wait_until(running, timeout=10, what="the turn to start")
    a.proc.send_signal(signal.SIGTERM)
    response = await turn
    assert response.status_code == 200
    assert response.json()["answer"] == "echo: slow 2"

    async def exited() -> bool:
        return a.proc.poll() is not None

    await async_wait_until(exited, timeout=20, what="the replica to exit")
    # uvicorn finishes its graceful shutdown, then re-raises the signal it caught.
    assert a.proc.returncode in (0, -signal.SIGTERM)
