"""What a tool is, the context a call runs in, and the invocation that flows through the
middleware chain."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from agent_runtime.config.tools import CacheSettings, ResilienceSettings, ToolHints


@dataclass(frozen=True, slots=True)
class CallContext:
    """Who a call is made for: the memory tenant, and the conversation if there is one.

    Passed explicitly with every call and never chosen by the model: the memory
    built-ins act in `tenant` only, the result cache keys on it, and pool-as-tool
    forwards it to the pool it asks.
    """

    tenant: str
    conversation_id: str | None = None


Implementation = Callable[[dict[str, Any], CallContext], Awaitable[Any]]
"""The async function behind a tool: validated arguments and the call's context in, a
JSON-like value out."""

ToolKind = Literal["builtin", "http", "command", "mcp", "agent"]

EMPTY_OBJECT_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}


@dataclass(frozen=True, slots=True)
class Tool:
    """A callable tool: schema, hints, implementation, and optional policy overrides.

    `attempt_timeout` is the implementation's own deadline (an HTTP tool's
    `timeoutSeconds`); `resilience` and `cache` override the registry's defaults field
    by field.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    implementation: Implementation
    hints: ToolHints = field(default_factory=ToolHints)
    result_schema: dict[str, Any] | None = None
    title: str | None = None
    kind: ToolKind = "builtin"
    attempt_timeout: float | None = None
    resilience: ResilienceSettings | None = None
    cache: CacheSettings | None = None


@dataclass(frozen=True, slots=True)
class ToolPolicy:
    """A tool's effective resilience and cache settings (defaults merged with overrides)."""

    resilience: ResilienceSettings
    cache: CacheSettings


@dataclass(slots=True)
class Invocation:
    """One call in flight, as it travels through the middleware chain.

    Middleware may annotate it (`attempts`, `cached`, `answered_by`, `deadline`); the
    registry copies those into the `ToolResult`.
    """

    tool: Tool
    policy: ToolPolicy
    arguments: dict[str, Any]
    context: CallContext
    call_id: str
    attempts: int = 0
    cached: bool = False
    answered_by: str = "primary"
    deadline: float | None = None


@dataclass(frozen=True, slots=True)
class ToolResult:
    """A finished call: the value and how it was obtained."""

    tool: str
    call_id: str
    value: Any
    answered_by: str
    cached: bool
    attempts: int
    duration_seconds: float

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape the HTTP API serves (camelCase, like the config)."""
        return {
            "tool": self.tool,
            "callId": self.call_id,
            "value": self.value,
            "answeredBy": self.answered_by,
            "cached": self.cached,
            "attempts": self.attempts,
            "durationSeconds": self.duration_seconds,
        }
