"""The activator's server against a real Redis and a real upstream HTTP server: a request
for a pool with no ready endpoint is held while a wake request sits in the pool's Redis
(where the autoscaler's reader counts it), then proxied, streaming, once the pool has a
ready endpoint; everything it does not serve is refused in the runtime's error shape.

The pools' view (`Pools`) is a table the test sets, standing in for the operator's
indexes (test_activator_e2e.py runs the whole chain on the local cluster).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

import httpx
import pytest
import redis.asyncio as aioredis
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from agent_runtime.config.identity import PoolIdentity
from agent_runtime.config.load import wake_key
from agentpool_operator.activator.host import PoolAddress
from agentpool_operator.activator.pools import PoolRoute
from agentpool_operator.activator.server import (
    Activator,
    ActivatorSettings,
    ServingActivator,
    serve_activator,
)
from agentpool_operator.activator.slices import Endpoint
from agentpool_operator.activator.wake import WakeRequests
from tests.support.wait import async_wait_until

POOL = PoolAddress("shop", "support")
HOST = "support.shop.svc.cluster.local"


@dataclass
class TablePools:
    """The activator's view of the pools, set by the test."""

    routes: dict[PoolAddress, PoolRoute] = field(default_factory=dict)
    _event: asyncio.Event = field(default_factory=asyncio.Event)

    def route(self, pool: PoolAddress) -> PoolRoute | None:
        return self.routes.get(pool)

    async def changed(self, within: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout=max(0.0, within))

    def set(self, pool: PoolAddress, route: PoolRoute) -> None:
        self.routes[pool] = route
        self._event.set()
        self._event = asyncio.Event()


@dataclass
class Upstream:
    """A pod: echoes what it got; `/stream` sends one event, then the rest once released."""

    port: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat", self.chat, methods=["POST"]),
                Route("/stream", self.stream, methods=["POST"]),
            ]
        )

    async def chat(self, request: Request) -> Response:
        return JSONResponse(
            {
                "body": (await request.body()).decode(),
                "query": request.url.query,
                "authorization": request.headers.get("authorization"),
            }
        )

    async def stream(self, request: Request) -> Response:
        async def events() -> AsyncIterator[bytes]:
            yield b"data: first\n\n"
            await self.release.wait()
            yield b"data: last\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")


