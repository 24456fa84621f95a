"""Resilience for tool calls: circuit breaker (local or Redis-shared), retry, fallback, limits.

Every timing decision reads an injectable clock (`resilience.clock`), so all of it is
tested with fake time.
"""

from agent_runtime.resilience.breaker import (
    BreakerSnapshot,
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
    Permit,
    Transition,
)
from agent_runtime.resilience.fallback import (
    Answer,
    FallbackExhaustedError,
    Static,
    answer_with_fallbacks,
)
from agent_runtime.resilience.limits import (
    Bulkhead,
    BulkheadFullError,
    RateLimitedError,
    TokenBucket,
)
from agent_runtime.resilience.retry import call_with_retry
from agent_runtime.resilience.shared import SharedCircuitBreaker

__all__ = [
    "Answer",
    "BreakerSnapshot",
    "BreakerState",
    "Bulkhead",
    "BulkheadFullError",
    "CircuitBreaker",
    "CircuitOpenError",
    "FallbackExhaustedError",
    "Permit",
    "RateLimitedError",
    "SharedCircuitBreaker",
    "Static",
    "TokenBucket",
    "Transition",
    "answer_with_fallbacks",
    "call_with_retry",
]
