"""MCP discovery: which tools an MCP AgentTool's server offers, asked off the reconcile
path (kagent #1955: a server down must never block or fail a pool's reconcile) and never
hashed into a pool's config (kagent #2466: that rolled every pod at each discovery).

One loop for all MCP tools, not a timer per object; the result reaches the AgentTool's
status only when it changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx2
import structlog
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

log = structlog.get_logger(__name__)

ToolKey = tuple[str, str]


@dataclass(frozen=True)
class Discovered:
    """The last answer of one server, for one generation of its AgentTool."""

    generation: int | None
    names: tuple[str, ...] | None
    """The server's tool names, sorted; None when it could not be asked."""
    error: str | None
    at: datetime


async def list_tool_names(url: str, headers: Mapping[str, str], timeout: float) -> tuple[str, ...]:  # noqa: ASYNC109 - the MCP client's own read timeout, not a deadline of this call
    """Every tool name the MCP server at `url` lists (following pagination)."""
    names: list[str] = []
    async with (
        httpx2.AsyncClient(headers=dict(headers), timeout=httpx2.Timeout(timeout)) as http,
        Client(
            streamable_http_client(url, http_client=http), read_timeout_seconds=timeout
        ) as client,
    ):
        cursor: str | None = None
        while True:
            page = await client.list_tools(cursor=cursor)
            names.extend(t.name for t in page.tools)
            cursor = page.next_cursor
            if cursor is None:
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