@contextlib.asynccontextmanager
async def upstream_serving() -> AsyncIterator[Upstream]:
    upstream = Upstream()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    upstream.port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(upstream.app(), log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await async_wait_until(lambda: _started(server), timeout=10, what="the upstream")
    try:
        yield upstream
    finally:
        upstream.release.set()
        server.should_exit = True
        await task


async def _started(server: uvicorn.Server) -> bool:
    return bool(server.started)


@contextlib.asynccontextmanager
async def activator_serving(
    pools: TablePools, settings: ActivatorSettings | None = None
) -> AsyncIterator[tuple[Activator, ServingActivator, httpx.AsyncClient]]:
    activator = Activator(pools, WakeRequests(), settings or ActivatorSettings())
    serving = await serve_activator(activator, 0, host="127.0.0.1")
    client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{serving.port}", timeout=30)
    try:
        yield activator, serving, client
    finally:
        await client.aclose()
        await serving.cleanup()


def at_zero(redis_url: str) -> PoolRoute:
    return PoolRoute(activated=True, routed_here=True, redis_url=redis_url, endpoints=())


async def live_wake_requests(redis_url: str) -> int:
    async with aioredis.from_url(redis_url) as conn:
        key = wake_key("agentpool", PoolIdentity(namespace=POOL.namespace, name=POOL.name))
        count: int = await conn.zcount(key, f"({time.time()}", "+inf")
        return count


async def test_a_request_is_held_while_the_pool_wakes_then_proxied_with_its_credentials(
    redis_url: str,
) -> None:
    pools = TablePools()
    pools.set(POOL, at_zero(redis_url))
    async with upstream_serving() as upstream, activator_serving(pools) as (activator, _, client):
        sent = asyncio.create_task(
            client.post(
                "/v1/chat?trace=1",
                headers={"Host": HOST, "Authorization": "Bearer caller-token"},
                content=b'{"message": "hello"}',
            )
        )

        # Held: one wake request in the pool's Redis, where the autoscaler reads it.
        async def registered() -> bool:
            return await live_wake_requests(redis_url) == 1

        await async_wait_until(registered, timeout=10, what="a wake request")
        assert activator.held(POOL) == 1
        assert not sent.done()

        endpoint = Endpoint("127.0.0.1", upstream.port, "support-1")
        pools.set(POOL, replace(at_zero(redis_url), endpoints=(endpoint,)))
        answer = await asyncio.wait_for(sent, timeout=10)

        assert answer.status_code == 200, answer.text
        assert answer.json() == {
            "body": '{"message": "hello"}',
            "query": "trace=1",
            "authorization": "Bearer caller-token",
        }
        assert activator.held(POOL) == 0
        assert await live_wake_requests(redis_url) == 0  # withdrawn once woken


async def test_a_streamed_answer_streams_through(redis_url: str) -> None:
    pools = TablePools()
    async with upstream_serving() as upstream, activator_serving(pools) as (_, _, client):
        endpoint = Endpoint("127.0.0.1", upstream.port)
        pools.set(POOL, replace(at_zero(redis_url), endpoints=(endpoint,)))
        async with client.stream("POST", "/stream", headers={"Host": HOST}) as answer:
            assert answer.status_code == 200
            chunks = answer.aiter_raw()
            # The first event arrives while the pod still holds the last one back.
            first = await asyncio.wait_for(anext(chunks), timeout=10)
            assert first == b"data: first\n\n"
            upstream.release.set()
            rest = b"".join([chunk async for chunk in chunks])
        assert rest == b"data: last\n\n"


@pytest.mark.parametrize(
    ("host", "status", "type_"),
    [
        ("support", 400, "NotAPoolHost"),
        ("10.0.0.1:8080", 400, "NotAPoolHost"),
        ("billing.shop.svc", 404, "PoolNotFound"),
    ],
)
async def test_a_host_that_names_no_known_pool_is_refused(
    redis_url: str, host: str, status: int, type_: str
) -> None:
    pools = TablePools()
    pools.set(POOL, at_zero(redis_url))
    async with activator_serving(pools) as (_, _, client):
        answer = await client.post("/v1/chat", headers={"Host": host}, content=b"{}")
    assert answer.status_code == status
    assert answer.json()["error"]["type"] == type_
    assert answer.json()["error"]["message"]


async def test_a_pool_its_service_does_not_route_here_is_refused(redis_url: str) -> None:
    """A pool with ready pods and no activator slice: the activator is no way around its
    NetworkPolicy. Nor is a pool that does not scale to zero."""
    pools = TablePools()
    ready = (Endpoint("127.0.0.1", 9),)
    async with activator_serving(pools) as (_, _, client):
        pools.set(POOL, replace(at_zero(redis_url), routed_here=False, endpoints=ready))
        answer = await client.post("/v1/chat", headers={"Host": HOST}, content=b"{}")
        assert answer.status_code == 421
        assert answer.json()["error"]["type"] == "NotRoutedToActivator"
        assert "does not route to the activator" in answer.json()["error"]["message"]

        pools.set(POOL, replace(at_zero(redis_url), activated=False))
        answer = await client.post("/v1/chat", headers={"Host": HOST}, content=b"{}")
        assert answer.status_code == 421
        assert "does not scale to zero" in answer.json()["error"]["message"]


async def test_a_pool_that_does_not_wake_in_time_gives_503_with_retry_after(
    redis_url: str,
) -> None:
    pools = TablePools()
    pools.set(POOL, at_zero(redis_url))
    async with activator_serving(pools, ActivatorSettings(wait_seconds=0.5)) as (
        activator,
        _,
        client,
    ):
        answer = await client.post("/v1/chat", headers={"Host": HOST}, content=b"{}")
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "1"
        assert answer.json()["error"]["type"] == "PoolNotWoken"
        assert activator.held(POOL) == 0
    assert await live_wake_requests(redis_url) == 0


async def test_beyond_the_held_bound_a_request_gets_503_at_once(redis_url: str) -> None:
    pools = TablePools()
    pools.set(POOL, at_zero(redis_url))
    async with activator_serving(pools, ActivatorSettings(max_held=1)) as (activator, _, client):
        first = asyncio.create_task(client.post("/v1/chat", headers={"Host": HOST}, content=b"{}"))
        await async_wait_until(lambda: _held(activator), timeout=10, what="one held request")
        answer = await client.post("/v1/chat", headers={"Host": HOST}, content=b"{}")
        assert answer.status_code == 503
        assert answer.json()["error"]["type"] == "TooManyWaiting"
        assert int(answer.headers["retry-after"]) >= 1
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first

        # The client that left no longer holds a place, nor asks for the pool to wake.
        async def released() -> bool:
            return activator.held(POOL) == 0 and await live_wake_requests(redis_url) == 0

        await async_wait_until(released, timeout=10, what="the left client's hold released")


async def _held(activator: Activator) -> bool:
    return activator.held(POOL) == 1


async def test_a_body_over_the_limit_is_refused_before_it_is_held(redis_url: str) -> None:
    pools = TablePools()
    pools.set(POOL, at_zero(redis_url))
    settings = ActivatorSettings(max_body_bytes=2048, max_held_bytes=4096)
    async with activator_serving(pools, settings) as (activator, _, client):
        declared = await client.post("/v1/chat", headers={"Host": HOST}, content=b"x" * 4000)
        assert declared.status_code == 413
        assert declared.json()["error"]["type"] == "BodyTooLarge"

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
            for _ in range(4):
                yield b"x" * 1000

        streamed = await client.post("/v1/chat", headers={"Host": HOST}, content=chunks())
        assert streamed.status_code == 413
        assert activator.held(POOL) == 0
    assert await live_wake_requests(redis_url) == 0


async def test_the_bodies_held_together_stay_within_their_budget(redis_url: str) -> None:
    pools = TablePools()
    pools.set(POOL, at_zero(redis_url))
    settings = ActivatorSettings(max_body_bytes=2048, max_held_bytes=3000)
    async with activator_serving(pools, settings) as (activator, _, client):
        first = asyncio.create_task(
            client.post("/v1/chat", headers={"Host": HOST}, content=b"x" * 2000)
        )
        await async_wait_until(lambda: _held(activator), timeout=10, what="one held request")
        # Within its own limit, but the first body leaves 1,000 bytes of the budget.
        answer = await client.post("/v1/chat", headers={"Host": HOST}, content=b"y" * 1500)
        assert answer.status_code == 503
        assert answer.json()["error"]["type"] == "TooManyWaiting"
        assert answer.headers["retry-after"] == "1"
        small = asyncio.create_task(
            client.post("/v1/chat", headers={"Host": HOST}, content=b"z" * 500)
        )
        await async_wait_until(
            lambda: _held_n(activator, 2), timeout=10, what="the small one held too"
        )
        for task in (first, small):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _held_n(activator: Activator, n: int) -> bool:
    return activator.held(POOL) == n
