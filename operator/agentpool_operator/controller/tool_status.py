"""An AgentTool's status: accepted (the API server validated it), how it is implemented,
and for an MCP server what discovery found. Written only when it changes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from agentpool_operator import api
from agentpool_operator.controller.conditions import render_conditions, timestamp
from agentpool_operator.controller.discovery import Discovered, Discoverer, ToolKey
from agentpool_operator.controller.view import Body
from agentpool_operator.kube import KubeApi


def tool_status(
    tool: api.AgentTool,
    discovered: Discovered | None,
    previous: Mapping[str, Any],
    now: datetime,
) -> dict[str, Any]:
    """The status of `tool` given the last discovery of its server (MCP tools only)."""
    conditions: list[tuple[str, str, str, str]] = [
        ("Ready", "True", "Accepted", f"a {tool.spec.implementation} tool")
    ]
    status: dict[str, Any] = {"implementation": tool.spec.implementation}
    if tool.metadata.generation is not None:
        status["observedGeneration"] = tool.metadata.generation
    mcp = tool.spec.mcp
    if mcp is not None:
        if discovered is None or discovered.generation != tool.metadata.generation:
            conditions.append(("Discovered", "Unknown", "Pending", "the server was not asked yet"))
        elif discovered.names is None:
            conditions.append(("Discovered", "False", "DiscoveryFailed", discovered.error or ""))
        else:
            wanted = list(mcp.tool_names) or list(discovered.names)
            offered = [n for n in wanted if n in discovered.names]
            missing = [n for n in wanted if n not in discovered.names]
            status["discovered"] = {
                "names": offered,
                "lastDiscoveryTime": timestamp(discovered.at),
            }
            if missing:
                conditions.append(
                    (
                        "Discovered",
                        "False",
                        "ToolsMissing",
                        "the server does not offer " + ", ".join(missing),
                    )
                )
            else:
                conditions.append(("Discovered", "True", "Discovered", f"{len(offered)} tools"))
    rendered = render_conditions(conditions, previous, tool.metadata.generation, now)
    status["conditions"] = rendered
    return status


def _changed(previous: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return any(previous.get(k) != v for k, v in new.items())


class ToolReconciler:
    """Keeps each AgentTool's status true; asks MCP servers through the Discoverer."""

    def __init__(
        self,
        tool_body: Callable[[str, str], Body | None],
        kube: KubeApi,
        discoverer: Discoverer,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._tool = tool_body
        self._kube = kube
        self.discoverer = discoverer
        self._clock = clock
        self._written: dict[ToolKey, dict[str, Any]] = {}

    async def reconcile(self, key: ToolKey) -> None:
        namespace, name = key
        body = self._tool(namespace, name)
        if body is None:
            self.discoverer.forget(key)
            self._written.pop(key, None)
            return
        tool = api.AgentTool.model_validate(body)
        mcp = tool.spec.mcp
        if mcp is not None:
            # Literal headers only: a header from a Secret is the runtime's to read; a
            # server that needs it shows DiscoveryFailed here and still works in the pods.
            headers = {h.name: h.value for h in mcp.headers if h.value is not None}
            self.discoverer.want(
                key, tool.metadata.generation, str(mcp.url), headers, float(mcp.timeout_seconds)
            )
        previous: dict[str, Any] = {**(body.get("status") or {}), **self._written.get(key, {})}
        status = tool_status(tool, self.discoverer.results.get(key), previous, self._clock())
        if _changed(previous, status):
            await self._kube.apply_status("AgentTool", namespace, name, status)
            self._written[key] = status
