"""Resilience layers: fallback, timeouts, retry, circuit breaker, rate limit, bulkhead.

Each reads the tool's effective policy from the call and keeps per-tool state (breakers,
buckets, bulkheads) keyed by tool name, created on the tool's first call.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import structlog
from redis.asyncio import Redis

from agent_runtime.resilience.breaker import (
    STATE_GAUGE_VALUE,
    BreakerSnapshot,
    CircuitBreaker,
    Transition,
)
from agent_runtime.resilience.clock import Clock, Sleep, monotonic, sleep
from agent_runtime.resilience.deadline import within
from agent_runtime.resilience.fallback import Static, answer_with_fallbacks
from agent_runtime.resilience.limits import Bulkhead, TokenBucket
from agent_runtime.resilience.retry import call_with_retry
from agent_runtime.resilience.shared import SharedCircuitBreaker
from agent_runtime.tools import metrics
from agent_runtime.tools.errors import ToolTimeoutError, error_kind
from agent_runtime.tools.middleware.chain import Next
from agent_runtime.tools.middleware.observe import labelled
from agent_runtime.tools.tool import CallContext, Invocation, Tool, ToolPolicy, ToolResult

log = structlog.get_logger("agent_runtime.tools")


class CallTool(Protocol):
    """How the fallback layer calls another tool (the registry's `call`)."""

    def __call__(
        self, name: str, arguments: Mapping[str, Any], *, context: CallContext
    ) -> Awaitable[ToolResult]: ...


_fallback_path: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "agentpool_fallback_path", default=frozenset()
)


class FallbackMiddleware:
    """On failure, asks the tool's fallback tools in order, then its static answer.

    Fallback tools run through their own full chain; a tool already on the current
    fallback path is skipped, so two tools naming each other cannot loop.
    """

    name = "fallback"

    def __init__(self, call_tool: CallTool) -> None:
        self._call_tool = call_tool

    def applies_to(self, tool: Tool, policy: ToolPolicy) -> bool:
        """Only tools with fallbacks."""
        settings = policy.resilience.fallback
        return bool(settings.tools) or settings.static is not None

    async def __call__(self, call: Invocation, call_next: Next) -> Any:
        settings = call.policy.resilience.fallback
        if not settings.tools and settings.static is None:
            return await call_next(call)
        path = _fallback_path.get() | {call.tool.name}
        token = _fallback_path.set(path)
        try:
            alternatives = [
                (f"tool:{name}", self._alternative(name, call.arguments, call.context))
                for name in settings.tools
                if name not in path
            ]
            static = Static(settings.static.value) if settings.static is not None else None
            answer = await answer_with_fallbacks(lambda: call_next(call), alternatives, static)
        finally:
            _fallback_path.reset(token)
        call.answered_by = answer.strategy
        return answer.value

    def _alternative(
        self, name: str, arguments: Mapping[str, Any], context: CallContext
    ) -> Callable[[], Awaitable[Any]]:
        async def run() -> Any:
            return (await self._call_tool(name, arguments, context=context)).value

        return run


class CallTimeoutMiddleware:
    """A deadline for the whole call, all attempts included (`timeouts.perCallSeconds`)."""

    name = "call_timeout"

    def __init__(self, *, clock: Clock = monotonic) -> None:
        self._clock = clock

    def applies_to(self, tool: Tool, policy: ToolPolicy) -> bool:
        """Only tools with a per-call deadline."""
        return policy.resilience.timeouts.per_call_seconds is not None

    async def __call__(self, call: Invocation, call_next: Next) -> Any:
        seconds = call.policy.resilience.timeouts.per_call_seconds
        if seconds is None:
            return await call_next(call)
        call.deadline = self._clock() + seconds
        name = call.tool.name
        return await within(
            seconds, call_next(call), expired=lambda: ToolTimeoutError(name, seconds, "call")
        )


