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
        refused = sorted({(e.verb, e.resource, e.namespace) for e in events if e.code == 403})
        assert not refused, f"the chart's RBAC refused the operator: {refused}"
        # Control: the operator did its work under this identity.
        assert window.writes().by_request[("patch", "apps/deployments")] >= len(POOLS)
        assert (
            window.writes().by_request[("patch", "rbac.authorization.k8s.io/clusterrolebindings")]
            == 1
        )
    finally:
        remove_chart_rbac(cluster, namespace=namespace, release=release)
