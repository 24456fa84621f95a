"""The pod runner: time from a pod Running to its process answering /readyz.

    .venv/bin/python -m benchmarks pod_runner        # or AGENTPOOL_BENCH_POD_RUNNER=1 for all
    .venv/bin/python -m benchmarks.bench_pod_runner --pods 10 [--modes processes,image]

Starts what the e2e tests use: the local cluster (`AGENTPOOL_TEST_CLUSTER`, default
agentpool-test), the operator, a real Redis, the scripted model server and, per mode, the
pod runner (a child process); creates a pool with one replica, then scales it to
`--pods` in one step (the autoscaler's case: many pods Running at once on this machine)
and reads, for each new pod, the runner's `readyAt - seenRunningAt`. Modes, one after
the other in the same run: `processes` (a cold process per pod, the default),
`fork-server` (warm forks), `image` (each pod's container in the agent image with
`buildah run`: the image is built first when it changed). The baseline, measured in the
same run: one `agentpool-agent` started by hand with a minimal config, to its /readyz
(the runtime's own cold start, one at a time, no runner); with `image`, also what a
working container per pod would add (`buildah from` + `mount` + `rm`).
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
from hack.pod_runner.image import buildah
from tests.integration.crd_install import install_crds
from tests.support.cluster import Cluster, acquire_cluster, release_cluster
from tests.support.images import build_images
from tests.support.operator_process import operator_running
from tests.support.redis_server import RedisServer, free_port
from tests.support.scripted_model import scripted_model_process

AGENT = str(Path(sys.executable).parent / "agentpool-agent")
MANAGED = "app.kubernetes.io/managed-by=agentpool-operator"
MODES = {"processes": [], "fork-server": ["--fork-server"], "image": []}


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


def _per_pod_container(image: str) -> float:
    """Seconds a working container of its own would add to each pod's start (and stop)."""
    started = time.monotonic()
    name = buildah("from", "--pull=never", image).strip()
    try:
        buildah("mount", name)
    finally:
        buildah("rm", name)
    return time.monotonic() - started


def _measure(
    cluster: Cluster,
    kube: client.ApiClient,
    namespace: str,
    mode: str,
    pods: int,
    *,
    model: str,
    redis_url: str,
    work: Path,
    image: str | None,
) -> list[float]:
    """Startup of `pods - 1` pods Running at once, with the runner in `mode`."""
    pool = f"bench-{mode}"
    with pod_runner_process(
        cluster.kubeconfig,
        [namespace],
        work / f"runner-{mode}",
        # This mode's pool only (an earlier mode's pods may still be going away).
        extra_args=[*MODES[mode], f"--selector={MANAGED},agentpool.dev/pool={pool}"],
        image=image if mode == "image" else None,
    ) as runner:
        spec = {
            "instructions": "Answer.",
            "model": {"baseUrl": model, "name": "m"},
            "memory": {"redis": {"url": redis_url}},
            "access": {"mode": "Disabled"},
            "scaling": {"minReplicas": 1, "maxReplicas": pods + 1},
            "replicas": 1,
        }
        custom = client.CustomObjectsApi(kube)
        custom.create_namespaced_custom_object(
            "agentpool.dev",
            "v1alpha1",
            namespace,
            "agentpools",
            {
                "apiVersion": "agentpool.dev/v1alpha1",
                "kind": "AgentPool",
                # Paused: the scale here is by hand, not the autoscaler's.
                "metadata": {"name": pool, "annotations": {"agentpool.dev/paused": "true"}},
                "spec": spec,
            },
        )
        first = {p.pod for p in runner.wait_serving(namespace, pool, 1, timeout=300)}
        cluster.kubectl("-n", namespace, "scale", "agentpool", pool, f"--replicas={pods}")
        serving = runner.wait_serving(namespace, pool, pods, timeout=900)
        custom.delete_namespaced_custom_object(
            "agentpool.dev", "v1alpha1", namespace, "agentpools", pool
        )
        return [
            p.ready_at - p.seen_running_at
            for p in serving
            if p.pod not in first and p.ready_at is not None
        ]


def run(pods: int, modes: list[str]) -> None:
    image = build_images().refs["agent"] if "image" in modes else None
    cluster = acquire_cluster()
    install_crds(cluster)
    kube = kube_config.new_client_from_config(config_file=str(cluster.kubeconfig))
    core = client.CoreV1Api(kube)
    namespace = f"bench-runner-{int(time.time())}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    redis = RedisServer()
    redis.start()
    work = Path(tempfile.mkdtemp(prefix="bench-pod-runner-"))
    results: dict[str, list[float]] = {}
    loads: dict[str, float] = {}
    try:
        baseline = [_bare_start(work) for _ in range(3)]
        per_pod = [_per_pod_container(image) for _ in range(3)] if image else []
        with (
            scripted_model_process(work / "model.log") as model,
            operator_running(cluster, [namespace], work / "operator.log"),
        ):
            for mode in modes:
                results[mode] = _measure(
                    cluster,
                    kube,
                    namespace,
                    mode,
                    pods,
                    model=model,
                    redis_url=redis.url,
                    work=work,
                    image=image,
                )
                loads[mode] = os.getloadavg()[0]
        base = statistics.median(baseline)
        print(f"bare agentpool-agent cold start (baseline, one at a time): {_summary(baseline)}")
        if per_pod:
            print(f"a working container per pod would add (from + mount + rm): {_summary(per_pod)}")
        for mode, startups in results.items():
            print(
                f"pod Running -> /readyz, {len(startups)} pods at once ({mode}, load "
                f"{loads[mode]:.1f}): {_summary(startups)}; "
                f"ratio median / baseline {statistics.median(startups) / base:.2f}"
            )
        if "processes" in results and "image" in results:
            ratio = statistics.median(results["image"]) / statistics.median(results["processes"])
            print(f"image / processes (medians): {ratio:.2f}")
    finally:
        core.delete_namespace(namespace)
        redis.cleanup()
        release_cluster(cluster)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_pod_runner")
    parser.add_argument("--pods", type=int, default=int(os.environ.get("AGENTPOOL_BENCH_PODS", 10)))
    parser.add_argument(
        "--modes",
        default=os.environ.get("AGENTPOOL_BENCH_POD_RUNNER_MODES", "processes,image"),
        help=f"comma-separated, measured one after the other: {', '.join(MODES)}",
    )
    parser.add_argument("--fork-server", action="store_true", help="same as --modes fork-server")
    args = parser.parse_args(argv if argv is not None else [])
    modes = ["fork-server"] if args.fork_server else args.modes.split(",")
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        parser.error(f"unknown mode(s) {unknown}; have {sorted(MODES)}")
    run(args.pods, modes)


if __name__ == "__main__":
    main(sys.argv[1:])
