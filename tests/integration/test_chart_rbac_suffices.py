"""The chart's RBAC is enough for the operator: run as the chart's ServiceAccount, it
reconciles the examples without a single refused request, cluster-wide and namespaced.

(That it grants no more than the operator uses is checked rule by rule in
test_chart_helm.py; this is the other half, by the API server's own authorizer.)
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from kubernetes import client

from tests.integration.crd_install import REPO_ROOT, install_crds
from tests.support.audit import AuditWindow, audit_log_path, flush
from tests.support.cluster import TEST_CLUSTER, Cluster
from tests.support.operator_identity import operator_login, remove_chart_rbac
from tests.support.operator_process import operator_running
from tests.support.served_pool import (
    annotate_pool,
    create_served_pool,
    new_activation,
    short_windows,
)
from tests.support.wait import wait_until

POOLS = ("customer-support", "billing")


def _ready(api: client.ApiClient, namespace: str, name: str) -> bool:
    pool = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "agentpool.dev", "v1alpha1", namespace, "agentpools", name
    )
    conditions = (pool.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _subjects(api: client.ApiClient, binding: str) -> list[tuple[str, str]]:
    found = client.RbacAuthorizationV1Api(api).read_cluster_role_binding(binding)
    return [(s.namespace, s.name) for s in found.subjects or []]


@pytest.mark.parametrize("mode", ["cluster-wide", "namespaced"])
def test_the_operator_runs_on_the_chart_s_rbac_without_a_refusal(
    cluster: Cluster, kube_api: client.ApiClient, namespace: str, tmp_path: Path, mode: str
) -> None:
    install_crds(cluster)
    release = f"rbac-{uuid.uuid4().hex[:6]}"
    watched = [namespace] if mode == "namespaced" else []
    # The operator's own namespace is the test namespace (its Lease Role lives there).
    login = operator_login(
        cluster,
        kube_api,
        namespace=namespace,
        directory=tmp_path,
        release=release,
        watch_namespaces=watched,
    )
    try:
        window = AuditWindow.starting_now(audit_log_path(TEST_CLUSTER), user=login.user)
        binding = f"{release}-agentpool-token-reviewer"
        env = {
            "KUBECONFIG": str(login.kubeconfig),
            "AGENTPOOL_OPERATOR_NAMESPACE": namespace,
            "AGENTPOOL_TOKEN_REVIEWER_BINDING": binding,  # as the chart sets it
        }
        with operator_running(cluster, watched, tmp_path / "operator.log", env) as operator:
            cluster.kubectl("apply", "-n", namespace, "-f", str(REPO_ROOT / "examples"))
            for pool in POOLS:
                wait_until(
                    lambda pool=pool: _ready(kube_api, namespace, pool),
                    timeout=120,
                    what=f"pool {pool} Ready (operator log: {operator.log})",
                )
            # customer-support asks billing through an agent tool: billing reviews tokens.
            wait_until(
                lambda: _subjects(kube_api, binding) == [(namespace, "billing")],
                timeout=30,
                what="billing's ServiceAccount in the token-reviewer binding",
            )
        window.close()
        flush(window.path, kube_api)
        events = window.events()
        refused = sorted({(e.verb, e.resource, e.namespace) for e in events if e.refused_by_rbac})
        assert not refused, f"the chart's RBAC refused the operator: {refused}"
        # Control: the operator did its work under this identity.
        assert window.writes().by_request[("patch", "apps/deployments")] >= len(POOLS)
        assert (
            window.writes().by_request[("patch", "rbac.authorization.k8s.io/clusterrolebindings")]
            == 1
        )
    finally:
        remove_chart_rbac(cluster, namespace=namespace, release=release)


def test_with_the_activator_the_chart_s_rbac_lets_the_operator_keep_its_slices(
    cluster: Cluster, kube_api: client.ApiClient, namespace: str, tmp_path: Path, redis_url: str
) -> None:
    """activator.enabled: the operator, as the chart's ServiceAccount, watches the pools'
    EndpointSlices, creates a pool's activator slice when it has no ready pod and deletes
    it when it has one again, without a refused request."""
    install_crds(cluster)
    release = f"act-{uuid.uuid4().hex[:6]}"
    values = ["activator.enabled=true"]
    login = operator_login(
        cluster,
        kube_api,
        namespace=namespace,
        directory=tmp_path,
        release=release,
        watch_namespaces=[namespace],
        values=values,
    )
    try:
        window = AuditWindow.starting_now(audit_log_path(TEST_CLUSTER), user=login.user)
        env = {
            "KUBECONFIG": str(login.kubeconfig),
            "AGENTPOOL_OPERATOR_NAMESPACE": namespace,
            **new_activation().operator_env(),
        }
        scaling = short_windows(min_replicas=0, max_replicas=2, signal="ActiveTurnsAndQueuedTasks")
        with operator_running(cluster, [namespace], tmp_path / "operator.log", env):
            create_served_pool(
                kube_api, namespace, "sleepy", "http://127.0.0.1:9/v1", redis_url,
                concurrency=2, scaling=scaling,
            )  # fmt: skip
            # Pinned at 0: no ready pod, the slice; pinned at 1: a ready pod, no slice.
            annotate_pool(kube_api, namespace, "sleepy", {"agentpool.dev/paused-replicas": "0"})
            wait_until(
                lambda: _activator_slice(kube_api, namespace) is not None,
                timeout=60,
                what="the activator slice",
            )
            annotate_pool(kube_api, namespace, "sleepy", {"agentpool.dev/paused-replicas": "1"})
            wait_until(
                lambda: _activator_slice(kube_api, namespace) is None,
                timeout=60,
                what="the activator slice deleted once a pod is ready",
            )
        window.close()
        flush(window.path, kube_api)
        events = window.events()
        refused = sorted({(e.verb, e.resource, e.namespace) for e in events if e.refused_by_rbac})
        assert not refused, f"the chart's RBAC refused the operator: {refused}"
        writes = window.writes().by_request
        assert writes[("patch", "discovery.k8s.io/endpointslices")] >= 1
        assert writes[("delete", "discovery.k8s.io/endpointslices")] >= 1
    finally:
        remove_chart_rbac(cluster, namespace=namespace, release=release, values=values)


def _activator_slice(api: client.ApiClient, namespace: str) -> object | None:
    try:
        return client.DiscoveryV1Api(api).read_namespaced_endpoint_slice(
            "sleepy-activator", namespace
        )
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise
