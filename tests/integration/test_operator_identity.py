"""The chart's RBAC, exercised by real requests under the operator's own identity."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client

from tests.integration.crd_install import install_crds
from tests.support.audit import AuditWindow, audit_log_path, flush
from tests.support.cluster import TEST_CLUSTER, Cluster
from tests.support.operator_identity import operator_login, remove_chart_rbac


def _status(call: Callable[[], Any]) -> int:
    try:
        call()
    except client.ApiException as exc:
        return int(exc.status)
    return 200


def test_the_operator_identity_has_the_chart_s_rights_and_no_more(
    cluster: Cluster, kube_api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    install_crds(cluster)
    release = f"id-{namespace}"
    login = operator_login(
        cluster, kube_api, namespace=namespace, directory=tmp_path, release=release
    )
    try:
        window = AuditWindow.starting_now(audit_log_path(TEST_CLUSTER), user=login.user)
        api = login.api_client()
        custom = client.CustomObjectsApi(api)
        core = client.CoreV1Api(api)
        leases = client.CoordinationV1Api(api)
        lease = client.V1Lease(metadata=client.V1ObjectMeta(name="agentpool-operator"))

        assert login.user == f"system:serviceaccount:{namespace}:{release}-agentpool"
        # Reads it needs, cluster-wide.
        assert _status(lambda: custom.list_cluster_custom_object(
            "agentpool.dev", "v1alpha1", "agentpools")) == 200  # fmt: skip
        assert _status(lambda: core.list_secret_for_all_namespaces(limit=1)) == 200
        # Its Lease, in its own namespace only.
        assert _status(lambda: leases.create_namespaced_lease(namespace, lease)) == 200
        assert _status(lambda: leases.create_namespaced_lease("default", lease)) == 403
        # Not granted: pods, writing Secrets, deleting pools.
        assert _status(lambda: core.list_namespaced_pod(namespace)) == 403
        assert _status(lambda: core.delete_namespaced_secret("any", namespace)) == 403
        assert _status(lambda: custom.delete_namespaced_custom_object(
            "agentpool.dev", "v1alpha1", namespace, "agentpools", "any")) == 403  # fmt: skip

        # The audit log knows these requests by the operator's name.
        window.close()
        flush(window.path, kube_api)
        counts = window.writes()
        assert counts.lease_writes == 2  # one allowed, one refused
        assert dict(counts.by_request) == {
            ("delete", "secrets"): 1,
            ("delete", "agentpool.dev/agentpools"): 1,
        }
    finally:
        remove_chart_rbac(cluster, namespace=namespace, release=release)
