"""The pod runner against the real control plane and a real Redis: every Running agent
pod gets a process that answers through its pool's front port, a scale-up adds one that
takes requests, a scale-down stops processes without cutting the turns they hold, and
each process publishes its load under its own pod's name.

The scenario runs with warm starts (`--fork-server`: on this shared 2-core machine a cold
start takes 10-20 s); one cold-started process is checked on its own."""

from __future__ import annotations

import base64
import json
import os
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml
from kubernetes import client

from agent_runtime.config.identity import PoolIdentity
from agent_runtime.config.load import load_key
from hack.pod_runner import RunnerProcess, pod_runner_process
from tests.integration.crd_install import install_crds
from tests.support.cluster import Cluster
from tests.support.operator_process import operator_running
from tests.support.scripted_model import scripted_model_process
from tests.support.wait import wait_until

GROUP, VERSION = "agentpool.dev", "v1alpha1"
POOL = "support"
TOKEN = "runner-test-token-0123456789"


@pytest.fixture
def model(tmp_path: Path) -> Iterator[str]:
    with scripted_model_process(tmp_path / "model.log") as url:
        yield url


def _secret(core: client.CoreV1Api, namespace: str, name: str, data: dict[str, str]) -> None:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    body = client.V1Secret(metadata=client.V1ObjectMeta(name=name), data=encoded)
    core.create_namespaced_secret(namespace, body)


def _pool_spec(model: str, redis_url: str) -> dict[str, Any]:
    return {
        "instructions": "Answer briefly.",
        "model": {"baseUrl": model, "name": "m", "apiKeySecretRef": {"name": "llm", "key": "k"}},
        "memory": {"redis": {"url": redis_url}},
        "access": {"tokensSecretRef": {"name": "callers", "key": "tokens.yaml"}},
        "concurrencyPerReplica": 4,
        "scaling": {"minReplicas": 1, "maxReplicas": 5},
        "replicas": 2,
    }


def _create_pool(kube_api: client.ApiClient, namespace: str, spec: dict[str, Any]) -> None:
    # Paused: these tests scale by hand; the operator's autoscaler must not move replicas.
    client.CustomObjectsApi(kube_api).create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "agentpools",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "AgentPool",
            "metadata": {"name": POOL, "annotations": {"agentpool.dev/paused": "true"}},
            "spec": spec,
        },
    )


def _secrets(kube_api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube_api)
    _secret(core, namespace, "llm", {"k": "sk-test"})
    tokens = {"tokens": [{"name": "test", "token": TOKEN, "tenant": "alice"}]}
    _secret(core, namespace, "callers", {"tokens.yaml": yaml.safe_dump(tokens)})


def _chat(front: str, message: str) -> httpx.Response:
    return httpx.post(
        f"{front}/v1/chat",
        json={"message": message},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=60,
    )


def _delete_pool_and_wait(
    kube_api: client.ApiClient, runner: RunnerProcess, namespace: str, *, timeout: float
) -> None:
    """Delete the pool; wait until the runner has stopped every process of its pods."""
    client.CustomObjectsApi(kube_api).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, "agentpools", POOL
    )
    wait_until(
        lambda: runner.pool(namespace, POOL).pods == [],
        timeout=timeout,
        what="the processes stopped with their pods",
    )


def _served(runner: RunnerProcess, namespace: str) -> dict[str, int]:
    return {p.pod: p.served for p in runner.pool(namespace, POOL).pods}


