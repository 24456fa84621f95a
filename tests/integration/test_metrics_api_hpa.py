"""HPA mode end to end: the pool's load served on custom.metrics.k8s.io through the real
aggregation layer, and the real HPA controller scaling the pool through /scale.

This module runs its own control plane (`<test cluster>-hpa`): kube-apiserver with the
front proxy configured (`--requestheader-*`, which kwokctl does not set) and
kube-controller-manager with a 2 s HPA sync. The metrics API reaches the aggregator
through a Service of type ExternalName to localhost (the facts in
docs/autoscaling.md, "HPA mode").

Until the autoscaler loop fills the LoadBoard from Redis, the HPA test serves the metrics
API in this process over a board that a small stand-in loop fills (demand over ready
capacity, as the loop computes it); the operator process serves it in the wiring tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import ssl
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from aiohttp import web
from kubernetes import client, config

from agentpool_operator.autoscaler.board import LoadBoard, PoolLoad
from agentpool_operator.autoscaler.metrics_api import apiservice
from agentpool_operator.autoscaler.metrics_api.apiservice import ServiceRef
from agentpool_operator.autoscaler.metrics_api.server import serve_metrics_api
from tests.integration.crd_install import install_crds
from tests.support.cluster import (
    TEST_CLUSTER,
    Cluster,
    acquire_local_cluster,
    cluster_dir,
    release_cluster,
)
from tests.support.operator_identity import operator_login, remove_chart_rbac
from tests.support.operator_process import OperatorProcess, operator_running
from tests.support.pki import CertAuthority
from tests.support.redis_server import free_port
from tests.support.wait import wait_until

T = TypeVar("T")
NAME = f"{TEST_CLUSTER}-hpa"
HPA_SYNC_SECONDS = 2
OPERATOR_NAMESPACE = "agentpool-system"
SERVICE = "agentpool-operator-metrics-api"
POD_IP = "10.0.0.7"
"""What the chart passes as AGENTPOOL_POD_IP (nothing listens there: the aggregator
reaches the process through the ExternalName Service)."""
GROUP, VERSION = "agentpool.dev", "v1alpha1"
METRIC_PATH = (
    "/apis/custom.metrics.k8s.io/v1beta2/namespaces/{ns}/agentpools.agentpool.dev/{name}"
    "/agentpool_load_percent"
)


def _extra_args() -> list[str]:
    pki = cluster_dir(NAME) / "pki"
    # kwokctl signs its proxy client certificate (CN kwok-admin) with the cluster CA.
    return [
        f"kube-apiserver=requestheader-client-ca-file={pki / 'ca.crt'}",
        "kube-apiserver=requestheader-allowed-names=kwok-admin",
        "kube-apiserver=requestheader-username-headers=X-Remote-User",
        "kube-apiserver=requestheader-group-headers=X-Remote-Group",
        "kube-apiserver=requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"kube-controller-manager=horizontal-pod-autoscaler-sync-period={HPA_SYNC_SECONDS}s",
    ]


def _has_front_proxy(cluster: Cluster) -> bool:
    out = cluster.kubectl(
        "-n", "kube-system", "get", "configmap", "extension-apiserver-authentication",
        "-o", "json",
    )  # fmt: skip
    return "requestheader-client-ca-file" in json.loads(out.stdout).get("data", {})


@pytest.fixture(scope="module")
def hpa_cluster() -> Iterator[Cluster]:
    found = acquire_local_cluster(NAME, _extra_args())
    if not _has_front_proxy(found):  # an older cluster of that name, started without it
        release_cluster(found)
        found = acquire_local_cluster(NAME, _extra_args())
    install_crds(found)
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
    yield found
    release_cluster(found)


@pytest.fixture(scope="module")
def api(hpa_cluster: Cluster) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(hpa_cluster.kubeconfig))


@pytest.fixture
def ns(hpa_cluster: Cluster, api: client.ApiClient) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture
def no_apiservice(hpa_cluster: Cluster) -> Iterator[None]:
    """Each test starts and ends without an APIService for the group."""
    hpa_cluster.kubectl("delete", "apiservice", apiservice.NAME, "--ignore-not-found")
    yield
    hpa_cluster.kubectl("delete", "apiservice", apiservice.NAME, "--ignore-not-found")


class LoopThread:
    """An event loop on its own thread, for the server and the stand-in loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


def _available(cluster: Cluster) -> bool:
    out = cluster.kubectl("get", "apiservice", apiservice.NAME, "-o", "json", check=False)
    if out.returncode != 0:
        return False
    conditions = json.loads(out.stdout).get("status", {}).get("conditions", [])
    return any(c["type"] == "Available" and c["status"] == "True" for c in conditions)


def _create_pool(api: client.ApiClient, ns: str, name: str, concurrency: int) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_secret(
        ns, client.V1Secret(metadata=client.V1ObjectMeta(name="llm"), string_data={"k": "v"})
    )
    spec = {
        "instructions": "Help.",
        "model": {
            "baseUrl": "http://llm.example.com/v1",
            "name": "m",
            "apiKeySecretRef": {"name": "llm", "key": "k"},
        },
        "concurrencyPerReplica": concurrency,
        "scaling": {
            "mode": "HPA",
            "minReplicas": 1,
            "maxReplicas": 6,
            "hpa": {
                "metric": "Load",
                "targetPercent": 50,
                # Down at once, so that the test sees both directions in seconds.
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}},
            },
        },
    }
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AgentPool",
        "metadata": {"name": name},
        "spec": spec,
    }
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, ns, "agentpools", body
    )


def _pool(api: client.ApiClient, ns: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, ns, "agentpools", name
    )
    return found


class StandInLoop:
    """What the autoscaler loop puts on the board each tick: demand over the ready
    capacity of the pool (status.readyReplicas x concurrencyPerReplica)."""

    def __init__(
        self, api: client.ApiClient, board: LoadBoard, ns: str, name: str, concurrency: int
    ) -> None:
        self.api, self.board, self.ns, self.name = api, board, ns, name
        self.concurrency = concurrency
        self.demand = 0
        self.task: asyncio.Task[None] | None = None

    async def tick(self) -> None:
        pool = await asyncio.to_thread(_pool, self.api, self.ns, self.name)
        ready = int((pool.get("status") or {}).get("readyReplicas") or 0)
        capacity = ready * self.concurrency
        percent = math.ceil(self.demand * 100 / capacity) if capacity else self.demand * 100
        self.board.put(f"{self.ns}/{self.name}", PoolLoad(self.demand, percent, ready, time.time()))

    async def run(self) -> None:
        while True:
            # The API server was slow once: the next tick reads again.
            with contextlib.suppress(Exception):
                await self.tick()
            await asyncio.sleep(0.5)  # the loop's own period (it ticks once a second)

    async def start(self) -> None:
        self.task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()


def _replicas_change(
    api: client.ApiClient, ns: str, name: str, before: int, timeout: float
) -> tuple[int, float]:
    """(the new spec.replicas, seconds until the HPA wrote it)."""
    start = time.monotonic()

    def changed() -> int | None:
        replicas = int(_pool(api, ns, name)["spec"].get("replicas") or 0)
        return replicas if replicas != before else None

    replicas = wait_until(changed, timeout=timeout, interval=0.05, what="the HPA to scale")
    return replicas, time.monotonic() - start


def test_the_real_hpa_scales_a_pool_up_and_down_on_its_served_load(
    hpa_cluster: Cluster, api: client.ApiClient, ns: str, no_apiservice: None, tmp_path: Path
) -> None:
    concurrency = 4
    _create_pool(api, ns, "support", concurrency)
    thread = LoopThread()
    board = LoadBoard()
    port = free_port()
    loop = StandInLoop(api, board, ns, "support", concurrency)
    with operator_running(hpa_cluster, [ns], tmp_path / "operator.log"):
        runner: web.AppRunner | None = thread.run(
            serve_metrics_api(
                api, board, port=port, service=ServiceRef(OPERATOR_NAMESPACE, SERVICE, port)
            )
        )
        assert runner is not None
        try:
            thread.run(loop.start())
            wait_until(lambda: _available(hpa_cluster), timeout=60, what="APIService Available")
            wait_until(
                lambda: (_pool(api, ns, "support").get("status") or {}).get("readyReplicas") == 1,
                timeout=60,
                what="one ready replica",
            )
            # Through the real aggregator, as the HPA reads it.
            raw = hpa_cluster.kubectl("get", "--raw", METRIC_PATH.format(ns=ns, name="support"))
            item = json.loads(raw.stdout)["items"][0]
            assert item["describedObject"]["name"] == "support"
            assert item["value"] == "0"

            # 6 turns on 1 replica of 4 slots: 150 % against a target of 50 %: 3 replicas.
            loop.demand = 6
            up, up_seconds = _replicas_change(api, ns, "support", 1, timeout=60)
            assert up == 3
            wait_until(
                lambda: (_pool(api, ns, "support").get("status") or {}).get("readyReplicas") == 3,
                timeout=60,
                what="three ready replicas",
            )
            hpa = json.loads(
                hpa_cluster.kubectl("-n", ns, "get", "hpa", "support", "-o", "json").stdout
            )
            conditions = {c["type"]: c["status"] for c in hpa["status"]["conditions"]}
            assert conditions["ScalingActive"] == "True"

            loop.demand = 0
            down, down_seconds = _replicas_change(api, ns, "support", 3, timeout=60)
            assert down == 1
            print(  # the figures docs/autoscaling.md reports
                f"\nHPA sync {HPA_SYNC_SECONDS}s: load step to replicas written: "
                f"up {up_seconds:.1f}s, down {down_seconds:.1f}s"
            )
        finally:
            thread.run(loop.stop())
            thread.run(runner.cleanup())
            thread.stop()


def _operator_env(port: int) -> dict[str, str]:
    return {
        "AGENTPOOL_METRICS_API_PORT": str(port),
        "AGENTPOOL_METRICS_API_SERVICE": SERVICE,
        "AGENTPOOL_METRICS_API_SERVICE_PORT": str(port),
    }