class AttemptTimeoutMiddleware:
    """A deadline for one attempt: `timeouts.perAttemptSeconds`, else the tool's own."""

    name = "attempt_timeout"

    def applies_to(self, tool: Tool, policy: ToolPolicy) -> bool:
        """Only tools with an attempt deadline."""
        return bool(policy.resilience.timeouts.per_attempt_seconds or tool.attempt_timeout)

    async def __call__(self, call: Invocation, call_next: Next) -> Any:
        seconds = call.policy.resilience.timeouts.per_attempt_seconds or call.tool.attempt_timeout
        if seconds is None:
            return await call_next(call)
        name = call.tool.name
        return await within(
            seconds, call_next(call), expired=lambda: ToolTimeoutError(name, seconds, "attempt")
        )


class RetryMiddleware:
    """Retries failed attempts of the error kinds in `retry.retryOn`, with backoff.

    Only read-only or idempotent tools are retried, unless `retry.retryNonIdempotent`.
    """

    name = "retry"

    def __init__(self, *, clock: Clock = monotonic, sleep: Sleep = sleep) -> None:
        self._clock = clock
        self._sleep = sleep

    async def __call__(self, call: Invocation, call_next: Next) -> Any:
        settings = call.policy.resilience.retry
        repeatable = call.tool.hints.safe_to_repeat or settings.retry_non_idempotent
        if not (settings.enabled and repeatable and settings.max_attempts > 1):
            call.attempts += 1
            return await call_next(call)
        # The first attempt runs outside tenacity: most calls succeed, and tenacity's
        # bookkeeping costs tens of microseconds. On a retryable failure tenacity takes
        # over, replaying that first failure as its attempt 1 so backoff is unchanged.
        call.attempts += 1
        try:
            return await call_next(call)
        except Exception as error:
            if error_kind(error) not in settings.retry_on:
                raise
            first_error: Exception | None = error
        retries = labelled(metrics.RETRIES, call.tool.name)

        async def attempt() -> Any:
            nonlocal first_error
            if first_error is not None:
                error, first_error = first_error, None
                raise error
            call.attempts += 1
            retries.inc()
            return await call_next(call)

        kinds = settings.retry_on
        return await call_with_retry(
            attempt,
            settings,
            should_retry=lambda error: error_kind(error) in kinds,
            deadline=call.deadline,
            clock=self._clock,
            sleep=self._sleep,
        )


class CircuitBreakerMiddleware:
    """Guards each tool with a circuit breaker (Redis-shared when `circuitBreaker.shared`).

    Failures of the kinds in `circuitBreaker.recordOn` count against the dependency; other
    errors (a 4xx, a refused argument) are ignored, neither success nor failure.
    """

    name = "circuit_breaker"

    def __init__(
        self,
        *,
        redis: Redis | None = None,
        key_prefix: str | None = None,
        clock: Clock = monotonic,
    ) -> None:
        if redis is not None and key_prefix is None:
            raise ValueError("shared breakers need the pool's key prefix")
        self._redis = redis
        self._key_prefix = key_prefix or ""
        self._clock = clock
        self._local: dict[str, CircuitBreaker] = {}
        self._shared: dict[str, SharedCircuitBreaker] = {}

    def applies_to(self, tool: Tool, policy: ToolPolicy) -> bool:
        """Only tools whose breaker is enabled."""
        return policy.resilience.circuit_breaker.enabled

    def forget(self, tool: str) -> None:
        """Drop the tool's breaker (it is re-registered with a new policy)."""
        self._local.pop(tool, None)
        self._shared.pop(tool, None)

    def snapshots(self) -> list[BreakerSnapshot]:
        """Every breaker's state, by tool name."""
        return [self._local[name].snapshot() for name in sorted(self._local)]

    def breaker(self, tool: str) -> CircuitBreaker | None:
        """The breaker of `tool`, once it has been called."""
        return self._local.get(tool)

    def _create(self, call: Invocation) -> CircuitBreaker:
        name = call.tool.name
        settings = call.policy.resilience.circuit_breaker
        breaker = CircuitBreaker(name, settings, clock=self._clock, listeners=(_export,))
        labelled(metrics.CIRCUIT_STATE, name).set(0)
        self._local[name] = breaker
        if settings.shared and self._redis is not None:
            self._shared[name] = SharedCircuitBreaker(
                breaker, self._redis, key_prefix=self._key_prefix, clock=self._clock
            )
        elif settings.shared:
            log.warning("shared circuit breaker without Redis: this replica only", tool=name)
        return breaker

    async def __call__(self, call: Invocation, call_next: Next) -> Any:
        settings = call.policy.resilience.circuit_breaker
        if not settings.enabled:
            return await call_next(call)
        name = call.tool.name
        breaker = self._local.get(name) or self._create(call)
        shared = self._shared.get(name)
        permit = breaker.acquire() if shared is None else await shared.acquire()
        try:
            value = await call_next(call)
        except Exception as error:
            if error_kind(error) in settings.record_on:
                if shared is None:
                    breaker.record(permit, failed=True)
                else:
                    await shared.record(permit, failed=True)
            else:
                breaker.release(permit)
            raise
        except BaseException:
            breaker.release(permit)
            raise
        if shared is None:
            breaker.record(permit, failed=False)
        else:
            await shared.record(permit, failed=False)
        return value


