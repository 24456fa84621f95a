"""MCP tools: tools served by an MCP server, through the official `mcp` SDK client over
streamable HTTP.

`discover` lists the server's tools (following pagination) and turns each into a
`Tool` whose schema, result schema and hints (MCP annotations, with the spec's defaults
when absent) come from the server. Every tool is registered as `{prefix}__{name}`
(the prefix defaults to the definition's name): all the server lists, or only those in
`toolNames`.

One session per server is kept open and shared by its tools (see `McpServer`); close
it with `McpServer.aclose()` (the registry does, on `aclose()`).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Mapping
from typing import Any

import httpx2
import mcp_types
import structlog
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from agent_runtime.config.limits import TOOL_NAME_MAX_CHARS
from agent_runtime.config.tools import McpImplementation, ToolDefinition, ToolHints
from agent_runtime.tools.errors import ToolConfigError, ToolError, ToolTransportError
from agent_runtime.tools.http import resolve_headers
from agent_runtime.tools.tool import CallContext, Tool

log = structlog.get_logger("agent_runtime.tools.mcp")

PREFIX_SEPARATOR = "__"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def prefixed(prefix: str, remote_name: str) -> str:
    """`{prefix}__{remote_name}`, with characters tool names may not hold replaced by `_`
    and cut to the length tool names may have."""
    return (prefix + PREFIX_SEPARATOR + _UNSAFE.sub("_", remote_name))[:TOOL_NAME_MAX_CHARS]


def _leaf(error: BaseException) -> BaseException:
    """The first real error inside (possibly nested) exception groups."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


def hints_from(annotations: mcp_types.ToolAnnotations | None) -> ToolHints:
    """MCP annotations as hints; absent ones take the MCP defaults."""
    if annotations is None:
        return ToolHints()
    defaults = ToolHints()
    return ToolHints(
        read_only=annotations.read_only_hint
        if annotations.read_only_hint is not None
        else defaults.read_only,
        destructive=annotations.destructive_hint
        if annotations.destructive_hint is not None
        else defaults.destructive,
        idempotent=annotations.idempotent_hint
        if annotations.idempotent_hint is not None
        else defaults.idempotent,
        open_world=annotations.open_world_hint
        if annotations.open_world_hint is not None
        else defaults.open_world,
    )


def result_value(tool: str, result: mcp_types.CallToolResult) -> Any:
    """A tool result as a JSON-like value: structured content, else text, else content blocks."""
    if result.is_error:
        text = " ".join(
            block.text for block in result.content if isinstance(block, mcp_types.TextContent)
        )
        raise ToolError(tool, f"the MCP server reported an error: {text or 'no detail'}")
    if result.structured_content is not None:
        return result.structured_content
    if all(isinstance(block, mcp_types.TextContent) for block in result.content):
        return "\n".join(
            block.text for block in result.content if isinstance(block, mcp_types.TextContent)
        )
    return [block.model_dump(by_alias=True, exclude_none=True) for block in result.content]


