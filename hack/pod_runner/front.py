"""kube-proxy's part for one pool: a local front port that spreads requests over the
pool's ready processes.

Balancing is per request, least connections first (ties go round robin), not per TCP
connection as kube-proxy does: a load generator that keeps its connections open would
otherwise never reach a pod that started after it connected, and the point of the front
is that new pods take load as they start. A draining or unready process gets no new
request; requests already sent to it run to their end (a turn on a pod being deleted is
not cut). With no ready process a request waits up to `pending_timeout` seconds for one
(a pool scaling from zero), then gets a 503 in the runtime's error shape.

EndpointSlices: kube-proxy sends a Service's connections to the endpoints of all its
slices. The pods' endpoints are this front's processes; the other endpoint a pool's
Service can have is the operator's activator (a slice managed by
`activator.agentpool.dev`, present while the pool has no ready pod). While the runner
reports such a slice (`activator`, the local address of its endpoint) and no process is
ready, a request goes to the activator, which wakes the pool and proxies it to the pod
(through the runner's pod network, `PodNetwork`). A client of the front names it by its
local address; in the cluster it would have named the Service, so the front sends the
Service's name as the Host (the activator finds the pool by it).

`PodNetwork` plays the pod network for clients outside the pods (the operator's
activator): an HTTP proxy that takes `http://POD-IP:PORT/...` and sends it to that pod's
process, waiting (up to `pending_timeout`) for the process to be ready, as a pod that the
cluster reports Ready answers at once.

A small proxy of our own (Starlette + httpx, both already dependencies) because the
balancing rule and the per-pod counts are what the tests and the benchmark look at.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import time
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
import structlog
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

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


async def serve(app: ASGIApp, sock: socket.socket) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    """Serve `app` on `sock` in this loop; returns once it accepts connections."""
    server = _EmbeddedServer(
        uvicorn.Config(app, log_config=None, log_level="warning", lifespan="off", interface="asgi3")
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
    activator: str | None = None
    """The activator's local URL while the pool's Service routes to it (an activator
    EndpointSlice exists); None otherwise."""
    to_activator: int = 0
    """Requests sent to the activator."""

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

    def pick(
        self, exclude: frozenset[str] = frozenset(), only: str | None = None
    ) -> Backend | None:
        """The serving backend with the fewest requests in flight (ties: round robin);
        `only`: that pod's, if it serves."""
        serving = [
            b
            for b in self.backends.values()
            if b.serving and b.pod not in exclude and (only is None or b.pod == only)
        ]
        if not serving:
            return None
        fewest = min(b.inflight for b in serving)
        tied = sorted((b for b in serving if b.inflight == fewest), key=lambda b: b.pod)
        return tied[next(self._ties) % len(tied)]

    async def _acquire(
        self, exclude: frozenset[str], only: str | None = None, *, activator: bool = True
    ) -> _Lease | str | None:
        """A lease on a backend; the activator's URL when the pool's Service routes there
        and no process serves; None after `pending_timeout`."""
        deadline = time.monotonic() + self.pending_timeout
        self.waiting += 1
        try:
            while True:
                backend = self.pick(exclude, only)
                if backend is not None:
                    backend.inflight += 1
                    backend.served += 1
                    return _Lease(backend)
                if activator and self.activator is not None:
                    return self.activator
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), timeout=left)
        finally:
            self.waiting -= 1

    async def _proxy(self, request: Request) -> Response:
        return await self.proxy(request)

    def _service_host(self) -> str:
        return f"{self.pool}.{self.namespace}.svc.cluster.local"

    async def proxy(self, request: Request, only: str | None = None) -> Response:
        """Send `request` to a ready process (`only`: that pod's), or to the activator."""
        assert self._client is not None
        body = await request.body()  # read once: a refused connection is retried elsewhere
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        tried: set[str] = set()
        while True:
            lease = await self._acquire(frozenset(tried), only, activator=only is None)
            if lease is None:
                waited = f"waited {self.pending_timeout:g}s"
                what = f"pod {only}" if only else f"pool {self.namespace}/{self.pool}"
                return JSONResponse(
                    {
                        "error": {
                            "type": "NoReadyPods",
                            "message": f"{what} has no ready pod ({waited})",
                        }
                    },
                    status_code=503,
                )
            if isinstance(lease, str):
                return await self._to_activator(request, lease, headers, body)
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

    async def _to_activator(
        self, request: Request, url: str, headers: list[tuple[str, str]], body: bytes
    ) -> Response:
        assert self._client is not None
        self.to_activator += 1
        host = request.headers.get("host", "")
        if not host.split(":")[0].endswith((".svc", ".svc.cluster.local")):
            host = self._service_host()
        upstream = self._client.build_request(
            request.method,
            url + request.url.path,
            params=request.url.query,
            headers=[*headers, ("host", host)],
            content=body,
        )
        try:
            answer = await self._client.send(upstream, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            return JSONResponse(
                {
                    "error": {
                        "type": "NoReadyPods",
                        "message": f"the activator is unreachable: {exc}",
                    }
                },
                status_code=503,
            )
        return StreamingResponse(
            _relay_plain(answer),
            status_code=answer.status_code,
            headers={k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP},
            background=BackgroundTask(answer.aclose),
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


async def _relay_plain(answer: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in answer.aiter_raw():
            yield chunk
    finally:
        await answer.aclose()


PodLookup = Callable[[str], "tuple[PoolFront, str] | None"]
"""A pod IP -> the pool front that has its process, and the pod's name."""


@dataclass
class PodNetwork:
    """An HTTP proxy to the pods' processes by pod IP (see the module's docstring)."""

    lookup: PodLookup
    host: str = "127.0.0.1"
    port: int = 0
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        sock = bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        self._server, self._task = await serve(self._app, sock)
        log.info("pod network serving", url=self.url)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        response = await self._route(request, scope)
        await response(scope, receive, send)

    async def _route(self, request: Request, scope: Scope) -> Response:
        # A proxy request names its target in absolute form (`POST http://IP:PORT/path`);
        # uvicorn leaves that whole URL in the path.
        raw = scope.get("raw_path") or b""
        target = urlsplit(raw.decode("latin-1")) if raw.startswith(b"http://") else None
        host = target.hostname if target is not None else request.url.hostname
        found = self.lookup(host or "")
        if found is None:
            return JSONResponse(
                {"error": {"type": "NoSuchPod", "message": f"no pod process has IP {host}"}},
                status_code=502,
            )
        front, pod = found
        if target is not None:
            scope["path"] = target.path or "/"
            scope["raw_path"] = (target.path or "/").encode("latin-1")
            scope["query_string"] = target.query.encode("latin-1")
            request = Request(scope, request.receive)
        return await front.proxy(request, only=pod)
