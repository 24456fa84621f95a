"""How a pool is reached: its Service (named after the pool: pool-as-tool callers find it
by name) and, when asked, a NetworkPolicy that admits only the callers the pool names
and the pools that use it as a tool."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agentpool_operator import api
from agentpool_operator.render import names

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def service(pool: api.AgentPool, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": names.metadata(pool),
        "spec": {
            "type": "ClusterIP",
            "selector": names.selector_labels(pool.metadata.name),
            "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def _selector(selector: api.LabelSelector) -> dict[str, Any]:
    dumped: dict[str, Any] = selector.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    return dumped


def _peer(peer: api.NetworkPeer) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if peer.pod_selector is not None:
        out["podSelector"] = _selector(peer.pod_selector)
    if peer.namespace_selector is not None:
        out["namespaceSelector"] = _selector(peer.namespace_selector)
    return out


def network_policy(
    pool: api.AgentPool, port: int, operator_namespace: str, calling_pools: Sequence[str] = ()
) -> dict[str, Any] | None:
    """Default deny for the pool's pods, except from the named callers (every pod of the
    pool's namespace when none is named), the pods of the pools of its namespace that use
    it as a tool (`calling_pools`: a pool-as-tool call must not need a second listing)
    and the operator (it drains pods)."""
    spec = pool.spec.network_policy
    if not spec.enabled:
        return None
    callers = [_peer(p) for p in spec.allowed_callers]
    if callers:
        callers += [
            {"podSelector": {"matchLabels": names.selector_labels(name)}} for name in calling_pools
        ]
    else:
        callers = [{"podSelector": {}}]
    callers.append(
        {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: operator_namespace}}}
    )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": names.metadata(pool),
        "spec": {
            "podSelector": {"matchLabels": names.selector_labels(pool.metadata.name)},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": callers, "ports": [{"protocol": "TCP", "port": port}]}],
        },
    }
