"""Prometheus metrics of the tool layer (all `agentpool_tool_...`, labelled by tool)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CALLS = Counter(
    "agentpool_tool_calls_total",
    "Tool calls by outcome: ok, error, refused (breaker, bulkhead, rate limit), invalid.",
    ["tool", "outcome"],
)
DURATION = Histogram(
    "agentpool_tool_call_duration_seconds",
    "Wall time of tool calls, including retries and fallbacks.",
    ["tool"],
    buckets=(0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
RETRIES = Counter("agentpool_tool_retries_total", "Retried tool attempts.", ["tool"])
FALLBACKS = Counter(
    "agentpool_tool_fallbacks_total", "Calls answered by a fallback.", ["tool", "strategy"]
)
CACHE = Counter("agentpool_tool_cache_requests_total", "Cache lookups.", ["tool", "result"])
CACHE_EVICTIONS = Counter(
    "agentpool_tool_cache_evictions_total", "Entries pushed out by the size bound.", ["tool"]
)
CIRCUIT_STATE = Gauge(
    "agentpool_tool_circuit_state",
    "Circuit breaker state: 0 closed, 1 open, 2 half-open.",
    ["tool"],
)
CIRCUIT_TRANSITIONS = Counter(
    "agentpool_tool_circuit_transitions_total",
    "Circuit breaker state changes.",
    ["tool", "source", "target"],
)
IN_FLIGHT = Gauge("agentpool_tool_in_flight", "Calls holding a bulkhead slot.", ["tool"])
