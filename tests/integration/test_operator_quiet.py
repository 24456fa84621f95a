"""Quiet: with nothing changing, the operator makes no write request at all, across
re-lists of its watches and a restart (its only reads outside the watches are of the
token-reviewer binding, by name, at start and at each resync). The operator's own
request counter is checked here, and the API server's audit log."""

from __future__ import annotations

import time
from pathlib import Path

from kubernetes import client

from tests.integration.crd_install import install_crds
from tests.integration.test_operator_reconcile import MODEL, Api, _ready
from tests.support.cluster import Cluster
from tests.support.operator_process import OperatorProcess, operator_running
from tests.support.wait import wait_until

WRITES = "agentpool_operator_api_requests_total"
UNCHANGED = 'result="unchanged"'
RECONCILES = "agentpool_operator_reconciles_total"
# Short watches (kopf reconnects every 2 s) and a resync of every pool each second.
FAST_RELIST = {"AGENTPOOL_WATCH_TIMEOUT_SECONDS": "2", "AGENTPOOL_RESYNC_SECONDS": "1"}


def _writes(op: OperatorProcess) -> float:
    """The operator's requests to the API server other than reads."""
    return op.metric(WRITES) - op.metric(WRITES, 'verb="get"')


def _settled(op: OperatorProcess, quiet_for: float = 3.0) -> float:
    """Wait until the operator's write count has not moved for `quiet_for` seconds."""
    seen = {"value": _writes(op), "since": time.monotonic()}

    def still() -> bool:
        now = _writes(op)
        if now != seen["value"]:
            seen.update(value=now, since=time.monotonic())
        return time.monotonic() - seen["since"] >= quiet_for

    wait_until(still, timeout=60, interval=0.5, what="the operator to settle")
    return seen["value"]


def test_an_idle_cluster_sees_no_write_across_relists_and_a_restart(
    cluster: Cluster, namespace: str, kube_api: client.ApiClient, tmp_path: Path
) -> None:
    install_crds(cluster)
    kube = Api(kube_api, namespace)
    kube.secret("llm", {"api-key": "k"})
    kube.create(
        "agenttools", "ask", {"description": "d", "agent": {"poolName": "b"}}, {"team": "x"}
    )
    pools = {
        "a": {
            "instructions": "A.",
            "model": MODEL,
            "tools": {"selector": {"matchLabels": {"team": "x"}}},
        },
        "b": {"instructions": "B.", "model": MODEL, "scaling": {"mode": "HPA", "minReplicas": 2}},
        "c": {"instructions": "C.", "model": MODEL, "scaling": {"mode": "None"}, "replicas": 3},
    }
    for name, spec in pools.items():
        kube.create("agentpools", name, spec)
    log = tmp_path / "operator.log"
    with operator_running(cluster, [namespace], log, FAST_RELIST) as op:
        for name in pools:
            wait_until(lambda name=name: _ready(kube, name), timeout=90, what=f"{name} Ready")
        writes = _settled(op)
        assert writes > 0
        # Idle through resyncs and reconnected watches: every pool is reconciled again
        # and again, nothing is written.
        start = op.metric(RECONCILES, UNCHANGED)
        wait_until(
            lambda: op.metric(RECONCILES, UNCHANGED) >= start + 3 * len(pools),
            timeout=60,
            what="three rounds of resyncs reconciled",
        )
        assert _writes(op) == writes, op.tail()
    with operator_running(cluster, [namespace], log, FAST_RELIST) as op:
        wait_until(
            lambda: op.metric(RECONCILES, UNCHANGED) >= 2 * len(pools),
            timeout=60,
            what="the restarted operator to reconcile every pool twice",
        )
        assert _writes(op) == 0, op.tail()
        assert op.metric(RECONCILES, 'result="changed"') == 0


def test_the_api_servers_audit_log_shows_no_write_by_the_operator_when_idle(
    cluster: Cluster, namespace: str, kube_api: client.ApiClient, tmp_path: Path
) -> None:
    """The same, judged by the API server: the operator runs as the chart's
    ServiceAccount with the chart's RBAC and leader election on, managing the chart's
    token-reviewer binding (pool a calls pool b as a tool, so b reviews tokens); over an
    idle window that includes resyncs and a restart, its only writes are Lease renewals
    (counted apart)."""
    from tests.support.audit import AuditWindow, audit_log_path, flush
    from tests.support.operator_identity import operator_login, remove_chart_rbac

    install_crds(cluster)
    release = f"q{namespace[-8:]}"
    login = operator_login(
        cluster, kube_api, namespace=namespace, directory=tmp_path, release=release
    )
    env = {
        **FAST_RELIST,
        "KUBECONFIG": str(login.kubeconfig),
        "AGENTPOOL_LEADER_ELECT": "true",
        "AGENTPOOL_OPERATOR_NAMESPACE": namespace,
        "AGENTPOOL_POD_NAME": "quiet",
        "AGENTPOOL_TOKEN_REVIEWER_BINDING": f"{release}-agentpool-token-reviewer",
    }
    kube = Api(kube_api, namespace)
    kube.secret("llm", {"api-key": "k"})
    kube.create("agenttools", "ask-b", {"description": "d", "agent": {"poolName": "b"}})
    kube.create(
        "agentpools",
        "a",
        {"instructions": "a", "model": MODEL, "tools": {"refs": [{"name": "ask-b"}]}},
    )
    kube.create("agentpools", "b", {"instructions": "b", "model": MODEL})
    rbac = client.RbacAuthorizationV1Api(kube_api)
    log = tmp_path / "operator.log"
    path = audit_log_path()
    try:
        with operator_running(cluster, [namespace], log, env, standalone=False) as op:
            for name in ("a", "b"):
                wait_until(lambda name=name: _ready(kube, name), timeout=90, what=f"{name} Ready")
            wait_until(
                lambda: (
                    [
                        (x.namespace, x.name)
                        for x in rbac.read_cluster_role_binding(
                            env["AGENTPOOL_TOKEN_REVIEWER_BINDING"]
                        ).subjects
                        or []
                    ]
                    == [(namespace, "b")]
                ),
                timeout=30,
                what="b in the token-reviewer binding",
            )
            _settled(op)
            flush(path, kube_api)
            window = AuditWindow.starting_now(path, user=login.user)
            start = op.metric(RECONCILES, UNCHANGED)
            wait_until(
                lambda: op.metric(RECONCILES, UNCHANGED) >= start + 6,
                timeout=60,
                what="three resyncs",
            )
        with operator_running(cluster, [namespace], log, env, standalone=False) as op:
            wait_until(
                lambda: op.metric(RECONCILES, UNCHANGED) >= 4,
                timeout=60,
                what="the restarted operator to reconcile both pools twice",
            )
            # It reads the binding by name (at start and at each resync), writes nothing.
            wait_until(
                lambda: op.metric(WRITES, 'kind="ClusterRoleBinding",verb="get"') >= 2,
                timeout=30,
                what="the binding read at start and at a resync",
            )
            assert op.metric(WRITES, 'kind="ClusterRoleBinding",verb="apply"') == 0
        flush(path, kube_api)
        window.close()
        counts = window.writes()
        assert counts.total_excluding_leases == 0, counts.by_request
        assert counts.lease_writes > 0, "the operator's Lease renewals are missing: wrong user?"
        print(f"idle writes: 0 (plus {counts.lease_writes} Lease writes)")
    finally:
        remove_chart_rbac(cluster, namespace=namespace, release=release)
