"""The activator's HTTP server: a request for a pool that its Service routes here is held
while the pool wakes, then proxied to a ready pod.

For each request: the pool from the Host header (`host.py`); refused unless the pool
exists, may scale to zero, and its Service routes to the activator now (its activator
slice exists, or was deleted a moment ago): the activator must never be a way around a
pool's NetworkPolicy to a pool that has ready pods of its own. Then a wake request in
the pool's Redis (`wake.py`), a wait for a ready endpoint (the slice watch wakes it), and
the proxy (`proxy.py`). Waits are bounded in time (`wait_seconds`) and in number per
pool (`max_held`); beyond either, a 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import structlog
from aiohttp import web

from agent_runtime.config.identity import PoolIdentity
from agentpool_operator.activator import metrics
from agentpool_operator.activator.errors import error
from agentpool_operator.activator.host import HostError, PoolAddress, pool_from_host
from agentpool_operator.activator.pools import PoolRoute, Pools, PoolsUnknownError
from agentpool_operator.activator.proxy import (
    CHUNK_BYTES,
    UpstreamUnreachableError,
    forward,
    new_session,
)
from agentpool_operator.activator.slices import Endpoint
from agentpool_operator.activator.wake import WakeRequests

log = structlog.get_logger(__name__)

Response = web.StreamResponse


@dataclass(frozen=True)
class ActivatorSettings:
    wait_seconds: float = 60.0
    """How long a request waits for its pool to have a ready endpoint."""
    max_held: int = 100
    """Requests held at once per pool; more get a 503 at once."""
    pod_proxy: str | None = None
    """An HTTP proxy to the pods (out of cluster: the pod runner's pod network)."""
    max_body_bytes: int = 1 << 20
    """The largest body held (the runtime's own default limit)."""
    max_held_bytes: int = 64 << 20
    """The bodies held at once, all pools together: the operator's memory is not the
    callers' to fill."""
    body_timeout_seconds: float = 30.0
    """How long a client may take to send its body."""


class _BodyRefusedError(Exception):
    def __init__(
        self, outcome: str, status: int, type_: str, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.answer = (outcome, status, type_, message)
        self.retry_after = retry_after


class Activator:
    def __init__(
        self,
        pools: Pools,
        wake: WakeRequests,
        settings: ActivatorSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pools = pools
        self._wake = wake
        self._settings = settings
        self._clock = clock
        self._held: dict[PoolAddress, int] = {}
        self._held_bytes = 0
        self._session: aiohttp.ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self.handle)
        return app

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self._wake.close()

    def held(self, pool: PoolAddress) -> int:
        return self._held.get(pool, 0)

    async def handle(self, request: web.Request) -> Response:
        try:
            pool = pool_from_host(request.headers.get("host"))
        except HostError as exc:
            return _refused("bad_host", 400, "NotAPoolHost", str(exc))
        try:
            route = self._pools.route(pool)
        except PoolsUnknownError:
            return _refused(
                "starting",
                503,
                "ActivatorStarting",
                "the activator has not listed the pools yet; retry in a moment",
                retry_after=1,
            )
        if route is None:
            return _refused("unknown_pool", 404, "PoolNotFound", f"no AgentPool {pool}")
        if not route.activated or not route.routed_here:
            why = (
                "it does not scale to zero in mode Operator"
                if not route.activated
                else "its Service does not route to the activator now: call the Service"
            )
            return _refused(
                "not_routed",
                421,
                "NotRoutedToActivator",
                f"the activator does not serve pool {pool}: {why}",
            )
        if self.held(pool) >= self._settings.max_held:
            return _refused(
                "too_many_waiting",
                503,
                "TooManyWaiting",
                f"{self._settings.max_held} requests already wait for pool {pool} to wake",
                retry_after=5,
            )
        try:
            body = await self._read_body(request)
        except _BodyRefusedError as refused:
            return _refused(*refused.answer, retry_after=refused.retry_after)
        self._held_bytes += len(body)
        try:
            return await self._serve(request, pool, route, body)
        finally:
            self._held_bytes -= len(body)

    async def _read_body(self, request: web.Request) -> bytes:
        """The body, within the size and time limits and the bytes all held requests may
        take; read in chunks, so an oversized one is refused before it is all here."""
        limit = min(self._settings.max_body_bytes, self._settings.max_held_bytes - self._held_bytes)
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise _BodyRefusedError("bad_request", 400, "BadRequest", "invalid Content-Length")
            if int(declared) > limit:
                raise _too_large(self._settings.max_body_bytes, int(declared))
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self._settings.body_timeout_seconds):
                async for chunk in request.content.iter_chunked(CHUNK_BYTES):
                    size += len(chunk)
                    if size > limit:
                        raise _too_large(self._settings.max_body_bytes, size)
                    chunks.append(chunk)
        except TimeoutError:
            raise _BodyRefusedError(
                "body_timeout", 408, "RequestTimeout", "the body was not sent in time"
            ) from None
        return b"".join(chunks)

    async def _serve(
        self, request: web.Request, pool: PoolAddress, route: PoolRoute, body: bytes
    ) -> Response:
        try:
            endpoints = await self._hold(pool, route)
        except asyncio.CancelledError:
            # The client left while its request was held (the server cancels the handler:
            # `handler_cancellation`): it no longer waits, nor asks for the pool to wake
            # (the hold's cleanup withdrew its request).
            metrics.REQUESTS.labels("client_gone").inc()
            raise
        if not endpoints:
            return _refused(
                "not_woken",
                503,
                "PoolNotWoken",
                f"pool {pool} has no ready replica after {self._settings.wait_seconds:g}s; "
                "it is waking or cannot scale up (paused, or at maxReplicas); retry later",
                retry_after=min(30.0, self._settings.wait_seconds),
            )
        if self._session is None:
            self._session = new_session()
        try:
            # Requests held together are spread over the pods that became ready together.
            spread = random.sample(endpoints, len(endpoints))
            answer = await forward(
                self._session, request, body, spread, pod_proxy=self._settings.pod_proxy
            )
        except UpstreamUnreachableError as exc:
            log.warning("no ready pod accepted the request", pool=str(pool), error=str(exc))
            return _refused(
                "upstream_failed",
                502,
                "PoolUnreachable",
                f"pool {pool} has ready endpoints but none accepted the connection",
                retry_after=1,
            )
        metrics.REQUESTS.labels("proxied").inc()
        return answer

    async def _hold(self, pool: PoolAddress, route: PoolRoute) -> list[Endpoint]:
        """The pool's ready endpoints, once it has some (registering a wake request while
        it has none); empty when the wait ran out."""
        if route.endpoints:
            return list(route.endpoints)
        started = self._clock()
        deadline = started + self._settings.wait_seconds
        identity = PoolIdentity(namespace=pool.namespace, name=pool.name)
        member = None
        self._held[pool] = self.held(pool) + 1
        metrics.HELD.inc()
        try:
            if route.redis_url is not None:
                member = await self._wake.register(
                    route.redis_url, identity, self._settings.wait_seconds
                )
                if member is not None:
                    metrics.WAKEUPS.inc()
                    log.info("holding a request while the pool wakes", pool=str(pool))
            while True:
                current = self._pools.route(pool)  # known: it was for the first look
                if current is None:
                    return []
                if current.endpoints:
                    return list(current.endpoints)
                left = deadline - self._clock()
                if left <= 0:
                    return []
                await self._pools.changed(left)
        finally:
            self._held[pool] -= 1
            if not self._held[pool]:
                del self._held[pool]
            metrics.HELD.dec()
            metrics.WAIT_SECONDS.observe(self._clock() - started)
            if member is not None and route.redis_url is not None:
                await asyncio.shield(self._wake.withdraw(route.redis_url, identity, member))


def _too_large(max_body_bytes: int, size: int) -> _BodyRefusedError:
    if size <= max_body_bytes:  # within the limit: the bodies already held fill the budget
        return _BodyRefusedError(
            "too_large",
            503,
            "TooManyWaiting",
            "the activator holds as many request bodies as it may; retry in a moment",
            retry_after=1,
        )
    return _BodyRefusedError(
        "too_large", 413, "BodyTooLarge", f"the body is over {max_body_bytes} bytes"
    )


def _refused(
    outcome: str, status: int, type_: str, message: str, *, retry_after: float | None = None
) -> Response:
    metrics.REQUESTS.labels(outcome).inc()
    return error(status, type_, message, retry_after=retry_after)


@dataclass
class ServingActivator:
    activator: Activator
    runner: web.AppRunner
    port: int

    async def cleanup(self) -> None:
        await self.runner.cleanup()
        await self.activator.close()


async def serve_activator(
    activator: Activator,
    port: int,
    host: str = "0.0.0.0",  # noqa: S104 - reached through its Service, as the agent pods are
) -> ServingActivator:
    """Serve the activator on `port` (0: a free one) until `cleanup`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    # A client that goes away while its request is held cancels the handler: its place
    # and its wake request are given up at once, not at the wait's deadline.
    runner = web.AppRunner(activator.app(), access_log=None, handler_cancellation=True)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    bound = sock.getsockname()[1]
    log.info("activator serving", port=bound)
    return ServingActivator(activator, runner, bound)
