"""kube-proxy's part for one pool: a local front port that spreads requests over the
pool's ready processes.

Balancing is per request, least connections first (ties go round robin), not per TCP
connection as kube-proxy does: a load generator that keeps its connections open would
otherwise never reach a pod that started after it connected, and the point of the front
is that new pods take load as they start. A draining or unready process gets no new
request; requests already sent to it run to their end (a turn on a pod being deleted is
not cut). With no ready process a request waits up to `pending_timeout` seconds for one
(a pool scaling from zero), then gets a 503 in the runtime's error shape.

A small proxy of our own (Starlette + httpx, both already dependencies) because the
balancing rule and the per-pod counts are what the tests and the benchmark look at.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import time
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass, field

import httpx
import structlog
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

log = structlog.get_logger(__name__)

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]


@dataclass
class Backend:
    """One pod's process as the front sees it."""

    pod: str
    port: int
    ready: bool = False
    draining: bool = False
    inflight: int = 0
    served: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def serving(self) -> bool:
        return self.ready and not self.draining


@dataclass
class _Lease:
    """One request's hold on a backend, released once (stream end or disconnect)."""

    backend: Backend
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.backend.inflight -= 1


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside the runner's loop: the runner owns SIGINT/SIGTERM, not each server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket (port 0: a free one, known before anyone connects)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(False)
    return sock


async def serve(app: Starlette, sock: socket.socket) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    """Serve `app` on `sock` in this loop; returns once it accepts connections."""
    server = _EmbeddedServer(
        uvicorn.Config(app, log_config=None, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("server stopped before it started")
        await asyncio.sleep(0.01)
    return server, task


@dataclass
class PoolFront:
    """The front of one pool: its backends and the HTTP server that spreads requests."""

    namespace: str
    pool: str
    host: str = "127.0.0.1"
    port: int = 0
    pending_timeout: float = 10.0
    backends: dict[str, Backend] = field(default_factory=dict)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _ties: itertools.count[int] = field(default_factory=itertools.count)
    _client: httpx.AsyncClient | None = None
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None
    _sock: socket.socket | None = None
    waiting: int = 0
    """Requests waiting for a ready process."""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def bind(self) -> None:
        """Take the port now (thread-safe, no loop needed): its URL is known at once."""
        self._sock = bind(self.host, self.port)
        self.port = self._sock.getsockname()[1]

    async def start(self) -> None:
        if self._sock is None:
            self.bind()
        assert self._sock is not None
        # No overall timeout: a turn may take minutes; connecting to a local process may not.
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(None, connect=2.0),
            # Idle connections expire well before the agent's own keep-alive (5 s): a
            # request sent on a connection the agent is closing at that moment fails with
            # a ReadError that nothing can retry safely (a POST), a 500 to the caller.
            limits=httpx.Limits(
                max_connections=2000, max_keepalive_connections=200, keepalive_expiry=2.0
            ),
        )
        app = Starlette(routes=[Route("/{path:path}", self._proxy, methods=METHODS)])
        self._server, self._task = await serve(app, self._sock)
        log.info("pool front serving", namespace=self.namespace, pool=self.pool, url=self.url)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        if self._client is not None:
            await self._client.aclose()

    def changed(self) -> None:
        """Wake requests waiting for a backend (call after any backend state change)."""
        self._changed.set()
        self._changed = asyncio.Event()

    def pick(self, exclude: frozenset[str] = frozenset()) -> Backend | None:
        """The serving backend with the fewest requests in flight (ties: round robin)."""
        serving = [b for b in self.backends.values() if b.serving and b.pod not in exclude]
        if not serving:
            return None
        fewest = min(b.inflight for b in serving)
        tied = sorted((b for b in serving if b.inflight == fewest), key=lambda b: b.pod)
        return tied[next(self._ties) % len(tied)]

    async def _acquire(self, exclude: frozenset[str]) -> _Lease | None:
        deadline = time.monotonic() + self.pending_timeout
        self.waiting += 1
        try:
            while True:
                backend = self.pick(exclude)
                if backend is not None:
                    backend.inflight += 1
                    backend.served += 1
                    return _Lease(backend)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), timeout=left)
        finally:
            self.waiting -= 1

    async def _proxy(self, request: Request) -> Response:
        assert self._client is not None
        body = await request.body()  # read once: a refused connection is retried elsewhere
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        tried: set[str] = set()
        while True:
            lease = await self._acquire(frozenset(tried))
            if lease is None:
                return JSONResponse(
                    {
                        "error": {
                            "type": "NoReadyPods",
                            "message": f"pool {self.namespace}/{self.pool} has no ready pod "
                            f"(waited {self.pending_timeout:g}s)",
                        }
                    },
                    status_code=503,
                )
            backend = lease.backend
            upstream = self._client.build_request(
                request.method,
                backend.url + request.url.path,
                params=request.url.query,
                headers=headers,
                content=body,
            )
            try:
                answer = await self._client.send(upstream, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout):
                # The process went away between its last probe and this request, or did
                # not accept in time (a saturated machine): nothing reached it, so
                # another one may take the request.
                lease.release()
                backend.ready = False
                tried.add(backend.pod)
                continue
            except BaseException:
                lease.release()
                raise
            return StreamingResponse(
                _relay(answer, lease),
                status_code=answer.status_code,
                headers={k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP},
                background=BackgroundTask(_close, answer, lease),
            )


async def _relay(answer: httpx.Response, lease: _Lease) -> AsyncIterator[bytes]:
    try:
        async for chunk in answer.aiter_raw():
            yield chunk
    finally:
        await _close(answer, lease)


async def _close(answer: httpx.Response, lease: _Lease) -> None:
    lease.release()
    await answer.aclose()
