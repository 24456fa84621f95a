"""HPA mode end to end: the pool's load served on custom.metrics.k8s.io through the real
aggregation layer, and the real HPA controller scaling the pool through /scale.

This module runs its own control plane (`<test cluster>-hpa`): kube-apiserver with the
front proxy configured (`--requestheader-*`, which kwokctl does not set) and
kube-controller-manager with a 2 s HPA sync. The metrics API reaches the aggregator
through a Service of type ExternalName to localhost (the facts in
docs/autoscaling.md, "HPA mode").

The load comes the whole way: replicas publish samples to a real Redis through the
runtime's own publisher (tests/support/replicas.py), the operator's autoscaler loop
reads them and posts each pool's load, its metrics API serves it, the HPA scales.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client, config

from agentpool_operator.autoscaler.metrics_api import apiservice
from hack.pod_runner import pod_runner_process
from tests.integration.crd_install import install_crds
from tests.support.cluster import TEST_CLUSTER, Cluster, cluster_dir, release_cluster
from tests.support.hpa_cluster import (
    OPERATOR_NAMESPACE,
    SERVICE,
    acquire_hpa_cluster,
    apiservice_available,
    metrics_api_env,
)
from tests.support.load_generator import LoadGenerator
from tests.support.operator_identity import operator_login, remove_chart_rbac
from tests.support.operator_process import (
    OperatorProcess,
    operator_running,
    start_operator,
    stop_operator,
)
from tests.support.pki import CertAuthority
from tests.support.redis_server import free_port
from tests.support.replicas import SimulatedReplicas
from tests.support.scripted_model import scripted_model_process
from tests.support.served_pool import TOKEN, create_served_pool, pool_replicas
from tests.support.wait import async_wait_until, wait_until

HPA_SYNC_SECONDS = int(os.environ.get("AGENTPOOL_TEST_HPA_SYNC_SECONDS", "2"))
"""kube-controller-manager's --horizontal-pod-autoscaler-sync-period (its default: 15);
another value gets a cluster of its own, for the figures in docs/autoscaling.md."""
NAME = f"{TEST_CLUSTER}-hpa" + ("" if HPA_SYNC_SECONDS == 2 else str(HPA_SYNC_SECONDS))
POD_IP = "10.0.0.7"
"""What the chart passes as AGENTPOOL_POD_IP (nothing listens there: the aggregator
reaches the process through the ExternalName Service)."""
GROUP, VERSION = "agentpool.dev", "v1alpha1"
METRIC_PATH = (
    "/apis/custom.metrics.k8s.io/v1beta2/namespaces/{ns}/agentpools.agentpool.dev/{name}"
    "/agentpool_load_percent"
)


@pytest.fixture(scope="module")
def hpa_cluster() -> Iterator[Cluster]:
    found = acquire_hpa_cluster(NAME, HPA_SYNC_SECONDS)
    install_crds(found)
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


_available = apiservice_available


def _create_pool(
    api: client.ApiClient, ns: str, name: str, concurrency: int, redis_url: str
) -> None:
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
        "memory": {"redis": {"url": redis_url}},
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


def _served_value(cluster: Cluster, ns: str, name: str) -> str | None:
    """The pool's metric as the HPA reads it: through the real aggregator."""
    raw = cluster.kubectl("get", "--raw", METRIC_PATH.format(ns=ns, name=name), check=False)
    if raw.returncode != 0:
        return None
    [item] = json.loads(raw.stdout)["items"]
    assert item["describedObject"] == {
        "kind": "AgentPool", "namespace": ns, "name": name, "apiVersion": f"{GROUP}/{VERSION}",
    }  # fmt: skip
    return str(item["value"])


async def _replicas_change(api: client.ApiClient, ns: str, before: int) -> tuple[int, float]:
    """(the new spec.replicas, seconds until the HPA wrote it)."""
    start = time.monotonic()

    async def changed() -> int | None:
        pool = await asyncio.to_thread(_pool, api, ns, "support")
        replicas = int(pool["spec"].get("replicas") or 0)
        return replicas if replicas != before else None

    replicas = await async_wait_until(changed, timeout=60, what="the HPA to scale the pool")
    return replicas, time.monotonic() - start


async def _running(replicas: SimulatedReplicas, count: int) -> None:
    async def probe() -> bool:
        return len(replicas.replicas) == count

    await async_wait_until(probe, timeout=60, interval=0.2, what=f"{count} running replicas")


