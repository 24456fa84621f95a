"""Startup of each entry point inside its image against the same entry point as a bare
process from this checkout's .venv (the baseline), interleaved, RUNS launches each:

- `agentpool-agent`: from launch to /healthz and to /readyz (against a real Redis);
- `agentpool-operator`: from launch to /healthz, against the local test cluster;

the image as the tests and a pod runner would run it: `buildah run` (chroot isolation) on
a read-only root with a tmpfs on /tmp, as uid 65532, config mounted read-only, one
working container per image reused by every launch. Also the two fixed costs: running
anything in the image (`buildah run CTR -- true`) and making a working container
(`buildah from` + `mount`: vfs copies the image). Opt-in (needs buildah, builds the images
when they changed, starts the test cluster):

    AGENTPOOL_TEST_CLUSTER=agentpool-bench .venv/bin/python -m benchmarks images

(named, it runs; in the full `make bench` only with AGENTPOOL_BENCH_IMAGES=1).
"""

from __future__ import annotations

import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.integration.crd_install import install_crds
from tests.support.cluster import acquire_cluster, release_cluster
from tests.support.images import (
    KUBECONFIG_DIR,
    Container,
    build_images,
    readable_by_the_image,
    wait_answering,
    write_kubeconfig,
)
from tests.support.redis_server import RedisServer, free_port

RUNS = int(os.environ.get("BENCH_IMAGE_RUNS", "5"))
VENV_BIN = Path(sys.executable).parent
MOUNT = "/etc/agentpool"  # where the operator mounts the runtime's config in a pod
TIMEOUT = 120


def _agent_config(directory: Path, redis_url: str, inside: str) -> None:
    """config.json and tokens.json in `directory`, naming each other as seen from `inside`."""
    token = secrets.token_urlsafe(24)
    tokens = {"tokens": [{"name": "gateway", "token": token, "tenant": "*"}]}
    (directory / "tokens.json").write_text(json.dumps(tokens))
    config = {
        "pool": {"namespace": "bench", "name": "image"},
        "memory": {"redis": {"url": redis_url}},
        "auth": {"tokensFile": f"{inside}/tokens.json"},
    }
    (directory / "config.json").write_text(json.dumps(config))
    readable_by_the_image(directory)


Launch = Callable[[list[str], Path], subprocess.Popen[bytes]]


def _timed(
    launch: Launch,
    stop: Callable[[subprocess.Popen[bytes]], None],
    argv: list[str],
    log: Path,
    port: int,
    paths: Sequence[str],
) -> list[float]:
    """Seconds from launch until each of `paths` answers 200, in order."""
    start = time.monotonic()
    proc = launch(argv, log)
    try:
        found = []
        for path in paths:
            url = f"http://127.0.0.1:{port}{path}"
            wait_answering(proc, url, log, timeout=TIMEOUT, what=f"{argv[0]} {path}")
            found.append(time.monotonic() - start)
        return found
    finally:
        stop(proc)


def _bare(env: dict[str, str]) -> Launch:
    def launch(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            return subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env}
            )

    return launch


