"""Every HTTP request recorded: counted and timed by route, and logged as one line.

Metrics: `agentpool_http_requests_total` and `agentpool_http_request_duration_seconds`.
The log line (`request`: method, route, path, status, duration, client) replaces
uvicorn's access log, which is a string without the route, the duration or the request
id. Each request has an id: the caller's `X-Request-Id` when it is a plain token of at
most 64 characters, else a new one. It is bound to every log line of the request (the
turn's too, which runs in a task started from it) and sent back as `X-Request-Id`.
Probes and scrapes (`/livez`, `/readyz`, `/metrics`) log at DEBUG: one a few seconds
per pod would otherwise drown the rest.

A plain ASGI middleware (not Starlette's `BaseHTTPMiddleware`, which costs a task and a
stream per request): it reads the status from the response's start and the route from
the scope after routing (FastAPI puts the matched `APIRoute` there), so labels are path
templates (`/v1/conversations/{conversation_id}`), never raw paths, and a scanner
probing random paths adds one series (`unmatched`), not thousands.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

import structlog
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("agentpool.access")

REQUESTS = Counter(
    "agentpool_http_requests_total",
    "HTTP requests by route (the path template; `unmatched` for none), method and status.",
    ["route", "method", "status"],
)
DURATION = Histogram(
    "agentpool_http_request_duration_seconds",
    "Wall time of an HTTP request, from its start to the end of its response, by route.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)

_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"})
_QUIET_PATHS = frozenset({"/livez", "/readyz", "/metrics"})
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            # Anything else (too long, spaces, control characters) is not echoed into
            # logs and headers: the request gets an id of ours.
            if _REQUEST_ID.fullmatch(value):
                return str(value.decode())
            break
    return uuid.uuid4().hex[:16]


class RequestMetrics:
    """Counts and times every HTTP request the wrapped app answers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # Labelled children, looked up once per (route, method, status): `labels()` takes
        # a lock and builds a tuple on every call.
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._timers: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets when the app raises before answering
        rid = _request_id(scope)

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            with structlog.contextvars.bound_contextvars(request=rid):
                await self.app(scope, receive, send_and_note)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in _METHODS else "other"
            self._count(route, method, status).inc()
            self._timer(route).observe(elapsed)
            client = scope.get("client")
            log.log(
                logging.DEBUG if scope["path"] in _QUIET_PATHS else logging.INFO,
                "request",
                request=rid,
                method=method,
                route=route,
                path=scope["path"],
                status=status,
                duration_ms=round(elapsed * 1000, 3),
                client=client[0] if client else None,
            )

    def _count(self, route: str, method: str, status: int) -> Any:
        key = (route, method, status)
        child = self._counters.get(key)
        if child is None:
            child = self._counters[key] = REQUESTS.labels(route, method, str(status))
        return child

    def _timer(self, route: str) -> Any:
        child = self._timers.get(route)
        if child is None:
            child = self._timers[route] = DURATION.labels(route)
        return child
