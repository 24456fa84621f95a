"""The tool registry: register tools, validate arguments, run calls through the middleware.

    registry = ToolRegistry(resilience=pool_defaults, cache_settings=cache_defaults)
    registry.register_function(remember, name="remember", description="...",
                               parameters={...}, hints=ToolHints(idempotent=True))
    result = await registry.call("remember", {"text": "..."}, context=CallContext("alice"))

Arguments are validated against the tool's JSON Schema before anything runs; an invalid
call raises `ToolValidationError` and never reaches the middleware or the implementation.
Every valid call goes through the chain, outermost first:

    logging, metrics, fallback, cache, call_timeout, retry, circuit_breaker,
    rate_limit, bulkhead, attempt_timeout, [user middleware], implementation

so retries re-enter the breaker (each attempt counts), a cache hit skips everything
below it, and the fallback sees the final outcome. Each tool's chain is composed once,
without the layers that have nothing to do for it (no fallback configured, not
cacheable, no rate limit...). `add_middleware` places user middleware anywhere relative
to these names (innermost by default).

Built-in tools (memory's remember/recall/search, for example) are plain async callables
registered with `register_function`; configured tools come from `tools.build`.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import structlog
from jsonschema.protocols import Validator
from redis.asyncio import Redis

from agent_runtime.cache import CacheStats, ToolCache
from agent_runtime.config.limits import TOOL_NAME_PATTERN
from agent_runtime.config.tools import (
    CacheSettings,
    ResilienceSettings,
    ToolHints,
    merge_settings,
)
from agent_runtime.json_value import MAX_RESULT_DEPTH, nesting_exceeds
from agent_runtime.memory.keys import KeySpace
from agent_runtime.resilience.breaker import BreakerSnapshot, CircuitBreaker
from agent_runtime.resilience.clock import Clock, Sleep, monotonic, sleep
from agent_runtime.tools import metrics
from agent_runtime.tools.errors import (
    ToolConfigError,
    ToolError,
    ToolNotFoundError,
    ToolValidationError,
    ValidationIssue,
)
from agent_runtime.tools.export import to_mcp, to_openai
from agent_runtime.tools.middleware.caching import CacheMiddleware
from agent_runtime.tools.middleware.chain import Middleware, MiddlewareChain, Next
from agent_runtime.tools.middleware.observe import LoggingMiddleware, MetricsMiddleware, labelled
from agent_runtime.tools.middleware.resilience import (
    AttemptTimeoutMiddleware,
    BulkheadMiddleware,
    CallTimeoutMiddleware,
    CircuitBreakerMiddleware,
    FallbackMiddleware,
    RateLimitMiddleware,
    RetryMiddleware,
)
from agent_runtime.tools.schema import compile_schema, issues
from agent_runtime.tools.tool import (
    EMPTY_OBJECT_SCHEMA,
    CallContext,
    Implementation,
    Invocation,
    Tool,
    ToolPolicy,
    ToolResult,
)

__all__ = ["DEFAULT_ORDER", "CallContext", "Tool", "ToolRegistry", "ToolResult"]

log = structlog.get_logger("agent_runtime.tools")

DEFAULT_ORDER = (
    "logging",
    "metrics",
    "fallback",
    "cache",
    "call_timeout",
    "retry",
    "circuit_breaker",
    "rate_limit",
    "bulkhead",
    "attempt_timeout",
)
"""The built-in middleware, outermost first."""

_NAME = re.compile(TOOL_NAME_PATTERN)
_call_ids = itertools.count(1)
_CALL_ID_PREFIX = os.urandom(4).hex()

Closer = Callable[[], Awaitable[None]]


@dataclass(slots=True)
class _Entry:
    tool: Tool
    policy: ToolPolicy
    validator: Validator
    result_validator: Validator | None
    handler: Next


class ToolRegistry:
    """The tools an agent may call, and the machinery around every call.

    `resilience` and `cache_settings` are the pool defaults each tool's overrides merge
    into; `redis` enables the Redis-shared breaker and cache tier for tools that ask for
    them, under the pool's names (`keys`, required with `redis`); `clock` and `sleep` are
    injectable for tests.
    """

    def __init__(
        self,
        *,
        resilience: ResilienceSettings | None = None,
        cache_settings: CacheSettings | None = None,
        cache: ToolCache | None = None,
        redis: Redis | None = None,
        keys: KeySpace | None = None,
        clock: Clock = monotonic,
        sleep: Sleep = sleep,
    ) -> None:
        if redis is not None and keys is None:
            raise ValueError("sharing state through Redis needs the pool's KeySpace (`keys`)")
        self.defaults = resilience or ResilienceSettings()
        self.cache_defaults = cache_settings or CacheSettings()
        shared_cache = redis if self.cache_defaults.shared else None
        self.cache = cache or ToolCache(
            self.cache_defaults.max_entries,
            redis=shared_cache,
            shared_prefix=keys.cache_prefix if keys is not None else None,
            clock=clock,
            on_evict=lambda tool: labelled(metrics.CACHE_EVICTIONS, tool).inc(),
        )
        self._entries: dict[str, _Entry] = {}
        self.revision = 0
        """Changes with every tool registered or removed (what depends on the set of
        tools, such as its size in a model's context, may be kept until it changes)."""
        self._closers: list[Closer] = []
        self._breakers = CircuitBreakerMiddleware(
            redis=redis, key_prefix=keys.breaker_prefix if keys is not None else None, clock=clock
        )
        self._chain = MiddlewareChain(
            [
                LoggingMiddleware(),
                MetricsMiddleware(),
                FallbackMiddleware(self.call),
                CacheMiddleware(self.cache),
                CallTimeoutMiddleware(clock=clock),
                RetryMiddleware(clock=clock, sleep=sleep),
                self._breakers,
                RateLimitMiddleware(clock=clock, sleep=sleep),
                BulkheadMiddleware(),
                AttemptTimeoutMiddleware(),
            ]
        )

    # ------------------------------------------------------------------ tools

    def register(self, tool: Tool, *, replace: bool = False) -> Tool:
        """Add a tool; its schemas are checked and compiled now (`ToolConfigError`)."""
        if not _NAME.match(tool.name):
            raise ToolConfigError(f"tool name {tool.name!r} does not match {TOOL_NAME_PATTERN}")
        if tool.name in self._entries and not replace:
            raise ToolConfigError(f"a tool named {tool.name!r} is already registered")
        policy = ToolPolicy(
            resilience=merge_settings(self.defaults, tool.resilience),
            cache=merge_settings(self.cache_defaults, tool.cache),
        )
        entry = _Entry(
            tool=tool,
            policy=policy,
            validator=compile_schema(tool.name, tool.parameters),
            result_validator=compile_schema(tool.name, tool.result_schema)
            if tool.result_schema is not None
            else None,
            handler=self._chain.build(self._run, tool, policy),
        )
        self._forget(tool.name)  # only once the new definition compiled
        self._entries[tool.name] = entry
        self.revision += 1
        return tool

    def register_function(
        self,
        implementation: Implementation,
        *,
        name: str,
        description: str,
        parameters: dict[str, Any] | None = None,
        hints: ToolHints | None = None,
        result_schema: dict[str, Any] | None = None,
        resilience: ResilienceSettings | None = None,
        cache: CacheSettings | None = None,
    ) -> Tool:
        """Register a plain async callable as a built-in tool (the extension point for
        memory and other in-process tools). It receives the validated arguments dict and
        the call's `CallContext`."""
        return self.register(
            Tool(
                name=name,
                description=description,
                parameters=parameters or dict(EMPTY_OBJECT_SCHEMA),
                implementation=implementation,
                hints=hints or ToolHints(),
                result_schema=result_schema,
                resilience=resilience,
                cache=cache,
            )
        )

    def unregister(self, name: str) -> None:
        """Remove a tool."""
        self._entry(name)
        del self._entries[name]
        self.revision += 1
        self._forget(name)

    def get(self, name: str) -> Tool:
        """The tool called `name` (`ToolNotFoundError` otherwise)."""
        return self._entry(name).tool

    def policy(self, name: str) -> ToolPolicy:
        """The tool's effective resilience and cache settings."""
        return self._entry(name).policy

    @property
    def names(self) -> list[str]:
        """Registered tool names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Tool]:
        return iter([self._entries[name].tool for name in self.names])

    # ------------------------------------------------------------------ middleware

    @property
    def middleware(self) -> list[str]:
        """The chain's layer names, outermost first."""
        return self._chain.names

    def add_middleware(
        self, middleware: Middleware, *, before: str | None = None, after: str | None = None
    ) -> None:
        """Insert user middleware just outside `before`, just inside `after`, or innermost."""
        self._chain.add(middleware, before=before, after=after)
        self._rebuild()

    def remove_middleware(self, name: str) -> None:
        """Take a layer out of the chain (built-in ones included)."""
        self._chain.remove(name)
        self._rebuild()

    def _forget(self, name: str) -> None:
        # Per-tool state (breaker, bucket, bulkhead) was made from the old policy.
        for layer in self._chain.layers:
            forget = getattr(layer, "forget", None)
            if forget is not None:
                forget(name)

    def _rebuild(self) -> None:
        for entry in self._entries.values():
            entry.handler = self._chain.build(self._run, entry.tool, entry.policy)

    # ------------------------------------------------------------------ calling

    async def call(
        self,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        context: CallContext,
        call_id: str | None = None,
    ) -> ToolResult:
        """Validate and run one call for `context`; the result says how it was answered.

        Raises `ToolNotFoundError`, `ToolValidationError`, or whatever the chain raised
        (a `ToolError`, `CircuitOpenError`, `FallbackExhaustedError`...).
        """
        entry = self._entry(name)
        if arguments is not None and not isinstance(arguments, Mapping):
            labelled(metrics.CALLS, name, "invalid").inc()
            issue = ValidationIssue("$", "type", f"arguments must be an object, not {arguments!r}")
            raise ToolValidationError(name, [issue])
        args = dict(arguments) if arguments is not None else {}
        if not entry.validator.is_valid(args):
            labelled(metrics.CALLS, name, "invalid").inc()
            error = ToolValidationError(name, issues(entry.validator, args))
            log.warning("tool call refused", tool=name, error=str(error))
            raise error
        call = Invocation(
            tool=entry.tool,
            policy=entry.policy,
            arguments=args,
            context=context,
            call_id=call_id or f"{_CALL_ID_PREFIX}-{next(_call_ids)}",
        )
        started = perf_counter()
        value = await entry.handler(call)
        return ToolResult(
            tool=name,
            call_id=call.call_id,
            value=value,
            answered_by=call.answered_by,
            cached=call.cached,
            attempts=call.attempts,
            duration_seconds=perf_counter() - started,
        )

    async def _run(self, call: Invocation) -> Any:
        try:
            value = await call.tool.implementation(call.arguments, call.context)
        except RecursionError:  # a decoder met an answer nested past the interpreter's limit
            raise ToolError(
                call.tool.name, "the answer is nested too deeply to decode", kind="responseTooLarge"
            ) from None
        if nesting_exceeds(value, MAX_RESULT_DEPTH):
            raise ToolError(
                call.tool.name,
                f"the answer is nested deeper than {MAX_RESULT_DEPTH} levels",
                kind="responseTooLarge",
            )
        result_validator = self._entries[call.tool.name].result_validator
        if result_validator is not None and not result_validator.is_valid(value):
            error = ToolValidationError(
                call.tool.name, issues(result_validator, value), what="result"
            )
            error.kind = "execution"
            raise error
        return value

    # ------------------------------------------------------------------ export and state

    def openai_tools(self) -> list[dict[str, Any]]:
        """Every tool in the OpenAI function-calling format."""
        return [to_openai(tool) for tool in self]

    def mcp_tools(self) -> list[dict[str, Any]]:
        """Every tool in the MCP tool format."""
        return [to_mcp(tool) for tool in self]

    def breakers(self) -> list[BreakerSnapshot]:
        """The circuit breakers' states (tools that have been called)."""
        return self._breakers.snapshots()

    def breaker(self, tool: str) -> CircuitBreaker | None:
        """The live breaker of `tool` (to force it open or reset it), once it has been called."""
        return self._breakers.breaker(tool)

    def cache_stats(self) -> CacheStats:
        """The result cache's counters."""
        return self.cache.stats()

    async def invalidate_cache(
        self, tool: str, arguments: Mapping[str, Any] | None = None, *, tenant: str | None = None
    ) -> int:
        """Forget cached results of `tool` (one call's, with `arguments` and `tenant`)."""
        return await self.cache.invalidate(tool, arguments, tenant=tenant)

    def on_close(self, closer: Closer) -> None:
        """Run `closer` on `aclose()` (HTTP clients and the like)."""
        self._closers.append(closer)

    async def aclose(self) -> None:
        """Release what the tools hold (connection pools)."""
        closers, self._closers = self._closers, []
        for closer in reversed(closers):
            await closer()

    def _entry(self, name: str) -> _Entry:
        entry = self._entries.get(name)
        if entry is None:
            raise ToolNotFoundError(name, list(self._entries))
        return entry
