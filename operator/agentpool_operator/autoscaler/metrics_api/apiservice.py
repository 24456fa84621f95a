"""The APIService that routes custom.metrics.k8s.io to us, and the rule that we never take
it from another adapter.

The operator, not the chart, writes it: it carries the CA bundle of the serving
certificate the operator made at start, and an object we create is one we can tell
apart. Ours has the label `app.kubernetes.io/managed-by: agentpool-operator`; an
APIService of that name without it (prometheus-adapter's, KEDA's, a hand-made one) is
someone else's: we log why, set `agentpool_operator_metrics_api_serving` to 0 and serve
nothing, and the HPAs of other workloads keep their adapter.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from typing import Any, Literal, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from agentpool_operator.autoscaler.metrics_api.documents import GROUP
from agentpool_operator.settings import FIELD_MANAGER

VERSION = "v1beta2"
NAME = f"{VERSION}.{GROUP}"
MANAGED_BY = "app.kubernetes.io/managed-by"


@dataclass(frozen=True)
class ServiceRef:
    """The Service the aggregator dials (its port: the Service's, not the pod's)."""

    namespace: str
    name: str
    port: int


@dataclass(frozen=True)
class Owner:
    """A cluster-scoped object of the installation whose deletion deletes the APIService
    (the chart's ClusterRole of the metrics API: `helm uninstall`, or turning the
    metrics API off, then removes the APIService the operator made)."""

    name: str
    uid: str
    api_version: str = "rbac.authorization.k8s.io/v1"
    kind: str = "ClusterRole"


def desired(service: ServiceRef, ca_bundle: bytes, owned_by: Owner | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": NAME,
        "labels": {MANAGED_BY: FIELD_MANAGER, "app.kubernetes.io/part-of": "agentpool"},
    }
    if owned_by is not None:
        metadata["ownerReferences"] = [
            {
                "apiVersion": owned_by.api_version,
                "kind": owned_by.kind,
                "name": owned_by.name,
                "uid": owned_by.uid,
            }
        ]
    return {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": metadata,
        "spec": {
            "group": GROUP,
            "version": VERSION,
            "service": {
                "namespace": service.namespace,
                "name": service.name,
                "port": service.port,
            },
            "caBundle": base64.b64encode(ca_bundle).decode(),
            # prometheus-adapter's and KEDA's values: one group, this version preferred.
            "groupPriorityMinimum": 100,
            "versionPriority": 200,
        },
    }


def leader_endpoints(service: ServiceRef, pod_ip: str, port: int) -> dict[str, Any]:
    """The EndpointSlice of the metrics-API Service (which has no selector): this pod only.

    Only the leader has the load (its autoscaler loop fills the board), so the Service
    must route to the leader alone; a selector would include standbys, which would
    answer 404 for every pool. Each new leader writes its own address over the last."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service.name}-leader",
            "namespace": service.namespace,
            "labels": {
                "kubernetes.io/service-name": service.name,
                "endpointslice.kubernetes.io/managed-by": FIELD_MANAGER,
                MANAGED_BY: FIELD_MANAGER,
            },
        },
        "addressType": "IPv6" if ":" in pod_ip else "IPv4",
        "endpoints": [{"addresses": [pod_ip], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    }


def owner(existing: dict[str, Any] | None) -> Literal["absent", "ours", "foreign"]:
    if existing is None:
        return "absent"
    labels = (existing.get("metadata") or {}).get("labels") or {}
    return "ours" if labels.get(MANAGED_BY) == FIELD_MANAGER else "foreign"


def describe(existing: dict[str, Any]) -> str:
    """Who the foreign APIService sends the group to, for the refusal's message."""
    spec = existing.get("spec") or {}
    service = spec.get("service") or {}
    labels = (existing.get("metadata") or {}).get("labels") or {}
    target = f"Service {service.get('namespace')}/{service.get('name')}" if service else "local"
    return f"{target} (managed-by: {labels.get(MANAGED_BY, 'unset')})"


class ForeignAPIServiceError(Exception):
    """Another adapter owns the APIService; the message says which."""


# The generic client takes and returns plain dicts (the typed one wants V1APIService).
APIREG = ("apiregistration.k8s.io", "v1", "apiservices")


def _read(api: client.CustomObjectsApi) -> dict[str, Any] | None:
    try:
        found = cast(dict[str, Any], api.get_cluster_custom_object(*APIREG, NAME))
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return found


def _claim(api_client: client.ApiClient, body: dict[str, Any]) -> Literal["created", "updated"]:
    api = client.CustomObjectsApi(api_client)
    for _ in range(3):  # a conflict means someone wrote in between: look again
        existing = _read(api)
        whose = owner(existing)
        if whose == "foreign":
            assert existing is not None
            raise ForeignAPIServiceError(
                f"APIService {NAME} already routes {GROUP} to {describe(existing)}; "
                f"it is not ours ({MANAGED_BY}={FIELD_MANAGER}), so the operator does not "
                "take it over and serves no custom metrics"
            )
        try:
            if existing is None:
                api.create_cluster_custom_object(*APIREG, body, field_manager=FIELD_MANAGER)
                return "created"
            update = {**body, "metadata": {**body["metadata"],
                      "resourceVersion": existing["metadata"]["resourceVersion"]}}  # fmt: skip
            api.replace_cluster_custom_object(*APIREG, NAME, update)
            return "updated"
        except ApiException as exc:
            if exc.status not in (409,):
                raise
    raise ForeignAPIServiceError(f"APIService {NAME} kept changing under us; not serving")


def _owner(api_client: client.ApiClient, cluster_role: str) -> Owner:
    found = client.CustomObjectsApi(api_client).get_cluster_custom_object(
        "rbac.authorization.k8s.io", "v1", "clusterroles", cluster_role
    )
    return Owner(name=cluster_role, uid=str(cast(dict[str, Any], found)["metadata"]["uid"]))


async def claim(
    api_client: client.ApiClient,
    service: ServiceRef,
    ca_bundle: bytes,
    owner_cluster_role: str | None = None,
) -> Literal["created", "updated"]:
    """Create or update our APIService (owned by `owner_cluster_role` when given);
    ForeignAPIServiceError if another adapter's."""
    owned_by = None
    if owner_cluster_role:
        owned_by = await asyncio.to_thread(_owner, api_client, owner_cluster_role)
    return await asyncio.to_thread(_claim, api_client, desired(service, ca_bundle, owned_by))