async def test_the_real_hpa_scales_a_pool_up_and_down_on_its_served_load(
    hpa_cluster: Cluster,
    api: client.ApiClient,
    ns: str,
    no_apiservice: None,
    redis_url: str,
    tmp_path: Path,
) -> None:
    capacity = 2
    _create_pool(api, ns, "support", capacity, redis_url)
    port = free_port()
    with operator_running(hpa_cluster, [ns], tmp_path / "operator.log", _operator_env(port)):
        await asyncio.to_thread(
            wait_until, lambda: _available(hpa_cluster), timeout=60, what="APIService Available"
        )
        # Replicas publishing load to the real Redis exactly as the runtime does; the
        # operator's loop reads them every second and posts the pool's load.
        async with SimulatedReplicas(api, redis_url, ns, "support", capacity) as sim:
            await _running(sim, 1)

            async def served(value: str) -> bool:
                return await asyncio.to_thread(_served_value, hpa_cluster, ns, "support") == value

            await async_wait_until(lambda: served("0"), timeout=30, what="load 0 served")

            # 2 turns running and 2 queued on 1 replica of 2 slots: 200 % against a target
            # of 50 %: the HPA asks for 4 replicas.
            sim.replicas[next(iter(sim.replicas))].hold_turns(2)
            sim.queued = 2
            up, up_seconds = await _replicas_change(api, ns, 1)
            assert up == 4
            await _running(sim, 4)
            hpa = json.loads(
                hpa_cluster.kubectl("-n", ns, "get", "hpa", "support", "-o", "json").stdout
            )
            conditions = {c["type"]: c["status"] for c in hpa["status"]["conditions"]}
            assert conditions["ScalingActive"] == "True"

            # Load stops: 0 %, back to minReplicas.
            for replica in sim.replicas.values():
                replica.release_turns()
            sim.queued = 0
            # (The replicas publish one after another: a step through 2 may come first.)
            first, down_seconds = await _replicas_change(api, ns, 4)
            assert first < 4

            async def at_minimum() -> bool:
                pool = await asyncio.to_thread(_pool, api, ns, "support")
                return pool["spec"].get("replicas") == 1

            await async_wait_until(at_minimum, timeout=60, what="back to minReplicas 1")
    print(  # the figures docs/autoscaling.md reports
        f"\nHPA sync {HPA_SYNC_SECONDS}s, samples every 1 s, loop every 1 s: load step to "
        f"replicas written by the HPA: up {up_seconds:.1f}s, down {down_seconds:.1f}s"
    )


_operator_env = metrics_api_env


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
    owner = f"{release}-agentpool-metrics-api"  # the chart's ClusterRole
    env = {
        **_operator_env(port),
        "KUBECONFIG": str(login.kubeconfig),
        "AGENTPOOL_POD_IP": POD_IP,
        "AGENTPOOL_METRICS_API_OWNER": owner,
    }
    try:
        with operator_running(hpa_cluster, [ns], tmp_path / "op.log", env) as op:
            _serves_discovery_and_refuses_strangers(hpa_cluster, ns, port, tmp_path, op)
        found = json.loads(
            hpa_cluster.kubectl("get", "apiservice", apiservice.NAME, "-o", "json").stdout
        )
        [reference] = found["metadata"]["ownerReferences"]
        assert (reference["kind"], reference["name"]) == ("ClusterRole", owner)
    finally:
        remove_chart_rbac(hpa_cluster, namespace=OPERATOR_NAMESPACE, release=release, values=values)
    # Uninstalling (the ClusterRole goes) removes the APIService the operator made.
    wait_until(
        lambda: (
            hpa_cluster.kubectl("get", "apiservice", apiservice.NAME, check=False).returncode != 0
        ),
        timeout=60,
        what="the garbage collector to delete the APIService",
    )


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
    # With the front proxy's own certificate, the user it names is asked about: the API
    # server's SubjectAccessReview allows the admin, and refuses a user without RBAC.
    proxy = ssl.create_default_context()
    proxy.check_hostname = False
    proxy.verify_mode = ssl.CERT_NONE
    pki = cluster_dir(NAME) / "pki"
    proxy.load_cert_chain(pki / "admin.crt", pki / "admin.key")
    admin = httpx.get(url, headers=headers, verify=proxy, timeout=5)
    assert admin.status_code == 404  # allowed; there is no pool "nope"
    nobody = httpx.get(
        url, headers={"X-Remote-User": "nobody", "X-Remote-Group": "system:authenticated"},
        verify=proxy, timeout=5,
    )  # fmt: skip
    assert nobody.status_code == 403, nobody.text
    assert nobody.json()["reason"] == "Forbidden"
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


