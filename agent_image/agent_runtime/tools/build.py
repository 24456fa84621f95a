"""Build a `ToolRegistry` from the runtime config (what the server does at start-up).

    registry = await build_registry(config.tools, redis=redis, keys=keys)
    ...
    await registry.aclose()

HTTP and agent tools share one pooled HTTP client, closed by `registry.aclose()`. MCP
definitions are discovered from their servers now; an unreachable MCP server is logged
and skipped (the pod still starts and serves its other tools) unless `strict`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import httpx
import structlog
from redis.asyncio import Redis

from agent_runtime.config.tools import ToolDefinition, ToolsConfig
from agent_runtime.memory.keys import KeySpace
from agent_runtime.resilience.clock import Clock, Sleep, monotonic, sleep
from agent_runtime.tools.agent import AGENT_PARAMETERS, PoolTool
from agent_runtime.tools.command import CommandTool
from agent_runtime.tools.errors import ToolError
from agent_runtime.tools.http import HttpTool, new_http_client
from agent_runtime.tools.registry import Closer, ToolRegistry
from agent_runtime.tools.tool import Implementation, Tool
from agent_runtime.tools.wake import WakeRequests

log = structlog.get_logger("agent_runtime.tools")


async def tools_for(
    definition: ToolDefinition,
    client: httpx.AsyncClient,
    *,
    environ: Mapping[str, str] | None = None,
    on_close: Callable[[Closer], None] = lambda _: None,
    runner_socket: str | None = None,
    wake: WakeRequests | None = None,
    namespace: str | None = None,
) -> list[Tool]:
    """The tools one definition stands for (several for a discover-all MCP server).

    Resources the tools hold (an MCP session) are handed to `on_close`; command tools
    run in the tool-runner at `runner_socket` when it is set; agent tools ask for a pool
    at zero to be woken through `wake`, naming pools in no namespace of their own in
    `namespace` (this pod's).
    """
    implementation: Implementation
    attempt_timeout: float
    parameters = definition.parameters
    if definition.http is not None:
        implementation = HttpTool(definition.name, definition.http, client, environ=environ)
        attempt_timeout = definition.http.timeout_seconds
    elif definition.command is not None:
        implementation = CommandTool(
            definition.name, definition.command, runner_socket=runner_socket
        )
        # The sandbox enforces its own wall clock; the margin lets it report, not be cut off.
        attempt_timeout = definition.command.timeout_seconds + 5
    elif definition.agent is not None:
        implementation = PoolTool(
            definition.name,
            definition.agent,
            client,
            environ=environ,
            wake=wake,
            namespace=namespace,
        )
        attempt_timeout = definition.agent.timeout_seconds
        parameters = parameters or AGENT_PARAMETERS
    else:
        assert definition.mcp is not None  # the only kind left
        # Imported here: the MCP client costs ~23 MB of RSS, paid only by pools using it.
        from agent_runtime.tools.mcp import McpServer, discover

        server = McpServer(definition.name, definition.mcp, environ=environ)
        try:
            tools = await discover(definition, server)
        except BaseException:
            await server.aclose()
            raise
        on_close(server.aclose)
        return tools
    assert parameters is not None  # ToolDefinition requires it for these kinds
    return [
        Tool(
            name=definition.name,
            description=definition.description,
            parameters=parameters,
            result_schema=definition.result_schema,
            hints=definition.hints,
            implementation=implementation,
            kind=definition.kind,
            attempt_timeout=attempt_timeout,
            resilience=definition.resilience,
            cache=definition.cache,
        )
    ]


async def build_registry(
    config: ToolsConfig,
    *,
    redis: Redis | None = None,
    keys: KeySpace | None = None,
    environ: Mapping[str, str] | None = None,
    http_client: httpx.AsyncClient | None = None,
    strict: bool = False,
    clock: Clock = monotonic,
    sleep: Sleep = sleep,
) -> ToolRegistry:
    """A registry holding every configured tool, with the config's pool defaults.

    `redis` backs tools whose breaker or cache is `shared`, under the pool's names
    (`keys`, required with `redis`); `environ` (default
    `os.environ`) supplies secret header values; `http_client` replaces the pooled client
    (it is then not closed by `aclose`). Built-in tools are added afterwards with
    `registry.register_function`.
    """
    runner_socket = config.command_runner.socket if config.command_runner is not None else None
    registry = ToolRegistry(
        resilience=config.resilience,
        cache_settings=config.cache,
        redis=redis,
        keys=keys,
        clock=clock,
        sleep=sleep,
    )
    wake = WakeRequests(redis, keys.prefix) if redis is not None and keys is not None else None
    client = http_client
    if client is None:
        client = new_http_client()
        registry.on_close(client.aclose)
    try:
        for definition in config.definitions:
            try:
                tools = await tools_for(
                    definition,
                    client,
                    environ=environ,
                    on_close=registry.on_close,
                    runner_socket=runner_socket,
                    wake=wake,
                    namespace=keys.pool.namespace if keys is not None else None,
                )
            except ToolError as exc:
                if strict:
                    raise
                log.error("tool unavailable at start-up", tool=definition.name, error=str(exc))
                continue
            for tool in tools:
                registry.register(tool)
    except BaseException:
        await registry.aclose()
        raise
    return registry
