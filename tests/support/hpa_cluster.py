"""A local control plane where the real HPA controller can read the operator's
custom.metrics.k8s.io: kube-apiserver with the aggregator's front proxy configured
(`--requestheader-*`, which kwokctl does not set), kube-controller-manager with the HPA
sync period asked for, and the metrics API's Service of type ExternalName to localhost
(docs/autoscaling.md, "HPA mode"). Used by tests/integration/test_metrics_api_hpa.py and
benchmarks/bench_autoscaling.py.
"""

from __future__ import annotations

import json

from agentpool_operator.autoscaler.metrics_api import apiservice
from tests.support.cluster import Cluster, acquire_local_cluster, cluster_dir, release_cluster

OPERATOR_NAMESPACE = "agentpool-system"
SERVICE = "agentpool-operator-metrics-api"


def front_proxy_args(name: str, hpa_sync_seconds: int) -> list[str]:
    """kwokctl --extra-args for cluster `name`."""
    pki = cluster_dir(name) / "pki"
    # kwokctl signs its proxy client certificate (CN kwok-admin) with the cluster CA.
    return [
        f"kube-apiserver=requestheader-client-ca-file={pki / 'ca.crt'}",
        "kube-apiserver=requestheader-allowed-names=kwok-admin",
        "kube-apiserver=requestheader-username-headers=X-Remote-User",
        "kube-apiserver=requestheader-group-headers=X-Remote-Group",
        "kube-apiserver=requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"kube-controller-manager=horizontal-pod-autoscaler-sync-period={hpa_sync_seconds}s",
    ]


def has_front_proxy(cluster: Cluster) -> bool:
    out = cluster.kubectl(
        "-n", "kube-system", "get", "configmap", "extension-apiserver-authentication",
        "-o", "json",
    )  # fmt: skip
    return "requestheader-client-ca-file" in json.loads(out.stdout).get("data", {})


def acquire_hpa_cluster(name: str, hpa_sync_seconds: int) -> Cluster:
    """The cluster, started with the front proxy unless it already runs with it, and the
    metrics API's ExternalName Service in place (CRDs not installed here)."""
    found = acquire_local_cluster(name, front_proxy_args(name, hpa_sync_seconds))
    if not has_front_proxy(found):  # an older cluster of that name, started without it
        release_cluster(found)
        found = acquire_local_cluster(name, front_proxy_args(name, hpa_sync_seconds))
    found.kubectl("create", "namespace", OPERATOR_NAMESPACE, check=False)
    # The aggregator dials <service>.<namespace>.svc; ExternalName sends that to us.
    found.kubectl(
        "apply", "-f", "-",
        input=json.dumps({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": SERVICE, "namespace": OPERATOR_NAMESPACE},
            "spec": {"type": "ExternalName", "externalName": "localhost"},
        }),
    )  # fmt: skip
    return found


def apiservice_available(cluster: Cluster) -> bool:
    out = cluster.kubectl("get", "apiservice", apiservice.NAME, "-o", "json", check=False)
    if out.returncode != 0:
        return False
    conditions = json.loads(out.stdout).get("status", {}).get("conditions", [])
    return any(c["type"] == "Available" and c["status"] == "True" for c in conditions)


def metrics_api_env(port: int) -> dict[str, str]:
    """The operator's environment to serve the metrics API on `port` behind SERVICE."""
    return {
        "AGENTPOOL_METRICS_API_PORT": str(port),
        "AGENTPOOL_METRICS_API_SERVICE": SERVICE,
        "AGENTPOOL_METRICS_API_SERVICE_PORT": str(port),
    }
