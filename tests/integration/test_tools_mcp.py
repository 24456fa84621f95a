"""MCP tools against a real MCP server (the `mcp` SDK's MCPServer, streamable HTTP) on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError as McpToolError
from mcp_types import ToolAnnotations
from pydantic import BaseModel
from starlette.applications import Starlette

from agent_runtime.config.tools import ToolsConfig
from agent_runtime.tools.build import build_registry
from agent_runtime.tools.errors import ToolError, ToolTransportError, ToolValidationError
from agent_runtime.tools.registry import ToolRegistry
from tests.support.identity import CONTEXT
from tests.support.loopback import serve_asgi
from tests.support.redis_server import free_port


class Sum(BaseModel):
    total: int


def mcp_app() -> Starlette:
    server = MCPServer("calculator")

    @server.tool(annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True))
    def add(a: int, b: int) -> Sum:
        """Add two integers."""
        return Sum(total=a + b)

    @server.tool(structured_output=False)
    def shout(text: str) -> str:
        """Upper-case the text."""
        return text.upper()

    @server.tool()
    def explode() -> str:
        """Always fails."""
        raise McpToolError("kaboom")

    return server.streamable_http_app(host="127.0.0.1")


@asynccontextmanager
async def serve(app: Starlette, port: int | None = None) -> AsyncIterator[str]:
    """The MCP endpoint of `app` served on loopback."""
    async with serve_asgi(app, port) as base:
        yield f"{base}/mcp"


@pytest.fixture
async def mcp_url() -> AsyncIterator[str]:
    async with serve(mcp_app()) as url:
        yield url


@asynccontextmanager
async def registry_with(
    *definitions: dict[str, Any], strict: bool = True
) -> AsyncIterator[ToolRegistry]:
    registry = await build_registry(
        ToolsConfig.model_validate({"definitions": list(definitions)}), strict=strict
    )
    try:
        yield registry
    finally:
        await registry.aclose()


async def test_every_tool_is_discovered_and_prefixed(mcp_url: str) -> None:
    async with registry_with({"name": "calc", "mcp": {"url": mcp_url}}) as registry:
        assert registry.names == ["calc__add", "calc__explode", "calc__shout"]
        add = registry.get("calc__add")
        assert add.description == "Add two integers."
        assert add.hints.read_only
        assert add.hints.idempotent
        assert set(add.parameters["properties"]) == {"a", "b"}
        assert add.result_schema is not None
        assert not registry.get("calc__shout").hints.read_only  # MCP default when absent
        assert (await registry.call("calc__add", {"a": 2, "b": 40}, context=CONTEXT)).value == {
            "total": 42
        }
        assert (await registry.call("calc__shout", {"text": "hi"}, context=CONTEXT)).value == "HI"


async def test_arguments_are_validated_locally_with_the_servers_schema(mcp_url: str) -> None:
    async with registry_with({"name": "calc", "mcp": {"url": mcp_url}}) as registry:
        with pytest.raises(ToolValidationError, match=r"\$\.a: 'two' is not of type 'integer'"):
            await registry.call("calc__add", {"a": "two", "b": 1}, context=CONTEXT)


async def test_tool_names_choose_remote_tools_under_the_prefix(mcp_url: str) -> None:
    definition = {
        "name": "summer",
        "description": "Sums",
        "mcp": {"url": mcp_url, "toolNames": ["add", "shout"], "prefix": "calc"},
    }
    async with registry_with(definition) as registry:
        assert registry.names == ["calc__add", "calc__shout"]
        assert registry.get("calc__add").description == "Sums"
        assert (await registry.call("calc__add", {"a": 1, "b": 1}, context=CONTEXT)).value == {
            "total": 2
        }


async def test_server_side_errors_become_tool_errors(mcp_url: str) -> None:
    async with registry_with({"name": "calc", "mcp": {"url": mcp_url}}) as registry:
        with pytest.raises(ToolError, match="kaboom"):
            await registry.call("calc__explode", {}, context=CONTEXT)


async def test_an_unknown_remote_tool_is_a_clear_error(mcp_url: str) -> None:
    with pytest.raises(Exception, match="has no tool 'nope' \\(it has: add, shout, explode\\)"):
        async with registry_with(
            {"name": "x", "mcp": {"url": mcp_url, "toolNames": ["add", "nope"]}}
        ):
            pass


async def test_an_unreachable_server_is_skipped_or_fatal() -> None:
    url = f"http://127.0.0.1:{free_port()}/mcp"
    async with registry_with({"name": "gone", "mcp": {"url": url}}, strict=False) as registry:
        assert registry.names == []
    with pytest.raises(ToolTransportError, match="listing tools"):
        async with registry_with({"name": "gone", "mcp": {"url": url}}):
            pass


async def test_a_server_that_goes_away_fails_calls_and_comes_back() -> None:
    port = free_port()
    async with serve(mcp_app(), port) as url:
        registry = await build_registry(
            ToolsConfig.model_validate(
                {
                    "definitions": [{"name": "calc", "mcp": {"url": url, "timeoutSeconds": 2}}],
                    "resilience": {"retry": {"enabled": False}},
                }
            )
        )
        assert (await registry.call("calc__shout", {"text": "a"}, context=CONTEXT)).value == "A"
    try:
        with pytest.raises(ToolTransportError, match=url):
            await registry.call("calc__shout", {"text": "a"}, context=CONTEXT)
        async with serve(mcp_app(), port):  # back on the same address: calls work again
            assert (await registry.call("calc__shout", {"text": "b"}, context=CONTEXT)).value == "B"
    finally:
        await registry.aclose()


async def test_concurrent_calls_share_one_session(mcp_url: str) -> None:
    async with registry_with({"name": "calc", "mcp": {"url": mcp_url}}) as registry:
        results = await asyncio.gather(
            *(registry.call("calc__shout", {"text": f"n{i}"}, context=CONTEXT) for i in range(20))
        )
        assert [r.value for r in results] == [f"N{i}" for i in range(20)]