def _stop_bare(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _in_image(container: Container, volume: str, env: dict[str, str]) -> Launch:
    def launch(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        return container.popen(argv, log, volumes=[volume], env=env)

    return launch


def _line(label: str, values: list[float], baseline: list[float] | None = None) -> str:
    median = statistics.median(values)
    text = f"  {label:<44} median {median:5.2f} s  ({min(values):.2f}-{max(values):.2f})"
    if baseline:
        text += f"  x{median / statistics.median(baseline):.2f}"
    return text


def main() -> None:
    built = build_images()
    work = Path(tempfile.mkdtemp(prefix="bench-images-"))
    redis = RedisServer()
    redis.start()
    cluster = acquire_cluster()
    install_crds(cluster)
    containers: list[Container] = []
    try:
        made = []
        for _ in range(3):
            start = time.monotonic()
            containers.append(Container.create(built.refs["agent"]))
            made.append(time.monotonic() - start)
        agent_ctr = containers[0]
        containers.append(Container.create(built.refs["operator"]))
        operator_ctr = containers[-1]
        true_runs = []
        for _ in range(RUNS):
            start = time.monotonic()
            agent_ctr.run(["true"])
            true_runs.append(time.monotonic() - start)

        image_dir, bare_dir = work / "agent-image", work / "agent-bare"
        image_dir.mkdir()
        bare_dir.mkdir()
        _agent_config(image_dir, redis.url, MOUNT)
        _agent_config(bare_dir, redis.url, str(bare_dir))
        operator_dir = work / "operator"
        operator_dir.mkdir()
        kubeconfig = write_kubeconfig(cluster, operator_dir)
        operator_env = {
            "AGENTPOOL_AGENT_IMAGE": built.refs["agent"],
            "AGENTPOOL_OPERATOR_NAMESPACE": "agentpool-system",
        }
        agent_in_image = _in_image(agent_ctr, f"{image_dir}:{MOUNT}:ro", {})
        operator_in_image = _in_image(
            operator_ctr,
            f"{operator_dir}:{KUBECONFIG_DIR}:ro",
            {**operator_env, "KUBECONFIG": kubeconfig},
        )
        bare_agent = _bare({})
        bare_operator = _bare({**operator_env, "KUBECONFIG": str(operator_dir / "kubeconfig")})
        entry = agent_ctr.entrypoint()[:2]  # tini --
        results: dict[str, list[list[float]]] = {
            key: [] for key in ("agent image", "agent bare", "operator image", "operator bare")
        }
        for run in range(RUNS):
            port = free_port()
            agent_args = ["--host=127.0.0.1", f"--port={port}"]
            results["agent image"].append(
                _timed(
                    agent_in_image,
                    agent_ctr.stop,
                    [*entry, "agentpool-agent", *agent_args, f"--config={MOUNT}/config.json"],
                    work / f"agent-image-{run}.log",
                    port,
                    ["/healthz", "/readyz"],
                )
            )
            results["agent bare"].append(
                _timed(
                    bare_agent,
                    _stop_bare,
                    [
                        str(VENV_BIN / "agentpool-agent"),
                        *agent_args,
                        f"--config={bare_dir}/config.json",
                    ],
                    work / f"agent-bare-{run}.log",
                    port,
                    ["/healthz", "/readyz"],
                )
            )
            health = free_port()
            operator_args = [
                "--namespace=agentpool-bench-images",
                "--standalone",
                f"--health-port={health}",
                "--metrics-port=0",
            ]
            results["operator image"].append(
                _timed(
                    operator_in_image,
                    operator_ctr.stop,
                    [*entry, "agentpool-operator", *operator_args],
                    work / f"operator-image-{run}.log",
                    health,
                    ["/healthz"],
                )
            )
            results["operator bare"].append(
                _timed(
                    bare_operator,
                    _stop_bare,
                    [str(VENV_BIN / "agentpool-operator"), *operator_args],
                    work / f"operator-bare-{run}.log",
                    health,
                    ["/healthz"],
                )
            )
    finally:
        for container in containers:
            container.remove()
        redis.cleanup()
        release_cluster(cluster)

    def column(key: str, index: int) -> list[float]:
        return [times[index] for times in results[key]]

    print(f"startup, {RUNS} launches each, interleaved; load {os.getloadavg()[0]:.1f}")
    print("(xN: the image against the bare process from .venv, the baseline)")
    print(_line("agent bare: /healthz", column("agent bare", 0)))
    print(_line("agent in its image: /healthz", column("agent image", 0), column("agent bare", 0)))
    print(_line("agent bare: /readyz", column("agent bare", 1)))
    print(_line("agent in its image: /readyz", column("agent image", 1), column("agent bare", 1)))
    print(_line("operator bare: /healthz", column("operator bare", 0)))
    print(
        _line(
            "operator in its image: /healthz",
            column("operator image", 0),
            column("operator bare", 0),
        )
    )
    print(_line("buildah run CTR -- true", true_runs))
    print(_line("new working container (buildah from + mount)", made))
