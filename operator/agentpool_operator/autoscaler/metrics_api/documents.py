"""The bodies the custom-metrics API answers with: discovery, MetricValueLists and
Kubernetes Status errors. Pure, so that the shapes are checked without a server.

The shapes are those of k8s.io/metrics (custom_metrics v1beta1 and v1beta2) and
k8s.io/apimachinery (APIGroupList, APIResourceList, Status).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agentpool_operator import api
from agentpool_operator.autoscaler.board import PoolLoad
from agentpool_operator.render.availability import LOAD_METRIC

GROUP = "custom.metrics.k8s.io"
VERSIONS = ("v1beta2", "v1beta1")
"""Served versions, preferred first (the HPA asks v1beta2 first)."""
POOL_RESOURCE = f"agentpools.{api.GROUP}"
"""How the custom-metrics API names the AgentPool resource (plural.group)."""
WINDOW_SECONDS = 1
"""The load is the autoscaler loop's reading of one tick (once a second)."""


@dataclass(frozen=True)
class MetricRequest:
    """A metric read, parsed from its path."""

    version: str
    namespace: str
    name: str
    """A pool's name, or "*" for every pool of the namespace."""
    metric: str


def parse_metric_path(path: str) -> MetricRequest | None:
    """`/apis/custom.metrics.k8s.io/{v}/namespaces/{ns}/agentpools.agentpool.dev/{name}/{metric}`
    -> its parts; None for any other path (including other resources: we describe pools only)."""
    parts = path.strip("/").split("/")
    if len(parts) != 8 or parts[0] != "apis" or parts[1] != GROUP:
        return None
    _, _, version, namespaces, namespace, resource, name, metric = parts
    if version not in VERSIONS or namespaces != "namespaces" or resource != POOL_RESOURCE:
        return None
    if not (namespace and name and metric):
        return None
    return MetricRequest(version, namespace, name, metric)


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    """A Kubernetes Status (what kubectl and client-go decode an error as)."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def api_group() -> dict[str, Any]:
    versions = [{"groupVersion": f"{GROUP}/{v}", "version": v} for v in VERSIONS]
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": GROUP,
        "versions": versions,
        "preferredVersion": versions[0],
    }


def api_group_list() -> dict[str, Any]:
    group = api_group()
    del group["kind"], group["apiVersion"]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [group]}


def api_resource_list(version: str) -> dict[str, Any]:
    """Discovery of one version: the one metric we serve, on AgentPools."""
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{GROUP}/{version}",
        "resources": [
            {
                "name": f"{POOL_RESOURCE}/{LOAD_METRIC}",
                "singularName": "",
                "namespaced": True,
                "kind": "MetricValueList",
                "verbs": ["get"],
            }
        ],
    }


def _timestamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def metric_value(version: str, namespace: str, name: str, load: PoolLoad) -> dict[str, Any]:
    """One pool's load as a MetricValue of `version`."""
    item: dict[str, Any] = {
        "describedObject": {
            "kind": "AgentPool",
            "namespace": namespace,
            "name": name,
            "apiVersion": api.API_VERSION,
        },
        "timestamp": _timestamp(load.at),
        "windowSeconds": WINDOW_SECONDS,
        # A quantity: an integer percent is one.
        "value": str(load.load_percent),
    }
    if version == "v1beta1":
        item["metricName"] = LOAD_METRIC
    else:
        item["metric"] = {"name": LOAD_METRIC}
    return item


def metric_value_list(version: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "kind": "MetricValueList",
        "apiVersion": f"{GROUP}/{version}",
        "metadata": {},
        "items": items,
    }
