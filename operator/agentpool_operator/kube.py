"""The one module that writes to the API server.

Every write is a server-side apply under one field manager with `force` (the operator
owns what it renders and takes it back from a hand edit), except the few that cannot be:
deletes, Events, the first write of `spec.replicas` (a conditional merge patch), and the
autoscaler's (replicas through `/scale`, a pod's deletion cost, its status fields under
its own field manager).
Reads come from kopf's watch streams (the indexes in `handlers.py`), except a few by
name: the token-reviewer ClusterRoleBinding (`get_cluster_object`, a kind the operator may
not watch) and the autoscaler's pods and Secrets.

The `kubernetes` client is synchronous; its calls run on a bounded thread pool so the
event loop (kopf's watches, the work queue) never blocks on a request.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from agentpool_operator import api
from agentpool_operator.metrics import API_LATENCY, WRITES
from agentpool_operator.settings import FIELD_MANAGER

PLURALS: Mapping[str, str] = {
    "ServiceAccount": "serviceaccounts",
    "ConfigMap": "configmaps",
    "Service": "services",
    "Event": "events",
    "Deployment": "deployments",
    "PodDisruptionBudget": "poddisruptionbudgets",
    "NetworkPolicy": "networkpolicies",
    "HorizontalPodAutoscaler": "horizontalpodautoscalers",
    "EndpointSlice": "endpointslices",
    "AgentPool": "agentpools",
    "AgentTool": "agenttools",
    "ClusterRoleBinding": "clusterrolebindings",
    "Pod": "pods",
    "Secret": "secrets",
}


class KubeError(Exception):
    """A request the API server refused or could not answer."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


