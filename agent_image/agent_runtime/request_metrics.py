"""Requests by route and status: `agentpool_http_requests_total` and their duration.

A plain ASGI middleware (not Starlette's `BaseHTTPMiddleware`, which costs a task and a
stream per request): it reads the status from the response's start and the route from
the scope after routing (FastAPI puts the matched `APIRoute` there), so labels are path
templates (`/v1/conversations/{conversation_id}`), never raw paths, and a scanner
probing random paths adds one series (`unmatched`), not thousands.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in _METHODS else "other"
            self._count(route, method, status).inc()
            self._timer(route).observe(time.perf_counter() - started)

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
