"""The pod runner: time from a pod Running to its process answering /readyz.

    .venv/bin/python -m benchmarks pod_runner        # or AGENTPOOL_BENCH_POD_RUNNER=1 for all
    .venv/bin/python -m benchmarks.bench_pod_runner --pods 10 [--fork-server]

Starts what the e2e tests use: the local cluster (`AGENTPOOL_TEST_CLUSTER`, default
agentpool-test), the operator, a real Redis, the scripted model server and the pod runner
(a child process); creates a pool with one replica, then scales it to `--pods` in one
step (the autoscaler's case: many pods Running at once on this machine) and reads, for
each new pod, the runner's `readyAt - seenRunningAt`. The baseline, measured in the same
run: one `agentpool-agent` started by hand with a minimal config, to its /readyz (the
runtime's own cold start, one at a time, no runner).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from kubernetes import client
from kubernetes import config as kube_config

from hack.pod_runner import pod_runner_process
from tests.integration.crd_install import install_crds
from tests.support.cluster import acquire_cluster, release_cluster
from tests.support.operator_process import operator_running
from tests.support.redis_server import RedisServer, free_port
from tests.support.scripted_model import scripted_model_process

AGENT = str(Path(sys.executable).parent / "agentpool-agent")


def _bare_start(workdir: Path) -> float:
    """Seconds from spawning `agentpool-agent` (minimal config) to its /readyz answering."""
    config = {"pool": {"namespace": "bench", "name": "bare"}, "auth": {"mode": "disabled"}}
    (workdir / "config.json").write_text(json.dumps(config))
    port = free_port()
    started = time.monotonic()
    with (workdir / "bare.log").open("ab") as out:
        proc = subprocess.Popen(
            [AGENT, "--host=127.0.0.1", f"--port={port}", f"--config={workdir / 'config.json'}"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() - started > 120:
                raise RuntimeError("the bare runtime did not start")
            time.sleep(0.02)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _summary(values: list[float]) -> str:
    values = sorted(values)
    p90 = values[min(len(values) - 1, round(0.9 * (len(values) - 1)))]
    return (
        f"median {statistics.median(values):.2f} s, min {values[0]:.2f}, p90 {p90:.2f}, "
        f"max {values[-1]:.2f} (n={len(values)})"
    )


def run(pods: int, extra_args: list[str]) -> None:
    cluster = acquire_cluster()
    install_crds(cluster)
    kube = kube_config.new_client_from_config(config_file=str(cluster.kubeconfig))
    core = client.CoreV1Api(kube)
    namespace = f"bench-runner-{int(time.time())}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    redis = RedisServer()
    redis.start()
    work = Path(tempfile.mkdtemp(prefix="bench-pod-runner-"))
    try:
        baseline = [_bare_start(work) for _ in range(3)]
        with (
            scripted_model_process(work / "model.log") as model,
            operator_running(cluster, [namespace], work / "operator.log"),
            pod_runner_process(
                cluster.kubeconfig, [namespace], work / "runner", extra_args=extra_args
            ) as runner,
        ):
            spec = {
                "instructions": "Answer.",
                "model": {"baseUrl": model, "name": "m"},
                "memory": {"redis": {"url": redis.url}},
                "access": {"mode": "Disabled"},
                "scaling": {"minReplicas": 1, "maxReplicas": pods + 1},
                "replicas": 1,
            }
            client.CustomObjectsApi(kube).create_namespaced_custom_object(
                "agentpool.dev",
                "v1alpha1",
                namespace,
                "agentpools",
                {
                    "apiVersion": "agentpool.dev/v1alpha1",
                    "kind": "AgentPool",
                    # Paused: the scale here is by hand, not the autoscaler's.
                    "metadata": {"name": "bench", "annotations": {"agentpool.dev/paused": "true"}},
                    "spec": spec,
                },
            )
            first = {p.pod for p in runner.wait_serving(namespace, "bench", 1, timeout=180)}
            cluster.kubectl("-n", namespace, "scale", "agentpool", "bench", f"--replicas={pods}")
            serving = runner.wait_serving(namespace, "bench", pods, timeout=600)
            startups = [
                p.ready_at - p.seen_running_at
                for p in serving
                if p.pod not in first and p.ready_at is not None
            ]
        base = statistics.median(baseline)
        mode = " ".join(extra_args) or "processes"
        print(f"bare agentpool-agent cold start (baseline, one at a time): {_summary(baseline)}")
        print(
            f"pod Running -> /readyz, {len(startups)} pods at once ({mode}): {_summary(startups)}"
        )
        print(f"ratio median / baseline: {statistics.median(startups) / base:.2f}")
        print(f"load average during the run: {os.getloadavg()[0]:.1f} (2 cores)")
    finally:
        core.delete_namespace(namespace)
        redis.cleanup()
        release_cluster(cluster)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_pod_runner")
    parser.add_argument("--pods", type=int, default=int(os.environ.get("AGENTPOOL_BENCH_PODS", 10)))
    parser.add_argument("--fork-server", action="store_true")
    args = parser.parse_args(argv if argv is not None else [])
    run(args.pods, ["--fork-server"] if args.fork_server else [])


if __name__ == "__main__":
    main(sys.argv[1:])