def object_path(api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
    """The REST path of a namespaced object (or its collection when `name` is None)."""
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    path = f"{base}/namespaces/{quote(namespace)}/{PLURALS[kind]}"
    return path if name is None else f"{path}/{quote(name)}"


def cluster_object_path(api_version: str, kind: str, name: str) -> str:
    """The REST path of a cluster-scoped object."""
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    return f"{base}/{PLURALS[kind]}/{quote(name)}"


class KubeApi:
    """Asynchronous writes over the synchronous `kubernetes` client."""

    def __init__(self, api_client: client.ApiClient, *, threads: int = 16) -> None:
        self._client = api_client
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="kube")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        serialized = self._client.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self._client.call_api(*serialized)
            response.read()  # type: ignore[no-untyped-call]
        except ApiException as exc:
            raise _error(exc) from exc
        data = response.data
        if response.status >= 400:
            raise _error_from(response.status, data)
        parsed: dict[str, Any] = json.loads(data) if data else {}
        return parsed

    async def _call(
        self, verb: str, kind: str, method: str, path: str, **kwargs: Any
    ) -> dict[str, Any]:
        started = time.perf_counter()
        code = "200"
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                self._pool, lambda: self._request(method, path, **kwargs)
            )
        except KubeError as exc:
            code = str(exc.status)
            raise
        finally:
            API_LATENCY.labels(verb).observe(time.perf_counter() - started)
            WRITES.labels(verb, kind, code).inc()

    async def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply `obj` (force: the operator's fields are the operator's)."""
        meta = obj["metadata"]
        path = object_path(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        return await self._call(
            "apply",
            obj["kind"],
            "PATCH",
            path,
            body=dict(obj),
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )

    async def get_cluster_object(
        self, api_version: str, kind: str, name: str
    ) -> dict[str, Any] | None:
        """One cluster-scoped object (None: it does not exist): the operator may read such
        an object by name but not watch its kind."""
        return await self._get(kind, cluster_object_path(api_version, kind, name))

    async def _get(self, kind: str, path: str) -> dict[str, Any] | None:
        try:
            return await self._call("get", kind, "GET", path)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    async def apply_cluster_object(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply of a cluster-scoped object (force, as `apply`)."""
        path = cluster_object_path(obj["apiVersion"], obj["kind"], obj["metadata"]["name"])
        return await self._call(
            "apply",
            obj["kind"],
            "PATCH",
            path,
            body=dict(obj),
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )

    async def apply_status(
        self,
        kind: str,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        *,
        manager: str = FIELD_MANAGER,
    ) -> dict[str, Any]:
        """Server-side apply of the status fields the operator owns on one of our kinds
        (the autoscaler owns others, under its own field manager)."""
        body = {
            "apiVersion": api.API_VERSION,
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace},
            "status": dict(status),
        }
        path = object_path(api.API_VERSION, kind, namespace, name) + "/status"
        return await self._call(
            "apply_status",
            kind,
            "PATCH",
            path,
            body=body,
            query=[("fieldManager", manager), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )

    async def apply_pool_status(
        self, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        return await self.apply_status("AgentPool", namespace, name, status)

    async def init_replicas(
        self, namespace: str, name: str, resource_version: str, replicas: int
    ) -> bool:
        """Write spec.replicas of a pool that has none, unless the pool changed since
        `resource_version` (then whoever changed it may have written it): False."""
        path = object_path(api.API_VERSION, "AgentPool", namespace, name)
        body = {"metadata": {"resourceVersion": resource_version}, "spec": {"replicas": replicas}}
        try:
            await self._call(
                "patch",
                "AgentPool",
                "PATCH",
                path,
                body=body,
                query=[("fieldManager", FIELD_MANAGER)],
                content_type="application/merge-patch+json",
            )
        except KubeError as exc:
            if exc.status in (404, 409):
                return False
            raise
        return True

    async def scale(self, namespace: str, name: str, replicas: int, *, manager: str) -> None:
        """Write a pool's replicas through its scale subresource, as `kubectl scale` and
        the HPA do (the pool's spec is the user's; only this field is written)."""
        path = object_path(api.API_VERSION, "AgentPool", namespace, name) + "/scale"
        await self._call(
            "scale",
            "AgentPool",
            "PATCH",
            path,
            body={"spec": {"replicas": replicas}},
            query=[("fieldManager", manager)],
            content_type="application/merge-patch+json",
        )

    async def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        """One pod, or None when it is gone (the autoscaler checks a pod it will mark)."""
        return await self._get("Pod", object_path("v1", "Pod", namespace, name))

    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        """One Secret, or None when it is gone (the autoscaler reads a Redis URL in one)."""
        return await self._get("Secret", object_path("v1", "Secret", namespace, name))

    async def annotate_pod(
        self, namespace: str, name: str, uid: str, annotations: Mapping[str, str | None]
    ) -> None:
        """Set (or, with None, remove) annotations of one pod, only if it is still the
        pod seen (its uid)."""
        body = {"metadata": {"uid": uid, "annotations": dict(annotations)}}
        try:
            await self._call(
                "patch",
                "Pod",
                "PATCH",
                object_path("v1", "Pod", namespace, name),
                body=body,
                content_type="application/merge-patch+json",
            )
        except KubeError as exc:
            if exc.status not in (404, 409, 422):
                raise

    async def delete(
        self, api_version: str, kind: str, namespace: str, name: str, uid: str
    ) -> None:
        """Delete one object, only if it is still the one seen (its uid)."""
        body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "preconditions": {"uid": uid},
            "propagationPolicy": "Background",
        }
        try:
            await self._call(
                "delete", kind, "DELETE", object_path(api_version, kind, namespace, name), body=body
            )
        except KubeError as exc:
            if exc.status not in (404, 409):
                raise

    async def event(
        self,
        involved: api.AgentPool,
        *,
        type_: str,
        reason: str,
        message: str,
    ) -> None:
        """Record an Event on a pool (what `kubectl describe ap` shows)."""
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        meta = involved.metadata
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta.name}.", "namespace": meta.namespace},
            "involvedObject": {
                "apiVersion": api.API_VERSION,
                "kind": "AgentPool",
                "name": meta.name,
                "namespace": meta.namespace,
                "uid": meta.uid,
                "resourceVersion": meta.resource_version,
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER,
            "reportingInstance": FIELD_MANAGER,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        assert meta.namespace is not None
        await self._call(
            "create", "Event", "POST", object_path("v1", "Event", meta.namespace), body=body
        )


def _error(exc: ApiException) -> KubeError:
    return _error_from(int(exc.status or 0), exc.body)


def _error_from(status: int, data: Any) -> KubeError:
    reason, message = "Unknown", ""
    try:
        parsed = json.loads(data) if data else {}
        reason = str(parsed.get("reason", reason))
        message = str(parsed.get("message", ""))
    except (ValueError, TypeError, AttributeError):
        message = str(data)[:512]
    return KubeError(status, reason, message)
