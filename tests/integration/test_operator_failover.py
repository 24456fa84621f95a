"""Two operator replicas, one active through a coordination.k8s.io Lease: the standby
reconciles nothing, and takes over within the lease when the leader dies."""

from __future__ import annotations

import time
from pathlib import Path

from kubernetes import client

from tests.integration.crd_install import install_crds
from tests.integration.test_operator_reconcile import MODEL, Api, _ready
from tests.support.cluster import Cluster
from tests.support.operator_process import start_operator, stop_operator
from tests.support.wait import wait_until

LEASE_SECONDS = 4.0


def _elected(namespace: str, identity: str) -> dict[str, str]:
    return {
        "AGENTPOOL_LEADER_ELECT": "true",
        "AGENTPOOL_OPERATOR_NAMESPACE": namespace,
        "AGENTPOOL_POD_NAME": identity,
        "AGENTPOOL_LEASE_DURATION_SECONDS": str(LEASE_SECONDS),
        "AGENTPOOL_LEASE_RENEW_DEADLINE_SECONDS": "3",
        "AGENTPOOL_LEASE_RETRY_SECONDS": "0.5",
    }


def test_the_standby_takes_over_within_the_lease_when_the_leader_dies(
    cluster: Cluster, namespace: str, kube_api: client.ApiClient, tmp_path: Path
) -> None:
    install_crds(cluster)
    kube = Api(kube_api, namespace)
    kube.secret("llm", {"api-key": "k"})
    first = start_operator(
        cluster, [namespace], tmp_path / "a.log", _elected(namespace, "a"), standalone=False
    )
    second = None
    try:
        wait_until(first.leading, timeout=30, what="the first replica to lead")
        second = start_operator(
            cluster, [namespace], tmp_path / "b.log", _elected(namespace, "b"), standalone=False
        )
        kube.create("agentpools", "one", {"instructions": "1.", "model": MODEL})
        wait_until(lambda: _ready(kube, "one"), timeout=90, what="pool one Ready")
        assert not second.leading()
        assert second.metric("agentpool_operator_reconciles_total") == 0
        stop_operator(first, kill=True)
        killed_at = time.monotonic()
        assert second is not None
        wait_until(second.leading, timeout=3 * LEASE_SECONDS, what="the standby to lead")
        took = time.monotonic() - killed_at
        assert took <= LEASE_SECONDS + 2, f"took over after {took:.1f}s"
        kube.create("agentpools", "two", {"instructions": "2.", "model": MODEL})
        wait_until(
            lambda: _ready(kube, "two"), timeout=90, what="pool two Ready, by the new leader"
        )
    finally:
        stop_operator(first)
        if second is not None:
            stop_operator(second)
