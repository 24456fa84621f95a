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
