"""Names, labels and owner references of a pool's children: one place decides them.

Every child is named after the pool (the pool name is a DNS-1035 label of at most 52
characters, so `<pool>-config` and every label value fit their 63-character limits), owned
by the pool (deleting the pool deletes them through the garbage collector) and labelled
`app.kubernetes.io/managed-by: agentpool-operator`, which is how the operator watches
only its own objects.
"""

from __future__ import annotations

from typing import Any

from agentpool_operator import api

MANAGED_BY = "agentpool-operator"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
POOL_LABEL = "agentpool.dev/pool"
"""On every child and agent pod: the pool it belongs to."""
CONFIG_HASH_ANNOTATION = "agentpool.dev/config-hash"
"""On the pod template: a change rolls the pods."""
COMPONENT = "agent"


def config_map_name(pool_name: str) -> str:
    return f"{pool_name}-config"


def selector_labels(pool_name: str) -> dict[str, str]:
    """The labels that select a pool's pods (immutable in a Deployment, so minimal)."""
    return {POOL_LABEL: pool_name}


def selector_string(pool_name: str) -> str:
    """The pods' selector in the string form the scale subresource reports."""
    return ",".join(f"{k}={v}" for k, v in selector_labels(pool_name).items())


def child_labels(pool_name: str) -> dict[str, str]:
    """Labels of every child and of the pods."""
    return {
        "app.kubernetes.io/name": "agentpool-agent",
        "app.kubernetes.io/instance": pool_name,
        "app.kubernetes.io/component": COMPONENT,
        MANAGED_BY_LABEL: MANAGED_BY,
        **selector_labels(pool_name),
    }


def owner_reference(pool: api.AgentPool) -> dict[str, Any]:
    """The controller reference every child carries."""
    return {
        "apiVersion": api.API_VERSION,
        "kind": "AgentPool",
        "name": pool.metadata.name,
        "uid": pool.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(pool: api.AgentPool, name: str | None = None) -> dict[str, Any]:
    """`metadata` of a child: its name, namespace, labels and owner reference."""
    return {
        "name": name or pool.metadata.name,
        "namespace": pool.metadata.namespace,
        "labels": child_labels(pool.metadata.name),
        "ownerReferences": [owner_reference(pool)],
    }
