"""A pool-as-tool call that finds the pool with no ready replica asks for it to be woken
in the caller's own (real) Redis, where the operator's reader counts it, retries until
the pool answers, and withdraws the request; one whose pool never answers gives up at
its deadline and withdraws it too. The connection refused is real TCP: only the
Service's name is pointed at a loopback port (standing in for the cluster's DNS)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

from agent_runtime.config.identity import PoolIdentity
from agent_runtime.config.load import load_key, wake_key
from agent_runtime.config.tools import AgentImplementation
from agent_runtime.tools.agent import PoolTool
from agent_runtime.tools.errors import ToolConnectError
from agent_runtime.tools.tool import CallContext
from agent_runtime.tools.wake import WakeRequests
from agentpool_operator.autoscaler.reader import LoadReader, Target
from tests.support.loopback import serve_asgi
from tests.support.redis_server import free_port
from tests.support.wait import async_wait_until

SLEEPER = PoolIdentity(namespace="team", name="sleeper")


class ServiceDns(httpx.AsyncBaseTransport):
    """Sends every request to 127.0.0.1:`port`, over real TCP."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(host="127.0.0.1", port=self._port)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def woken_pool(*, proxy_503_first: int = 0) -> FastAPI:
    app = FastAPI()
    calls = {"n": 0}

    @app.post("/v1/chat")
    async def chat(body: dict[str, Any]) -> Any:
        calls["n"] += 1
        if calls["n"] <= proxy_503_first:  # a gateway in front: "no healthy upstream"
            return PlainTextResponse("no healthy upstream", status_code=503)
        return {"reply": f"awake: {body['message']}", "conversationId": "c-1"}

    return app


def _target(redis_url: str, pool: PoolIdentity = SLEEPER) -> Target:
    """What the operator reads for `pool` while it has no ready replica."""
    return Target(
        key=str(pool),
        url=redis_url,
        load_key=load_key("agentpool", pool),
        drain_key="unused",
        queue_keys=None,
        wake_key=wake_key("agentpool", pool),
    )


async def _waking(reader: LoadReader, redis_url: str) -> int:
    reading = (await reader.read([_target(redis_url)]))[str(SLEEPER)]
    assert reading is not None
    return reading.waking


@pytest.mark.parametrize("proxy_503_first", [0, 2])
async def test_a_call_to_a_pool_at_zero_wakes_it_waits_and_withdraws(
    redis_url: str, proxy_503_first: int
) -> None:
    redis = aioredis.Redis.from_url(redis_url)
    port = free_port()
    reader = LoadReader()
    async with httpx.AsyncClient(transport=ServiceDns(port)) as client:
        tool = PoolTool(
            "ask_sleeper",
            AgentImplementation(pool="sleeper", port=port, timeout_seconds=30),
            client,
            wake=WakeRequests(redis, "agentpool"),
            namespace="team",  # the caller's: the pool names no namespace of its own
        )
        call = asyncio.create_task(tool({"message": "hello"}, CallContext(tenant="acme")))

        async def counted() -> bool:
            return await _waking(reader, redis_url) == 1

        # Nothing listens: connection refused, and the operator's reader sees the caller.
        await async_wait_until(counted, timeout=10, what="the wake request, as the reader sees it")
        assert not call.done()
        async with serve_asgi(woken_pool(proxy_503_first=proxy_503_first), port):
            answer = await asyncio.wait_for(call, 30)
    assert answer["reply"] == "awake: hello"
    assert await redis.zcard(wake_key("agentpool", SLEEPER)) == 0  # withdrawn
    assert await _waking(reader, redis_url) == 0
    await reader.close()
    await redis.aclose()


async def test_a_pool_that_never_wakes_fails_the_call_at_its_deadline_and_withdraws(
    redis_url: str,
) -> None:
    redis = aioredis.Redis.from_url(redis_url)
    async with httpx.AsyncClient(transport=ServiceDns(free_port())) as client:
        tool = PoolTool(
            "ask_sleeper",
            AgentImplementation(pool="sleeper", namespace="team", timeout_seconds=2),
            client,
            wake=WakeRequests(redis, "agentpool"),
        )
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ToolConnectError):
            await tool({"message": "hello"}, CallContext(tenant="acme"))
        assert loop.time() - started <= 3.0
    assert await redis.zcard(wake_key("agentpool", SLEEPER)) == 0
    await redis.aclose()


async def test_a_wake_key_of_the_wrong_type_spoils_nothing_else(redis_url: str) -> None:
    """Any pod that writes a Redis can put a string where a wake key belongs: that pool
    reads as no caller waiting, and the other pools of that Redis still read."""
    redis = aioredis.Redis.from_url(redis_url)
    other = PoolIdentity(namespace="team", name="other")
    await redis.set(wake_key("agentpool", SLEEPER), "not a sorted set")
    await WakeRequests(redis, "agentpool").register(other, 30.0)
    reader = LoadReader()
    found = await reader.read([_target(redis_url), _target(redis_url, other)])
    sleeper_reading, other_reading = found[str(SLEEPER)], found[str(other)]
    assert sleeper_reading is not None
    assert sleeper_reading.waking == 0
    assert other_reading is not None
    assert other_reading.waking == 1
    await reader.close()
    await redis.aclose()
