"""Quiet: with nothing changing, the operator makes no write request at all, across
re-lists of its watches and a restart. (The operator's own request counter is checked
here; the API server's audit log check lives with the audit plumbing.)"""

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


def _settled(op: OperatorProcess, quiet_for: float = 3.0) -> float:
    """Wait until the operator's write count has not moved for `quiet_for` seconds."""
    seen = {"value": op.metric(WRITES), "since": time.monotonic()}

    def still() -> bool:
        now = op.metric(WRITES)
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
        assert op.metric(WRITES) == writes, op.tail()
    with operator_running(cluster, [namespace], log, FAST_RELIST) as op:
        wait_until(
            lambda: op.metric(RECONCILES, UNCHANGED) >= 2 * len(pools),
            timeout=60,
            what="the restarted operator to reconcile every pool twice",
        )
        assert op.metric(WRITES) == 0, op.tail()
        assert op.metric(RECONCILES, 'result="changed"') == 0
