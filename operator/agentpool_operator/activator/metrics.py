"""The activator's Prometheus metrics (docs/autoscaling.md lists them)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HELD = Gauge(
    "agentpool_activator_held_requests",
    "Requests the activator holds while their pool wakes",
)
WAKEUPS = Counter(
    "agentpool_activator_wakeups_total",
    "Wake requests the activator registered for pools with no ready endpoint",
)
REQUESTS = Counter(
    "agentpool_activator_requests_total",
    "Requests the activator answered, by outcome",
    ["outcome"],
)
WAIT_SECONDS = Histogram(
    "agentpool_activator_wait_seconds",
    "How long a request waited for its pool to have a ready endpoint",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120),
)

OUTCOMES = (
    "proxied",
    "bad_host",
    "unknown_pool",
    "not_routed",
    "too_many_waiting",
    "not_woken",
    "upstream_failed",
    "client_gone",
    "starting",
    "too_large",
    "bad_request",
    "body_timeout",
)
for _outcome in OUTCOMES:
    REQUESTS.labels(_outcome)
