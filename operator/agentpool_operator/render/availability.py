"""How many agent pods run: the PodDisruptionBudget and, in HPA mode, the
HorizontalPodAutoscaler that scales the pool through its scale subresource."""

from __future__ import annotations

from typing import Any

from agentpool_operator import api
from agentpool_operator.render import names

LOAD_METRIC = "agentpool_load_percent"
"""The Object metric of an AgentPool that the operator serves on custom.metrics.k8s.io."""


def disruption_budget(pool: api.AgentPool, replicas: int | None) -> dict[str, Any] | None:
    """A PDB when the pool runs more than one replica (with one, a PDB would block node
    drains for good)."""
    spec = pool.spec.disruption_budget
    if not spec.enabled or replicas is None or replicas <= 1:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": names.metadata(pool),
        "spec": {
            "selector": {"matchLabels": names.selector_labels(pool.metadata.name)},
            "maxUnavailable": spec.max_unavailable,
            # Unready pods may always be evicted: they serve nothing.
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def _metric(pool: api.AgentPool, hpa: api.HPAScaling) -> dict[str, Any]:
    if hpa.metric in ("CPU", "Memory"):
        return {
            "type": "Resource",
            "resource": {
                "name": hpa.metric.lower(),
                "target": {"type": "Utilization", "averageUtilization": hpa.target_percent},
            },
        }
    return {
        "type": "Object",
        "object": {
            "describedObject": {
                "apiVersion": api.API_VERSION,
                "kind": "AgentPool",
                "name": pool.metadata.name,
            },
            "metric": {"name": LOAD_METRIC},
            "target": {"type": "Value", "value": str(hpa.target_percent)},
        },
    }


def _behavior(behavior: api.ScalingBehavior) -> dict[str, Any]:
    out: dict[str, Any] = behavior.model_dump(mode="json", by_alias=True, exclude_none=True)
    for rules in out.values():
        # An empty list is not "unset" to the API server: it would refuse the HPA instead
        # of filling in its default policies.
        if not rules.get("policies"):
            rules.pop("policies", None)
    return out


def horizontal_autoscaler(pool: api.AgentPool) -> dict[str, Any] | None:
    """The HPA of a pool in HPA mode; its target is the pool itself (scale subresource)."""
    scaling = pool.spec.scaling
    if scaling.mode != "HPA":
        return None
    hpa = scaling.hpa_settings
    spec: dict[str, Any] = {
        "scaleTargetRef": {
            "apiVersion": api.API_VERSION,
            "kind": "AgentPool",
            "name": pool.metadata.name,
        },
        "minReplicas": max(1, scaling.min_replicas),
        "maxReplicas": scaling.max_replicas,
        "metrics": [_metric(pool, hpa)],
    }
    if hpa.behavior is not None:
        spec["behavior"] = _behavior(hpa.behavior)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": names.metadata(pool),
        "spec": spec,
    }
