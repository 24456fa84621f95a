"""The runtime's edge: what a request must be before any route sees it, and slow clients.

`RequestGuard` (ASGI middleware, every route, the other routers' too):

- a body larger than `max_body_bytes` is 413 (checked on `Content-Length` and while
  reading, so a chunked body cannot slip past);
- a body not fully read within `body_timeout_seconds` is 408 (a slow client holds a
  connection, not the server);
- a JSON body must be RFC 8259 JSON a store can keep: non-finite numbers (`NaN`,
  `Infinity`, which Python's decoder accepts), unpaired UTF-16 surrogates and nesting
  deeper than `MAX_BODY_DEPTH` are 422 at the door, so nothing stored can later fail to
  encode or decode.

`GuardedH11Protocol` (uvicorn's HTTP/1.1 protocol with one more timer): uvicorn has a
keep-alive timeout but none for reading request headers, so a client that drips a
header line every few seconds would hold its connection forever (slowloris). The timer
closes a connection whose request headers are not complete within
`header_timeout_seconds`. Ours because uvicorn offers no setting for it.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from agent_runtime.api_errors import error_body
from agent_runtime.json_value import MAX_BODY_DEPTH, first_unrepresentable, nesting_exceeds
from agent_runtime.resilience.deadline import within


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    """The limits of the HTTP edge (flags of `agentpool-agent`)."""

    max_body_bytes: int = 1 << 20
    body_timeout_seconds: float = 30.0
    header_timeout_seconds: float = 10.0
    max_connections: int = 1024
    keep_alive_seconds: int = 5


class _RefusedError(Exception):
    def __init__(self, status: int, kind: str, message: str) -> None:
        self.status = status
        self.body = error_body(kind, message)
        super().__init__(message)


def _reject_constant(name: str) -> Any:
    raise _RefusedError(422, "InvalidJson", f"non-finite number {name} is not JSON")


def check_json(body: bytes) -> None:
    """Refuse a JSON body a store could not keep faithfully (`_RefusedError`, 422)."""
    try:
        value = json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise _RefusedError(422, "InvalidJson", "the body is nested too deeply") from None
    except (ValueError, UnicodeDecodeError):
        return  # not JSON at all: the route's own validation answers (422)
    if nesting_exceeds(value, MAX_BODY_DEPTH):
        raise _RefusedError(
            422, "InvalidJson", f"the body nests deeper than {MAX_BODY_DEPTH} levels"
        )
    problem = first_unrepresentable(value)
    if problem is not None:
        raise _RefusedError(422, "InvalidJson", problem)


class RequestGuard:
    """ASGI middleware: body size, body read timeout, JSON that can be kept."""

    def __init__(self, app: ASGIApp, limits: EdgeLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        try:
            body = await self._read(scope, receive)
            if body and _is_json(scope):
                check_json(body)
        except _RefusedError as refused:
            await _answer(send, refused.status, refused.body)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect

        await self.app(scope, replay, send)

    async def _read(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.limits.max_body_bytes
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    raise _RefusedError(400, "BadRequest", "invalid Content-Length") from None
                if declared > limit:
                    raise _RefusedError(413, "BodyTooLarge", f"the body is over {limit} bytes")
        # `within`, not `asyncio.timeout`: every request with a body passes here, and the
        # context manager measured as the guard's largest cost.
        return await within(
            self.limits.body_timeout_seconds,
            _chunks(receive, limit),
            expired=lambda: _RefusedError(408, "RequestTimeout", "the body was not sent in time"),
        )


async def _chunks(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _RefusedError(400, "BadRequest", "the client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _RefusedError(413, "BodyTooLarge", f"the body is over {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return b"json" in value.lower()
    return True  # FastAPI parses a body without a content type as JSON too


async def _answer(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    if status in (408, 413):
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class GuardedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol that closes connections whose headers come too slowly."""

    header_timeout_seconds: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def _arm(self) -> None:
        armed_for = self.cycle  # a new request replaces it once its headers are complete
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()

        def expire() -> None:
            if self.cycle is armed_for and not self.transport.is_closing():
                self.transport.close()

        self._header_timer = self.loop.call_later(self.header_timeout_seconds, expire)

    def connection_lost(self, exc: Exception | None) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
        super().connection_lost(exc)


def guarded_protocol(header_timeout_seconds: float) -> type[GuardedH11Protocol]:
    """The protocol class with this header timeout (uvicorn takes a class, not a factory)."""
    return type(
        "GuardedH11Protocol",
        (GuardedH11Protocol,),
        {"header_timeout_seconds": header_timeout_seconds},
    )
