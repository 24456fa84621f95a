"""Killed at random points during a burst of creates, updates and deletes, then
restarted, the operator converges to exactly the desired state: every pool's children at
its latest spec, nothing left of deleted pools, no duplicates."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

from kubernetes import client

from tests.integration.crd_install import install_crds
from tests.integration.test_operator_reconcile import GROUP, MODEL, VERSION, Api
from tests.support.cluster import Cluster
from tests.support.operator_process import start_operator, stop_operator
from tests.support.wait import wait_until

OPERATIONS = 50
KILLS = 4


def test_sigkill_during_a_burst_converges_to_exactly_the_desired_state(
    cluster: Cluster, namespace: str, kube_api: client.ApiClient, tmp_path: Path
) -> None:
    seed = int(os.environ.get("AGENTPOOL_CHAOS_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"chaos seed: {seed} (AGENTPOOL_CHAOS_SEED reproduces it)")
    install_crds(cluster)
    kube = Api(kube_api, namespace)
    kube.secret("llm", {"api-key": "k"})
    log = tmp_path / "operator.log"
    op = start_operator(cluster, [namespace], log)
    kill_at = set(rng.sample(range(OPERATIONS), KILLS))
    alive: dict[str, str] = {}  # pool -> its latest instructions
    deleted: set[str] = set()
    counter = 0
    for step in range(OPERATIONS):
        choice = rng.random()
        if not alive or choice < 0.5:
            counter += 1
            name = f"p{counter}"
            alive[name] = f"v0 of {name}"
            kube.create("agentpools", name, {"instructions": alive[name], "model": MODEL})
        elif choice < 0.8:
            name = rng.choice(sorted(alive))
            alive[name] = f"v{step} of {name}"
            kube.patch("agentpools", name, {"spec": {"instructions": alive[name]}})
        else:
            name = rng.choice(sorted(alive))
            del alive[name]
            deleted.add(name)
            kube.custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, "agentpools", name
            )
        if step in kill_at:
            stop_operator(op, kill=True)
            op = start_operator(cluster, [namespace], log)
    try:

        def converged() -> bool:
            for name, instructions in alive.items():
                pool = kube.pool(name)
                status = pool.get("status") or {}
                if status.get("observedGeneration") != pool["metadata"]["generation"]:
                    return False
                if kube.config_hash(name) != status.get("configHash"):
                    return False
                data = kube.core.read_namespaced_config_map(f"{name}-config", namespace).data
                if json.loads(data["config.json"])["agent"]["instructions"] != instructions:
                    return False
            return True

        wait_until(converged, timeout=180, interval=1, what="every pool at its latest spec")

        def nothing_left() -> bool:
            out = cluster.kubectl(
                "-n",
                namespace,
                "get",
                "deployments,services,configmaps,serviceaccounts,networkpolicies",
                "-l",
                "app.kubernetes.io/managed-by=agentpool-operator",
                "-o",
                "json",
            ).stdout
            owners = [
                i["metadata"]["labels"]["agentpool.dev/pool"] for i in json.loads(out)["items"]
            ]
            return set(owners) == set(alive) and len(owners) == 5 * len(alive)

        wait_until(nothing_left, timeout=120, interval=1, what="no orphans and no duplicates")
        deployments = kube.apps.list_namespaced_deployment(namespace).items
        assert sorted(d.metadata.name for d in deployments) == sorted(alive)
    finally:
        stop_operator(op)
