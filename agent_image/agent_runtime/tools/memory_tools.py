"""Built-in tools over the memory hierarchy: remember, recall, search_memory, forget.

The tenant is never an argument the model chooses: it comes from the call's
`CallContext`, so a model cannot read another tenant's memory by asking. Working
memory is scoped to the context's conversation.
"""

from __future__ import annotations

from typing import Any

from agent_runtime.config.limits import MEMORY_KEY_MAX_CHARS
from agent_runtime.config.tools import ToolHints
from agent_runtime.memory.hierarchy import MemoryHierarchy
from agent_runtime.tools.registry import ToolRegistry
from agent_runtime.tools.tool import CallContext

_KEY = {"type": "string", "minLength": 1, "maxLength": MEMORY_KEY_MAX_CHARS}

REMEMBER_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "key": _KEY,
        "value": {"description": "Any JSON value to remember."},
        "importance": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5},
    },
    "required": ["key", "value"],
    "additionalProperties": False,
}
RECALL_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"key": _KEY},
    "required": ["key"],
    "additionalProperties": False,
}
SEARCH_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "query": {"type": "string", "minLength": 1, "maxLength": 4096},
        "k": {"type": "integer", "minimum": 1, "maximum": 50, "default": 5},
    },
    "required": ["query"],
    "additionalProperties": False,
}


def register_memory_tools(registry: ToolRegistry, memory: MemoryHierarchy) -> None:
    """Add the memory built-ins to `registry`, bound to `memory`."""

    async def remember(args: dict[str, Any], context: CallContext) -> dict[str, Any]:
        tiers = await memory.remember(
            args["key"],
            args["value"],
            tenant=context.tenant,
            conversation=context.conversation_id,
            importance=float(args.get("importance", 0.5)),
        )
        return {"remembered": True, "tiers": list(tiers)}

    async def recall(args: dict[str, Any], context: CallContext) -> dict[str, Any]:
        found = await memory.recall(
            args["key"], tenant=context.tenant, conversation=context.conversation_id
        )
        if found is None:
            return {"found": False}
        return {"found": True, "tier": found.tier, "value": found.value}

    async def search_memory(args: dict[str, Any], context: CallContext) -> dict[str, Any]:
        hits = await memory.search(args["query"], tenant=context.tenant, k=int(args.get("k", 5)))
        return {"results": [{"key": h.key, "value": h.value, "score": h.score} for h in hits]}

    async def forget(args: dict[str, Any], context: CallContext) -> dict[str, Any]:
        tiers = await memory.forget(args["key"], tenant=context.tenant)
        return {"forgotten": bool(tiers), "tiers": list(tiers)}

    # Not read-only: memory changes with every write, so the tool cache must not keep reads.
    repeatable = ToolHints(read_only=False, destructive=False, idempotent=True)
    registry.register_function(
        remember,
        name="remember",
        description="Remember a value under a key for later conversations.",
        parameters=REMEMBER_PARAMETERS,
        hints=repeatable,
    )
    registry.register_function(
        recall,
        name="recall",
        description="Recall the value remembered under a key.",
        parameters=RECALL_PARAMETERS,
        hints=repeatable,
    )
    if memory.episodic is not None:  # without episodes there is nothing to search
        registry.register_function(
            search_memory,
            name="search_memory",
            description="Search past experiences by meaning; returns the closest ones.",
            parameters=SEARCH_PARAMETERS,
            hints=repeatable,
        )
    registry.register_function(
        forget,
        name="forget",
        description="Forget what is remembered under a key, everywhere.",
        parameters=RECALL_PARAMETERS,
        hints=ToolHints(read_only=False, destructive=True, idempotent=True),
    )
