"""Which tool calls a person approves before they run, from the pool's tool config.

A definition's `requireApproval: true` holds every tool it registers (for MCP, every
`{prefix}__*`); an MCP definition's `mcp.requireApproval` names remote tools, held as
`{prefix}__{remoteName}`. Pure: names are made by `tools.mcp.prefixed`, as registration does.
"""

from __future__ import annotations

from collections.abc import Callable

from agent_runtime.config.tools import ToolsConfig


def approval_rule(tools: ToolsConfig) -> Callable[[str], bool]:
    """A predicate on registered tool names: True when a call needs approval."""
    exact: set[str] = set()
    prefixes: list[str] = []
    for definition in tools.definitions:
        if definition.mcp is None:
            if definition.require_approval:
                exact.add(definition.name)
            continue
        # Imported here, as `tools.build` does: only pools with MCP tools load the client.
        from agent_runtime.tools.mcp import PREFIX_SEPARATOR, prefixed

        prefix = definition.mcp.prefix or definition.name
        if definition.require_approval:
            prefixes.append(prefix + PREFIX_SEPARATOR)
        exact.update(prefixed(prefix, remote) for remote in definition.mcp.require_approval)
    frozen_prefixes = tuple(prefixes)

    def needs_approval(tool: str) -> bool:
        return tool in exact or tool.startswith(frozen_prefixes)

    return needs_approval
