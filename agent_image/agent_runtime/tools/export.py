"""Tools in the two formats models and peers speak: OpenAI function calling and MCP.

Both carry the JSON Schema unchanged (no flattening or rewriting); the MCP form also
carries the result schema and the hints as MCP annotations, so nothing is lost.
"""

from __future__ import annotations

from typing import Any

from agent_runtime.tools.tool import Tool


def to_openai(tool: Tool) -> dict[str, Any]:
    """The tool as an OpenAI chat-completions `tools[]` entry."""
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        },
    }


def to_mcp(tool: Tool) -> dict[str, Any]:
    """The tool as an MCP `Tool` object (what `tools/list` returns)."""
    out: dict[str, Any] = {
        "name": tool.name,
        "description": tool.description,
        "inputSchema": tool.parameters,
        "annotations": {
            "readOnlyHint": tool.hints.read_only,
            "destructiveHint": tool.hints.destructive,
            "idempotentHint": tool.hints.idempotent,
            "openWorldHint": tool.hints.open_world,
        },
    }
    if tool.title is not None:
        out["title"] = tool.title
        out["annotations"]["title"] = tool.title
    if tool.result_schema is not None:
        out["outputSchema"] = tool.result_schema
    return out
