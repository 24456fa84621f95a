"""The operator as a process against the test cluster, as a user runs it out of cluster."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.cluster import Cluster
from tests.support.redis_server import free_port
from tests.support.wait import wait_until

VENV_BIN = Path(sys.executable).parent


@dataclass
class OperatorProcess:
    proc: subprocess.Popen[bytes]
    log: Path
    metrics_port: int
    health_port: int

    def metric(self, name: str, labels: str = "") -> float:
        """The sum of a metric's samples whose label text contains `labels`."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and (line[len(name)] in " {") and labels in line:
                total += float(line.rsplit(" ", 1)[1])
        return total

    def leading(self) -> bool:
        health = httpx.get(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2).json()
        return bool(health["leader"])

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def start_operator(
    cluster: Cluster,
    namespaces: list[str],
    log: Path,
    extra_env: dict[str, str] | None = None,
    *,
    standalone: bool = True,
) -> OperatorProcess:
    metrics, health = free_port(), free_port()
    env = {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig),
        "AGENTPOOL_AGENT_IMAGE": "registry.local/agentpool-agent:test",
        "AGENTPOOL_OPERATOR_NAMESPACE": "agentpool-system",
        **(extra_env or {}),
    }
    argv = [
        str(VENV_BIN / "agentpool-operator"),
        *(f"--namespace={n}" for n in namespaces),
        *(["--standalone"] if standalone else []),
        f"--metrics-port={metrics}",
        f"--health-port={health}",
        "--log-format=json",
        "--log-level=debug",
    ]
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    handle = OperatorProcess(proc, log, metrics, health)

    def healthy() -> bool:
        if not handle.alive():
            raise AssertionError(f"the operator exited:\n{handle.tail()}")
        return httpx.get(f"http://127.0.0.1:{health}/healthz", timeout=2).status_code == 200

    wait_until(healthy, timeout=60, what="the operator's /healthz")
    return handle


def stop_operator(handle: OperatorProcess, *, kill: bool = False) -> None:
    if handle.alive():
        handle.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
    try:
        handle.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        handle.proc.kill()
        handle.proc.wait()


@contextmanager
def operator_running(
    cluster: Cluster,
    namespaces: list[str],
    log: Path,
    extra_env: dict[str, str] | None = None,
    *,
    standalone: bool = True,
) -> Iterator[OperatorProcess]:
    handle = start_operator(cluster, namespaces, log, extra_env, standalone=standalone)
    try:
        yield handle
    finally:
        stop_operator(handle)
