"""The console scripts start and serve: the operator against the real cluster, the runtime alone."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.cluster import Cluster
from tests.support.redis_server import free_port
from tests.support.wait import wait_until

VENV_BIN = Path(sys.executable).parent


@contextmanager
def running(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _get(url: str, proc: subprocess.Popen[bytes], log: Path) -> httpx.Response | None:
    if proc.poll() is not None:
        raise AssertionError(f"exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
    response = httpx.get(url, timeout=2)
    return response if response.status_code == 200 else None


def test_operator_starts_against_the_cluster(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    metrics, health = free_port(), free_port()
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
    argv = [
        str(VENV_BIN / "agentpool-operator"),
        f"--namespace={namespace}",
        "--standalone",
        f"--metrics-port={metrics}",
        f"--health-port={health}",
        "--log-format=json",
    ]
    log = tmp_path / "operator.log"
    with running(argv, env, log) as proc:
        wait_until(
            lambda: _get(f"http://127.0.0.1:{health}/healthz", proc, log),
            timeout=60,
            what="operator /healthz",
        )
        scraped = wait_until(
            lambda: _get(f"http://127.0.0.1:{metrics}/metrics", proc, log),
            timeout=30,
            what="operator /metrics",
        )
        assert "python_info" in scraped.text
    assert '"level"' in log.read_text(), "the operator's logs are not JSON"


def test_agent_runtime_starts_and_serves_health(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "agent.log"
    argv = [str(VENV_BIN / "agentpool-agent"), "--host=127.0.0.1", f"--port={port}"]
    with running(argv, dict(os.environ), log) as proc:
        wait_until(
            lambda: _get(f"http://127.0.0.1:{port}/healthz", proc, log),
            timeout=30,
            what="agent /healthz",
        )
        metrics = _get(f"http://127.0.0.1:{port}/metrics", proc, log)
        assert metrics is not None
        assert metrics.headers["content-type"].startswith("text/plain")
