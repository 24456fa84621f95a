"""Prometheus metrics of the agent loop (all `agentpool_...`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TURN_DURATION = Histogram(
    "agentpool_turn_duration_seconds",
    "Wall time of one turn, by how it ended (answered, maxModelCalls, degraded...).",
    ["reason"],
    buckets=(0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
ACTIVE_TURNS = Gauge("agentpool_active_turns", "Turns this replica is running now.")
CAPACITY = Gauge("agentpool_turn_capacity", "Turns this replica runs at once (agent.concurrency).")
QUEUED_TASKS = Gauge("agentpool_queued_tasks", "Tasks waiting in the pool's queue, as last seen.")
REFUSED_TURNS = Counter(
    "agentpool_refused_turns_total",
    "Turns (requests and tasks) this replica refused with 503, by reason (atCapacity: "
    "every slot taken; draining). Refused requests also count as demand in the load "
    "sample (refusedTurns).",
    ["reason"],
)
DRAINING = Gauge("agentpool_draining", "1 while this replica drains (takes no new turns).")
MODEL_LATENCY = Histogram(
    "agentpool_model_call_duration_seconds",
    "Latency of one model call attempt, by model and outcome (ok, error).",
    ["model", "outcome"],
    buckets=(0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
MODEL_TOKENS = Counter(
    "agentpool_model_tokens_total",
    "Tokens by model and kind (prompt, completion).",
    ["model", "kind"],
)
MODEL_BREAKER = Gauge(
    "agentpool_model_circuit_state",
    "Model endpoint breaker state: 0 closed, 1 open, 2 half-open.",
    ["breaker"],
)
COMPACTIONS = Counter(
    "agentpool_context_compactions_total", "Summaries written, by who wrote them.", ["by"]
)
APPROVALS = Counter(
    "agentpool_tool_approvals_total",
    "Tool calls held for a person's approval and the decisions on them, by event "
    "(approvalRequested, approvalGranted, approvalRefused).",
    ["event"],
)