def test_running_pods_get_processes_that_scale_with_the_pool_and_drain_on_removal(
    cluster: Cluster,
    kube_api: client.ApiClient,
    namespace: str,
    redis_url: str,
    model: str,
    tmp_path: Path,
) -> None:
    install_crds(cluster)
    _secrets(kube_api, namespace)
    with (
        operator_running(cluster, [namespace], tmp_path / "operator.log"),
        pod_runner_process(
            cluster.kubeconfig, [namespace], tmp_path / "runner", extra_args=["--fork-server"]
        ) as runner,
    ):
        _create_pool(kube_api, namespace, _pool_spec(model, redis_url))
        front = runner.front_url(namespace, POOL)

        # Two Running pods, two processes, both answering through the front.
        first = {p.pod for p in runner.wait_serving(namespace, POOL, 2, timeout=90)}
        for i in range(6):
            answer = _chat(front, f"hello {i}")
            assert answer.status_code == 200, answer.text
            assert answer.json()["answer"] == f"echo: hello {i}"
        assert all(n >= 1 for n in _served(runner, namespace).values())

        # Each process publishes its own load sample, under its own pod's name.
        key = load_key("agentpool", PoolIdentity(namespace=namespace, name=POOL))
        with redis.Redis.from_url(redis_url, decode_responses=True) as conn:
            wait_until(
                lambda: set(conn.hkeys(key)) == first,
                timeout=10,
                what=f"load samples of {sorted(first)}",
            )

            # Scale up: a third process starts and takes requests.
            cluster.kubectl("-n", namespace, "scale", "agentpool", POOL, "--replicas=3")
            serving = runner.wait_serving(namespace, POOL, 3, timeout=90)
            (new,) = {p.pod for p in serving} - first
            before = _served(runner, namespace)[new]
            for i in range(6):
                assert _chat(front, f"more {i}").status_code == 200
            assert _served(runner, namespace)[new] > before

            # Scale down while every process holds a slow turn: none is cut.
            with ThreadPoolExecutor(3) as pool:
                turns = [pool.submit(_chat, front, "slow 3") for _ in range(3)]
                wait_until(
                    lambda: [p.inflight for p in runner.pool(namespace, POOL).pods] == [1, 1, 1],
                    timeout=10,
                    what="one turn in flight on each process",
                )
                cluster.kubectl("-n", namespace, "scale", "agentpool", POOL, "--replicas=1")
                wait_until(
                    lambda: sum(p.draining for p in runner.pool(namespace, POOL).pods) == 2,
                    timeout=30,
                    what="two processes draining",
                )
                answers = [t.result(timeout=60) for t in turns]
            assert [a.status_code for a in answers] == [200, 200, 200], [a.text for a in answers]
            assert {a.json()["answer"] for a in answers} == {"echo: slow 3"}
            (last,) = runner.wait_serving(namespace, POOL, 1, timeout=60)
            # The stopped processes withdrew their samples on SIGTERM.
            wait_until(
                lambda: set(conn.hkeys(key)) == {last.pod},
                timeout=10,
                what="only the remaining pod's load sample",
            )
        assert _chat(front, "still there").json()["answer"] == "echo: still there"
        logs = sorted((tmp_path / "runner" / "logs").glob("*.log"))
        assert len(logs) == 3
        drained = [json.loads(line) for f in logs for line in f.read_text().splitlines()]
        assert sum(1 for e in drained if e.get("event") == "drained" and e.get("drained")) == 2


def test_a_cold_started_process_serves_and_stops_with_its_pod(
    cluster: Cluster,
    kube_api: client.ApiClient,
    namespace: str,
    redis_url: str,
    model: str,
    tmp_path: Path,
) -> None:
    install_crds(cluster)
    _secrets(kube_api, namespace)
    with (
        operator_running(cluster, [namespace], tmp_path / "operator.log"),
        pod_runner_process(
            cluster.kubeconfig,
            [namespace],
            tmp_path / "runner",
            extra_args=["--pending-timeout=2"],
            image="",  # a cold process of the checkout, whatever make test runs the rest in
        ) as runner,
    ):
        _create_pool(kube_api, namespace, {**_pool_spec(model, redis_url), "replicas": 1})
        front = runner.front_url(namespace, POOL)
        (pod,) = runner.wait_serving(namespace, POOL, 1, timeout=120)
        assert pod.ready_at is not None
        assert _chat(front, "cold").json()["answer"] == "echo: cold"
        _delete_pool_and_wait(kube_api, runner, namespace, timeout=60)
        answer = _chat(front, "nobody")  # waits --pending-timeout (2 s) for a process
        assert answer.status_code == 503
        assert answer.json()["error"]["type"] == "NoReadyPods"


def test_a_killed_runner_leaves_no_agent_process_behind(
    cluster: Cluster,
    kube_api: client.ApiClient,
    namespace: str,
    redis_url: str,
    model: str,
    tmp_path: Path,
) -> None:
    """A runner stopped in order stops its pods; one killed outright (a test's timeout, a
    crash) must not leave them running either: they die with it (orphans.py)."""
    install_crds(cluster)
    _secrets(kube_api, namespace)
    with (
        operator_running(cluster, [namespace], tmp_path / "operator.log"),
        # Processes (orphans.py); image mode's guard: test_pod_runner_image.py.
        pod_runner_process(
            cluster.kubeconfig, [namespace], tmp_path / "runner", image=""
        ) as runner,
    ):
        _create_pool(kube_api, namespace, {**_pool_spec(model, redis_url), "replicas": 1})
        (pod,) = runner.wait_serving(namespace, POOL, 1, timeout=120)
        assert pod.pid is not None
        os.kill(pod.pid, 0)  # alive
        runner.proc.send_signal(signal.SIGKILL)
        runner.proc.wait(timeout=10)

        def gone() -> bool:
            try:
                os.kill(pod.pid or 0, 0)
            except ProcessLookupError:
                return True
            return False

        wait_until(gone, timeout=10, what="the pod's process gone with its runner")
