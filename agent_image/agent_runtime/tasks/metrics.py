"""Prometheus metrics of the task queue (`agentpool_tasks_*`), labelled by pool identity."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

_POOL = ["namespace", "pool"]

TASKS_ENQUEUED = Counter(
    "agentpool_tasks_enqueued_total", "Tasks created (idempotent repeats not counted).", _POOL
)
TASKS_QUEUED = Gauge(
    "agentpool_tasks_queued",
    "Tasks of the pool waiting to start (in the stream, or behind their conversation's task).",
    _POOL,
)
TASKS_LAG = Gauge(
    "agentpool_tasks_lag_seconds",
    "Age of the oldest task of the pool not yet taken by a worker.",
    _POOL,
)
TASKS_RUNNING = Gauge("agentpool_tasks_running", "Tasks this replica is running.", _POOL)
TASKS_FINISHED = Counter(
    "agentpool_tasks_finished_total",
    "Tasks this replica finished, by final status (succeeded, failed).",
    [*_POOL, "status"],
)
TASKS_RETRIES = Counter(
    "agentpool_tasks_retries_total",
    "Tasks delivered again: the handler raised (error) or a dead worker's lease ran out "
    "(reclaimed).",
    [*_POOL, "reason"],
)
TASKS_DEAD_LETTERS = Counter(
    "agentpool_tasks_dead_letters_total",
    "Tasks given up after tasks.maxDeliveries deliveries (moved to the dead-letter stream).",
    _POOL,
)
