"""The activator's EndpointSlice for a pool's Service, and what a pool's slices say (pure).

Routing a pool at zero to the activator does not touch the pool's Service: kube-proxy
merges every EndpointSlice labelled `kubernetes.io/service-name: <service>`, whoever
made it (kubernetes/kubernetes pkg/proxy/endpointslicecache.go: `endpointSliceCacheKeys`
keys slices by that label alone, and `endpointInfoByServicePort` joins their endpoints
per port name and protocol), while the EndpointSlice controller manages only the slices
labelled `endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io`
(k8s.io/endpointslice utils.go, `managedByController`) and leaves others alone. So the
operator adds one slice of its own, managed by `activator.agentpool.dev`, whose endpoint
is the activator (the Service's port name mapped to the activator's port), only while
the pool has no ready endpoint, and deletes it when it has one again.

The EndpointSlice controller copies the Service's labels onto its slices
(`setEndpointSliceLabels`), so the pool's slices carry the pool's labels and the
operator watches them by the same label as its other children.

EndpointSlice validation refuses loopback and link-local addresses ("may not be in the
loopback range", checked against kube-apiserver v1.34): out of cluster the activator's
address is a configured one that the pod runner maps to the local process.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentpool_operator.render import names

API_VERSION = "discovery.k8s.io/v1"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
ACTIVATOR = "activator.agentpool.dev"
"""Our slices' manager (the EndpointSlice controller ignores them)."""
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
PORT_NAME = "http"
"""The name of the pool Service's one port (render/network.py)."""


@dataclass(frozen=True)
class Endpoint:
    """One ready address of a pool's Service."""

    address: str
    port: int
    pod: str | None = None

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}"


def slice_name(pool: str) -> str:
    """The activator slice's name (pool names are at most 52 characters)."""
    return f"{pool}-activator"


def activator_slice(
    namespace: str,
    pool: str,
    owner: Mapping[str, Any],
    addresses: Sequence[str],
    port: int,
) -> dict[str, Any]:
    """The slice that sends the pool's Service to the activator at `addresses`:`port`
    (one address family per slice, as the API demands: the first address's)."""
    family = _family(addresses[0])
    chosen = sorted({a for a in addresses if _family(a) == family})
    labels = {
        **names.child_labels(pool),
        SERVICE_NAME_LABEL: pool,
        MANAGED_BY_LABEL: ACTIVATOR,
    }
    return {
        "apiVersion": API_VERSION,
        "kind": "EndpointSlice",
        "metadata": {
            "name": slice_name(pool),
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [dict(owner)],
        },
        "addressType": family,
        "ports": [{"name": PORT_NAME, "port": port, "protocol": "TCP"}],
        "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in chosen],
    }


def is_activator_slice(body: Mapping[str, Any]) -> bool:
    labels = (body.get("metadata") or {}).get("labels") or {}
    return labels.get(MANAGED_BY_LABEL) == ACTIVATOR


def ready_endpoints(slices: Iterable[Mapping[str, Any]]) -> list[Endpoint]:
    """The ready pod endpoints of a pool's Service (the activator's own slice excluded),
    on the Service's port; an endpoint with no ready condition is ready (the API's rule)."""
    found: dict[tuple[str, int], Endpoint] = {}
    for body in slices:
        if is_activator_slice(body) or (body.get("metadata") or {}).get("deletionTimestamp"):
            continue
        port = next(
            (
                p.get("port")
                for p in body.get("ports") or []
                if p.get("name") == PORT_NAME and isinstance(p.get("port"), int)
            ),
            None,
        )
        if port is None:
            continue
        for endpoint in body.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            addresses = endpoint.get("addresses") or []
            if not addresses:
                continue
            target = endpoint.get("targetRef") or {}
            pod = target.get("name") if target.get("kind") == "Pod" else None
            found[(addresses[0], port)] = Endpoint(addresses[0], port, pod)
    return sorted(found.values(), key=lambda e: (e.address, e.port))


def slice_matches(body: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Whether an existing activator slice already routes as `wanted` does."""
    return bool(
        body.get("addressType") == wanted["addressType"]
        and body.get("ports") == wanted["ports"]
        and _addresses(body) == _addresses(wanted)
    )


def _addresses(body: Mapping[str, Any]) -> list[str]:
    return sorted(a for e in body.get("endpoints") or [] for a in e.get("addresses") or [])


def _family(address: str) -> str:
    return "IPv6" if ipaddress.ip_address(address).version == 6 else "IPv4"