def test_the_operator_on_the_chart_s_rbac_serves_discovery_and_refuses_strangers(
    hpa_cluster: Cluster, api: client.ApiClient, ns: str, no_apiservice: None, tmp_path: Path
) -> None:
    port = free_port()
    # As the chart's ServiceAccount with metricsApi on: a rule missing for the APIService,
    # the front-proxy ConfigMap, the access reviews or the EndpointSlice fails this test.
    release, values = "metrics", ["metricsApi.enabled=true"]
    login = operator_login(
        hpa_cluster, api, namespace=OPERATOR_NAMESPACE, directory=tmp_path, release=release,
        watch_namespaces=[ns], values=values,
    )  # fmt: skip
    env = {**_operator_env(port), "KUBECONFIG": str(login.kubeconfig), "AGENTPOOL_POD_IP": POD_IP}
    try:
        with operator_running(hpa_cluster, [ns], tmp_path / "op.log", env) as op:
            _serves_discovery_and_refuses_strangers(hpa_cluster, ns, port, tmp_path, op)
    finally:
        remove_chart_rbac(hpa_cluster, namespace=OPERATOR_NAMESPACE, release=release, values=values)


def _serves_discovery_and_refuses_strangers(
    hpa_cluster: Cluster, ns: str, port: int, tmp_path: Path, op: OperatorProcess
) -> None:
    wait_until(lambda: _available(hpa_cluster), timeout=60, what="APIService Available")
    assert op.metric("agentpool_operator_metrics_api_serving") == 1
    found = json.loads(
        hpa_cluster.kubectl("get", "apiservice", apiservice.NAME, "-o", "json").stdout
    )
    assert found["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "agentpool-operator"
    discovery = json.loads(
        hpa_cluster.kubectl("get", "--raw", "/apis/custom.metrics.k8s.io/v1beta2").stdout
    )
    assert [r["name"] for r in discovery["resources"]] == [
        "agentpools.agentpool.dev/agentpool_load_percent"
    ]
    missing = hpa_cluster.kubectl(
        "get", "--raw", METRIC_PATH.format(ns=ns, name="nope"), check=False
    )
    assert missing.returncode != 0
    assert "NotFound" in missing.stderr or "not found" in missing.stderr.lower()

    # Straight to the server, as anyone on the network could: no front-proxy certificate.
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    url = f"https://127.0.0.1:{port}{METRIC_PATH.format(ns=ns, name='nope')}"
    headers = {"X-Remote-User": "system:admin", "X-Remote-Group": "system:masters"}
    anonymous = httpx.get(url, headers=headers, verify=insecure, timeout=5)
    assert anonymous.status_code == 401
    assert anonymous.json()["reason"] == "Unauthorized"
    # A client certificate from another CA does not even complete the handshake.
    stranger = CertAuthority.create(tmp_path / "ca").client("kwok-admin", "system:masters")
    insecure.load_cert_chain(stranger.cert_file, stranger.key_file)
    with pytest.raises(httpx.HTTPError):
        httpx.get(url, headers=headers, verify=insecure, timeout=5)
    # The leader routes the (selector-less) Service to itself.
    slice_ = json.loads(
        hpa_cluster.kubectl(
            "-n", OPERATOR_NAMESPACE, "get", "endpointslice", f"{SERVICE}-leader",
            "-o", "json",
        ).stdout
    )  # fmt: skip
    assert slice_["endpoints"][0]["addresses"] == [POD_IP]
    assert slice_["ports"] == [{"name": "https", "port": port, "protocol": "TCP"}]


def test_an_apiservice_another_adapter_owns_is_not_taken_over(
    hpa_cluster: Cluster, ns: str, no_apiservice: None, tmp_path: Path
) -> None:
    foreign = {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {
            "name": apiservice.NAME,
            "labels": {"app.kubernetes.io/managed-by": "Helm", "app": "prometheus-adapter"},
        },
        "spec": {
            "group": "custom.metrics.k8s.io",
            "version": "v1beta2",
            "service": {"namespace": "monitoring", "name": "prometheus-adapter", "port": 443},
            "insecureSkipTLSVerify": True,
            "groupPriorityMinimum": 100,
            "versionPriority": 100,
        },
    }
    hpa_cluster.kubectl("create", "-f", "-", input=json.dumps(foreign))
    port = free_port()
    log = tmp_path / "op.log"
    with operator_running(hpa_cluster, [ns], log, _operator_env(port)) as op:
        wait_until(
            lambda: "not serving custom metrics" in log.read_text(),
            timeout=60,
            what="the operator's refusal in its log",
        )
        assert "monitoring/prometheus-adapter" in log.read_text()
        assert op.metric("agentpool_operator_metrics_api_serving") == 0
        assert op.alive()
        after = json.loads(
            hpa_cluster.kubectl("get", "apiservice", apiservice.NAME, "-o", "json").stdout
        )
        assert after["spec"]["service"]["name"] == "prometheus-adapter"
        assert after["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        with pytest.raises(httpx.HTTPError):  # nothing listens
            httpx.get(f"https://127.0.0.1:{port}/healthz", verify=False, timeout=2)
