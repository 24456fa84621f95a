"""The operator's Prometheus metrics, all prefixed `agentpool_operator_`."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter(
    "agentpool_operator_reconciles_total",
    "Reconciles of pools, by result (unchanged, changed, error).",
    ["result"],
)
RECONCILE_SECONDS = Histogram(
    "agentpool_operator_reconcile_duration_seconds",
    "Time one reconcile of one pool takes.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
QUEUE_DEPTH = Gauge(
    "agentpool_operator_queue_depth", "Pools waiting to be reconciled (not counting running)."
)
QUEUE_LATENCY = Histogram(
    "agentpool_operator_queue_wait_seconds",
    "Time a pool waits in the queue before its reconcile starts.",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30),
)
WRITES = Counter(
    "agentpool_operator_api_requests_total",
    "Requests the operator made to the API server, by verb, kind and HTTP status.",
    ["verb", "kind", "code"],
)
API_LATENCY = Histogram(
    "agentpool_operator_api_request_duration_seconds",
    "Latency of the operator's requests to the API server, by verb.",
    ["verb"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
POOLS = Gauge("agentpool_operator_pools", "AgentPools the operator knows.")
LEADER = Gauge("agentpool_operator_leader", "1 while this replica holds the Lease.")
METRICS_API_SERVING = Gauge(
    "agentpool_operator_metrics_api_serving",
    "1 while this replica serves custom.metrics.k8s.io (HPA mode); 0 when it is off, "
    "refused (another adapter owns the APIService) or the cluster has no front proxy.",
)
METRICS_API_REQUESTS = Counter(
    "agentpool_operator_metrics_api_requests_total",
    "Requests to the custom-metrics API, by HTTP status code.",
    ["code"],
)
TOKEN_REVIEWERS = Gauge(
    "agentpool_operator_token_reviewers",
    "ServiceAccounts the token-reviewer ClusterRoleBinding should name (pools that review "
    "projected tokens).",
)