async def test_the_real_hpa_scales_a_served_pool_on_the_turns_of_real_agent_processes(
    hpa_cluster: Cluster,
    api: client.ApiClient,
    ns: str,
    no_apiservice: None,
    redis_url: str,
    tmp_path: Path,
) -> None:
    """The same kind of pool as tests/integration/test_autoscaling_e2e.py, in mode HPA:
    real agent processes (the pod runner), callers through the pool's front, the load
    they publish served to the real HPA controller, which scales the pool up (the new
    pods take turns) and back to minReplicas when the load stops."""
    scaling = {
        "mode": "HPA",
        "minReplicas": 1,
        "maxReplicas": 4,
        "hpa": {
            "metric": "Load",
            "targetPercent": 50,
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}},
        },
    }
    port = free_port()
    with (
        scripted_model_process(tmp_path / "model.log", think_seconds=1.0) as model,
        operator_running(hpa_cluster, [ns], tmp_path / "operator.log", _operator_env(port)),
        pod_runner_process(hpa_cluster.kubeconfig, [ns], tmp_path / "runner") as runner,
    ):
        create_served_pool(api, ns, "support", model, redis_url, concurrency=4, scaling=scaling)
        await asyncio.to_thread(
            wait_until, lambda: _available(hpa_cluster), timeout=60, what="APIService Available"
        )
        front = await asyncio.to_thread(runner.front_url, ns, "support")
        first = await asyncio.to_thread(runner.wait_serving, ns, "support", 1, timeout=90)
        async with LoadGenerator(front, TOKEN) as load:
            # 8 callers on 4 slots: 100 % against 50 %: the HPA doubles, then again.
            load.set_users(8)
            up, up_seconds = await _replicas_change(api, ns, 1)
            assert up > 1

            async def at(count: int) -> bool:
                return await asyncio.to_thread(pool_replicas, api, ns, "support") == count

            await async_wait_until(lambda: at(4), timeout=90, what="the HPA to reach 4")
            pods = await asyncio.to_thread(runner.wait_serving, ns, "support", 4, timeout=90)
            new = {p.pod for p in pods} - {p.pod for p in first}

            async def new_pods_took_turns() -> bool:
                status = await asyncio.to_thread(runner.pool, ns, "support")
                return all(p.served >= 1 for p in status.pods if p.pod in new)

            await async_wait_until(new_pods_took_turns, timeout=30, what="turns on new pods")
            await load.drain()
            await async_wait_until(lambda: at(1), timeout=90, what="back to minReplicas 1")
            await asyncio.to_thread(runner.wait_serving, ns, "support", 1, timeout=90)
        assert load.stats.failed == [], load.stats.failed
    print(
        f"\nHPA sync {HPA_SYNC_SECONDS}s, real agents: load step to the HPA's first write "
        f"{up_seconds:.1f}s; turns {load.stats.ok} answered, {load.stats.refused} 503s "
        "retried, 0 cut"
    )


def test_only_the_leader_serves_and_a_new_leader_takes_the_apiservice_over(
    hpa_cluster: Cluster, ns: str, no_apiservice: None, tmp_path: Path
) -> None:
    lease = 4.0

    def elected(identity: str, port: int) -> dict[str, str]:
        return {
            **_operator_env(port),
            "AGENTPOOL_LEADER_ELECT": "true",
            "AGENTPOOL_POD_NAME": identity,
            "AGENTPOOL_LEASE_DURATION_SECONDS": str(lease),
            "AGENTPOOL_LEASE_RENEW_DEADLINE_SECONDS": "3",
            "AGENTPOOL_LEASE_RETRY_SECONDS": "0.5",
        }

    def apiservice_port() -> int:
        out = hpa_cluster.kubectl("get", "apiservice", apiservice.NAME, "-o", "json").stdout
        return int(json.loads(out)["spec"]["service"]["port"])

    def listening(port: int) -> bool:
        try:
            httpx.get(f"https://127.0.0.1:{port}/healthz", verify=False, timeout=2)
        except httpx.ConnectError:
            return False
        return True

    port_a, port_b = free_port(), free_port()
    first = start_operator(
        hpa_cluster, [ns], tmp_path / "a.log", elected("a", port_a), standalone=False
    )
    second = None
    try:
        wait_until(first.leading, timeout=30, what="the first replica to lead")
        second = start_operator(
            hpa_cluster, [ns], tmp_path / "b.log", elected("b", port_b), standalone=False
        )
        wait_until(lambda: _available(hpa_cluster), timeout=60, what="APIService Available")
        assert apiservice_port() == port_a
        assert listening(port_a)
        assert not second.leading()
        assert not listening(port_b), "a standby serves custom metrics"
        assert second.metric("agentpool_operator_metrics_api_serving") == 0

        stop_operator(first, kill=True)
        killed_at = time.monotonic()
        wait_until(second.leading, timeout=3 * lease, what="the standby to lead")

        def served_by_b() -> bool:
            raw = hpa_cluster.kubectl(
                "get", "--raw", "/apis/custom.metrics.k8s.io/v1beta2", check=False
            )
            return apiservice_port() == port_b and raw.returncode == 0

        wait_until(served_by_b, timeout=60, what="the new leader to serve through the aggregator")
        gap = time.monotonic() - killed_at
        assert second.metric("agentpool_operator_metrics_api_serving") == 1
        print(f"\nleader killed to discovery served by the new leader: {gap:.1f}s "
              f"(lease {lease:g}s)")  # fmt: skip
    finally:
        stop_operator(first)
        if second is not None:
            stop_operator(second)
