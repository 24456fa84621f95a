"""The cache layer: serves repeated calls of cacheable tools from `ToolCache`."""

from __future__ import annotations

from typing import Any

from agent_runtime.cache import ToolCache
from agent_runtime.tools import metrics
from agent_runtime.tools.middleware.chain import Next
from agent_runtime.tools.middleware.observe import labelled
from agent_runtime.tools.tool import Invocation, Tool, ToolPolicy


def cacheable(tool: Tool, policy: ToolPolicy) -> bool:
    """Read-only tools, or tools that opted in, with caching enabled."""
    settings = policy.cache
    return settings.enabled and (tool.hints.read_only or settings.allow_non_read_only)


class CacheMiddleware:
    """Looks the call up by tool name, tenant and canonical arguments; computes once on a miss."""

    name = "cache"

    def __init__(self, cache: ToolCache) -> None:
        self.cache = cache

    def applies_to(self, tool: Tool, policy: ToolPolicy) -> bool:
        """Only cacheable tools."""
        return cacheable(tool, policy)

    async def __call__(self, call: Invocation, call_next: Next) -> Any:
        if not cacheable(call.tool, call.policy):
            return await call_next(call)
        tool = call.tool.name

        async def compute() -> Any:
            return await call_next(call)

        value, hit = await self.cache.get_or_compute(
            tool, call.context.tenant, call.arguments, call.policy.cache.ttl_seconds, compute
        )
        call.cached = hit
        labelled(metrics.CACHE, tool, "hit" if hit else "miss").inc()
        return value