class McpServer:
    """One MCP server: list its tools, call them over one long-lived session.

    The session is opened on the first call and kept by a background task (the SDK's
    transport lives in an anyio task group, which must be entered and left by one task);
    calls from any task share it. A call that fails below the MCP layer (connection
    refused or reset, server restarted) drops the session, so the next call opens a
    fresh one: a restarted server is picked up without restarting the runtime.
    """

    def __init__(
        self,
        name: str,
        spec: McpImplementation,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.spec = spec
        self._headers = resolve_headers(name, spec.headers, environ)
        self._client: Client | None = None
        self._holder: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._connecting = asyncio.Lock()

    async def _session(self) -> Client:
        if self._client is not None:
            return self._client
        async with self._connecting:
            if self._client is not None:
                return self._client
            ready: asyncio.Future[Client] = asyncio.get_running_loop().create_future()
            self._stop = asyncio.Event()
            self._holder = asyncio.create_task(self._hold(ready, self._stop))
            return await ready

    async def _hold(self, ready: asyncio.Future[Client], stop: asyncio.Event) -> None:
        try:
            async with (
                httpx2.AsyncClient(
                    headers=self._headers, timeout=httpx2.Timeout(self.spec.timeout_seconds)
                ) as http,
                Client(
                    streamable_http_client(self.spec.url, http_client=http),
                    read_timeout_seconds=self.spec.timeout_seconds,
                ) as client,
            ):
                self._client = client
                ready.set_result(client)
                await stop.wait()
        except asyncio.CancelledError:
            if not ready.done():
                ready.cancel()
            raise
        except Exception as exc:
            if not ready.done():
                ready.set_exception(exc)
            else:
                log.warning("MCP session ended", server=self.spec.url, error=repr(_leaf(exc)))
        finally:
            self._client = None

    async def _drop(self) -> None:
        """Close the current session (if any); the next call opens a new one."""
        holder, stop = self._holder, self._stop
        self._client = None
        self._holder = self._stop = None
        if stop is not None:
            stop.set()
        if holder is not None:
            with contextlib.suppress(Exception):
                await holder

    async def aclose(self) -> None:
        """Close the session."""
        await self._drop()

    async def list_tools(self) -> list[mcp_types.Tool]:
        """Every tool the server lists."""
        tools: list[mcp_types.Tool] = []
        try:
            client = await self._session()
            cursor: str | None = None
            while True:
                page = await client.list_tools(cursor=cursor)
                tools.extend(page.tools)
                cursor = page.next_cursor
                if cursor is None:
                    return tools
        except Exception as exc:
            await self._drop()
            raise ToolTransportError(
                self.name, f"listing tools at {self.spec.url} failed: {_leaf(exc)!r}"
            ) from None

    async def call(self, tool: str, remote_name: str, arguments: dict[str, Any]) -> Any:
        """Call `remote_name` with `arguments`; errors become `ToolError`s of `tool`."""
        try:
            client = await self._session()
            result = await client.call_tool(remote_name, arguments)
        except Exception as exc:
            leaf = _leaf(exc)
            if isinstance(leaf, MCPError) and leaf.code != mcp_types.CONNECTION_CLOSED:
                raise ToolError(tool, f"MCP error {leaf.code}: {leaf}") from None
            await self._drop()
            raise ToolTransportError(tool, f"{self.spec.url}: {leaf!r}") from None
        return result_value(tool, result)


def _tool(server: McpServer, remote: mcp_types.Tool, name: str, definition: ToolDefinition) -> Tool:
    async def implementation(arguments: dict[str, Any], context: CallContext) -> Any:
        return await server.call(name, remote.name, arguments)

    return Tool(
        name=name,
        description=definition.description or remote.description or "",
        parameters=dict(remote.input_schema),
        result_schema=dict(remote.output_schema) if remote.output_schema is not None else None,
        hints=definition.hints
        if "hints" in definition.model_fields_set
        else hints_from(remote.annotations),
        title=remote.title,
        implementation=implementation,
        kind="mcp",
        attempt_timeout=server.spec.timeout_seconds,
        resilience=definition.resilience,
        cache=definition.cache,
    )


async def discover(definition: ToolDefinition, server: McpServer) -> list[Tool]:
    """The tools one `mcp` definition stands for, discovered from its server."""
    spec = definition.mcp
    if spec is None:
        raise ToolConfigError(f"tool {definition.name!r} is not an MCP tool")
    listed = await server.list_tools()
    if spec.tool_names is not None:
        missing = set(spec.tool_names) - {t.name for t in listed}
        if missing:
            names = ", ".join(t.name for t in listed) or "none"
            raise ToolConfigError(
                f"tool {definition.name!r}: the MCP server at {spec.url} has no tool "
                f"{', '.join(repr(n) for n in sorted(missing))} (it has: {names})"
            )
        listed = [t for t in listed if t.name in spec.tool_names]
    prefix = spec.prefix or definition.name
    return [_tool(server, remote, prefixed(prefix, remote.name), definition) for remote in listed]
