"""agentpool_autoscaler_* metrics: what a tick costs and what it did."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TICK_SECONDS = Histogram(
    "agentpool_autoscaler_tick_seconds",
    "Wall time of one autoscaler tick for all pools (Redis reads, decisions, writes queued).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
READ_SECONDS = Histogram(
    "agentpool_autoscaler_redis_read_seconds",
    "One pipelined read of every pool's load on one Redis.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
READ_FAILURES = Counter(
    "agentpool_autoscaler_redis_read_failures_total",
    "Reads of pools' load that failed (the pools on that Redis hold their size).",
)
SCALES = Counter(
    "agentpool_autoscaler_scales_total",
    "Replica changes the autoscaler wrote, by direction.",
    ["direction"],
)
POOLS = Gauge("agentpool_autoscaler_pools", "Pools the autoscaler read at its last tick.")

# Per pool, from what the leader's loop reads (updated when a pool changes, not per tick):
# what the chart's PrometheusRule alerts on.
POOL_CONDITION = Gauge(
    "agentpool_pool_condition",
    "1 for each pool condition's current status (the other statuses 0).",
    ["namespace", "pool", "condition", "status"],
)
POOL_DESIRED_REPLICAS = Gauge(
    "agentpool_pool_desired_replicas", "A pool's spec.replicas.", ["namespace", "pool"]
)
POOL_MAX_REPLICAS = Gauge(
    "agentpool_pool_max_replicas", "A pool's spec.scaling.maxReplicas.", ["namespace", "pool"]
)
_STATUSES = ("True", "False", "Unknown")


def export_pool(namespace: str, pool: str, body: dict[str, object], max_replicas: int) -> None:
    """The pool's series, from its object as last seen."""
    spec = body.get("spec")
    replicas = spec.get("replicas") if isinstance(spec, dict) else None
    if isinstance(replicas, int):
        POOL_DESIRED_REPLICAS.labels(namespace, pool).set(replicas)
    POOL_MAX_REPLICAS.labels(namespace, pool).set(max_replicas)
    status = body.get("status")
    conditions = status.get("conditions") if isinstance(status, dict) else None
    for condition in conditions if isinstance(conditions, list) else []:
        if not isinstance(condition, dict):
            continue
        kind, now = str(condition.get("type")), str(condition.get("status"))
        for value in _STATUSES:
            POOL_CONDITION.labels(namespace, pool, kind, value).set(1 if value == now else 0)


def forget_pool(namespace: str, pool: str) -> None:
    """Remove a deleted pool's series."""
    POOL_DESIRED_REPLICAS.remove(namespace, pool)
    POOL_MAX_REPLICAS.remove(namespace, pool)
    for labels in list(POOL_CONDITION._metrics):  # prometheus-client has no remove-by-prefix
        if labels[:2] == (namespace, pool):
            POOL_CONDITION.remove(*labels)