def _export(transition: Transition) -> None:
    labelled(metrics.CIRCUIT_STATE, transition.name).set(STATE_GAUGE_VALUE[transition.target])
    labelled(
        metrics.CIRCUIT_TRANSITIONS,
        transition.name,
        transition.source.value,
        transition.target.value,
    ).inc()


class RateLimitMiddleware:
    """A token bucket per tool (`rateLimit.ratePerSecond`; off when null)."""

    name = "rate_limit"

    def __init__(self, *, clock: Clock = monotonic, sleep: Sleep = sleep) -> None:
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[str, TokenBucket] = {}

    def forget(self, tool: str) -> None:
        """Drop the tool's bucket (it is re-registered with a new policy)."""
        self._buckets.pop(tool, None)

    def applies_to(self, tool: Tool, policy: ToolPolicy) -> bool:
        """Only rate-limited tools."""
        return policy.resilience.rate_limit.rate_per_second is not None

    async def __call__(self, call: Invocation, call_next: Next) -> Any:
        settings = call.policy.resilience.rate_limit
        if settings.rate_per_second is None:
            return await call_next(call)
        name = call.tool.name
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = TokenBucket(
                name,
                settings.rate_per_second,
                settings.burst,
                settings.max_wait_seconds,
                clock=self._clock,
                sleep=self._sleep,
            )
            self._buckets[name] = bucket
        await bucket.take()
        return await call_next(call)


class BulkheadMiddleware:
    """At most `bulkhead.maxConcurrent` calls of one tool at once."""

    name = "bulkhead"

    def __init__(self) -> None:
        self._bulkheads: dict[str, Bulkhead] = {}

    def forget(self, tool: str) -> None:
        """Drop the tool's bulkhead (it is re-registered with a new policy)."""
        self._bulkheads.pop(tool, None)

    async def __call__(self, call: Invocation, call_next: Next) -> Any:
        name = call.tool.name
        bulkhead = self._bulkheads.get(name)
        if bulkhead is None:
            settings = call.policy.resilience.bulkhead
            bulkhead = Bulkhead(name, settings.max_concurrent, settings.max_wait_seconds)
            self._bulkheads[name] = bulkhead
            # Read at scrape time, so the call path pays nothing for the gauge.
            labelled(metrics.IN_FLIGHT, name).set_function(lambda: bulkhead.in_flight)
        await bulkhead.acquire()
        try:
            return await call_next(call)
        finally:
            bulkhead.release()
