"""MCP discovery: which tools an MCP AgentTool's server offers, asked off the reconcile
path (kagent #1955: a server down must never block or fail a pool's reconcile) and never
hashed into a pool's config (kagent #2466: that rolled every pod at each discovery).

One loop for all MCP tools, not a timer per object; the result reaches the AgentTool's
status only when it changes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from agentpool_operator import __version__

ToolKey = tuple[str, str]


@dataclass(frozen=True)
class Discovered:
    """The last answer of one server, for one generation of its AgentTool."""

    generation: int | None
    names: tuple[str, ...] | None
    """The server's tool names, sorted; None when it could not be asked."""
    error: str | None
    at: datetime


PROTOCOL_VERSION = "2025-06-18"


class McpError(Exception):
    """The MCP server answered, but not with what discovery needs."""


def _messages(response_text: str, content_type: str) -> list[dict[str, Any]]:
    """The JSON-RPC messages of a response: a JSON body, or the data of each event of a
    server-sent event stream (the two forms streamable HTTP allows)."""
    if content_type.startswith("application/json"):
        parsed = json.loads(response_text)
        return parsed if isinstance(parsed, list) else [parsed]
    found: list[dict[str, Any]] = []
    for event in response_text.replace("\r\n", "\n").split("\n\n"):
        data = [line[5:].lstrip() for line in event.split("\n") if line.startswith("data:")]
        if data:
            found.append(json.loads("\n".join(data)))
    return found


async def list_tool_names(
    url: str,
    headers: Mapping[str, str],
    timeout: float,  # noqa: ASYNC109 - each request's own timeout, not a deadline of this call
) -> tuple[str, ...]:
    """Every tool name the MCP server at `url` lists (streamable HTTP: initialize, then
    tools/list following pagination).

    Three JSON-RPC requests over aiohttp (kopf's own HTTP client) rather than the `mcp`
    SDK: the SDK and what it pulls in (cryptography, starlette, httpx2, opentelemetry)
    measured about 25 MB of the operator image, over its 150 MB goal (docs/images.md),
    for a client that only ever lists tools.
    """
    session_headers = {
        **headers,
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
    }
    request_id = 0

    async def call(http: aiohttp.ClientSession, method: str, params: dict[str, Any] | None) -> Any:
        nonlocal request_id
        request_id += 1
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            body["params"] = params
        async with http.post(url, json=body, headers=session_headers) as response:
            text = await response.text()
            if response.status >= 400:
                raise McpError(f"{method}: HTTP {response.status}: {text[:200]}")
            session = response.headers.get("Mcp-Session-Id")
            if session:
                session_headers["Mcp-Session-Id"] = session
            for message in _messages(text, response.headers.get("Content-Type", "")):
                if message.get("id") == request_id:
                    if "error" in message:
                        raise McpError(f"{method}: {message['error']}")
                    return message.get("result")
        raise McpError(f"{method}: no answer in the response")

    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(timeout=client_timeout) as http:
        started = await call(
            http,
            "initialize",
            {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "agentpool-operator", "version": __version__},
            },
        )
        version = str((started or {}).get("protocolVersion", PROTOCOL_VERSION))
        session_headers["MCP-Protocol-Version"] = version
        notice = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        async with http.post(url, json=notice, headers=session_headers) as response:
            await response.read()
        names: list[str] = []
        cursor: str | None = None
        while True:
            page = await call(http, "tools/list", {"cursor": cursor} if cursor else {})
            names.extend(str(tool["name"]) for tool in (page or {}).get("tools", []))
            cursor = (page or {}).get("nextCursor")
            if not cursor:
                break
        if "Mcp-Session-Id" in session_headers:
            async with http.delete(url, headers=session_headers) as response:
                await response.read()
    return tuple(sorted(set(names)))


Lister = Callable[[str, Mapping[str, str], float], Awaitable[tuple[str, ...]]]


class Discoverer:
    """Asks MCP servers in the background and remembers the answers."""

    def __init__(
        self,
        on_change: Callable[[ToolKey], None] = lambda key: None,
        *,
        interval: float = 300.0,
        lister: Lister = list_tool_names,
    ) -> None:
        self.results: dict[ToolKey, Discovered] = {}
        self._targets: dict[ToolKey, tuple[int | None, str, dict[str, str], float]] = {}
        self._running: set[ToolKey] = set()
        self.on_change = on_change
        """Called with a tool's key when its discovery result changed."""
        self._interval = interval
        self._lister = lister
        self._tasks: set[asyncio.Task[None]] = set()

    def want(
        self,
        key: ToolKey,
        generation: int | None,
        url: str,
        headers: dict[str, str],
        timeout: float,
    ) -> None:
        """Discover `key` now if this generation was never asked (else at the next round)."""
        self._targets[key] = (generation, url, headers, timeout)
        known = self.results.get(key)
        if (known is None or known.generation != generation) and key not in self._running:
            self._start(key)

    def forget(self, key: ToolKey) -> None:
        self._targets.pop(key, None)
        self.results.pop(key, None)

    def _start(self, key: ToolKey) -> None:
        self._running.add(key)
        task = asyncio.create_task(self._discover(key), name=f"discover-{key[0]}/{key[1]}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _discover(self, key: ToolKey) -> None:
        try:
            target = self._targets.get(key)
            if target is None:
                return
            generation, url, headers, timeout = target
            try:
                async with asyncio.timeout(timeout + 5):
                    names = await self._lister(url, headers, timeout)
                found = Discovered(generation, tuple(names), None, datetime.now(UTC))
            except Exception as exc:  # any failure of a remote server is a status, not a crash
                reason = f"{type(exc).__name__}: {exc}"[:512]
                found = Discovered(generation, None, reason, datetime.now(UTC))
            old = self.results.get(key)
            if old is not None and (old.names, old.error) == (found.names, found.error):
                # Same answer: keep the time it last changed, so nothing is written.
                found = Discovered(generation, old.names, old.error, old.at)
            self.results[key] = found
            if old != found:
                self.on_change(key)
        finally:
            self._running.discard(key)

    async def run(self) -> None:
        """Ask every known server again every `interval` seconds."""
        while True:
            await asyncio.sleep(self._interval)
            for key in list(self._targets):
                if key not in self._running:
                    self._start(key)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
