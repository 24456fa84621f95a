"""The pod runner as a child process, for tests and benchmarks (synchronous).

    with pod_runner_process(kubeconfig, ["shop"], tmp_path) as runner:
        url = runner.front_url("shop", "support")
        runner.wait_serving("shop", "support", 2, timeout=60)
        runner.pool("shop", "support").pods      # pod names, ports, states, counts

A child process keeps the runner's event loop and signal handling out of the caller's,
and `stop()` is what a user's Ctrl-C does.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from hack.pod_runner.status import PodProcess, PoolFrontStatus, RunnerStatus

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGE_KNOB = "AGENTPOOL_TEST_POD_RUNNER_IMAGE"
"""`1`: every runner started here without an image or `--fork-server` runs its pods in
the agent image (built first when it changed); another value names the image."""


class RunnerWaitError(AssertionError):
    """What was waited for did not happen before the deadline."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RunnerProcess:
    """A running `python -m hack.pod_runner` and its status endpoint."""

    proc: subprocess.Popen[bytes]
    status_url: str
    log: Path
    workdir: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def status(self) -> RunnerStatus:
        answer = httpx.get(f"{self.status_url}/status", timeout=5)
        answer.raise_for_status()
        return RunnerStatus.model_validate(answer.json())

    def front_url(self, namespace: str, pool: str) -> str:
        """The pool's front, known (and listening) even before its first pod runs."""
        answer = httpx.get(f"{self.status_url}/fronts/{namespace}/{pool}", timeout=5)
        answer.raise_for_status()
        return str(answer.json()["url"])

    def pool(self, namespace: str, pool: str) -> PoolFrontStatus:
        found = self.status().pool(namespace, pool)
        if found is None:
            return PoolFrontStatus(namespace=namespace, pool=pool, url="", waiting=0, pods=[])
        return found

    def serving(self, namespace: str, pool: str) -> list[PodProcess]:
        """The processes taking new requests (ready, not draining)."""
        return self.pool(namespace, pool).serving

    def wait_serving(
        self, namespace: str, pool: str, count: int, *, timeout: float
    ) -> list[PodProcess]:
        """Wait until exactly `count` processes serve the pool and none is left draining."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise RunnerWaitError(f"the pod runner exited:\n{self.log_tail()}")
            pods = self.pool(namespace, pool).pods
            serving = [p for p in pods if p.ready and not p.draining]
            if len(serving) == count == len(pods):
                return serving
            if time.monotonic() >= deadline:
                states = [(p.pod, p.state) for p in pods]
                raise RunnerWaitError(
                    f"{namespace}/{pool}: wanted {count} serving, have {states} after {timeout}s"
                )
            time.sleep(0.1)

    def stop(self, timeout: float = 60) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@functools.cache
def _built_agent_image() -> str:
    out = subprocess.run(
        [str(REPO_ROOT / "hack" / "build-images.sh"), "agent"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "AGENTPOOL_IMAGE_BUILDER": "buildah"},
    )
    refs = dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)
    if out.returncode != 0 or "agent" not in refs:
        raise RunnerWaitError(f"the agent image did not build:\n{out.stderr[-4000:]}")
    return refs["agent"]


def image_from_environment(extra_args: Sequence[str]) -> str | None:
    """The image `AGENTPOOL_TEST_POD_RUNNER_IMAGE` asks for, unless warm forks are."""
    knob = os.environ.get(IMAGE_KNOB, "")
    if knob in ("", "0") or "--fork-server" in extra_args:
        return None
    return _built_agent_image() if knob == "1" else knob


def start_pod_runner_process(
    kubeconfig: Path,
    namespaces: Sequence[str],
    workdir: Path,
    *,
    aliases: Mapping[str, str] | None = None,
    front_ports: Mapping[tuple[str, str], int] | None = None,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    image: str | None = None,
) -> RunnerProcess:
    """Start the runner for `namespaces` (empty: all) and wait until its status answers;
    with `image` (None: `AGENTPOOL_TEST_POD_RUNNER_IMAGE` decides; "": processes in any
    case), each pod's agent container runs in that image (image mode)."""
    workdir.mkdir(parents=True, exist_ok=True)
    image = image if image is not None else image_from_environment(extra_args)
    port = _free_port()
    argv = [
        sys.executable,
        "-m",
        "hack.pod_runner",
        f"--kubeconfig={kubeconfig}",
        f"--workdir={workdir}",
        f"--status-port={port}",
        *(f"--namespace={n}" for n in namespaces),
        *(f"--alias={k}={v}" for k, v in (aliases or {}).items()),
        *(f"--front={ns}/{pool}={p}" for (ns, pool), p in (front_ports or {}).items()),
        *([f"--image={image}"] if image else []),
        *extra_args,
    ]
    log = workdir / "pod-runner.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            env={**os.environ, "AGENTPOOL_LOG_FORMAT": "json", **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    handle = RunnerProcess(proc, f"http://127.0.0.1:{port}", log, workdir)
    # A loaded 2-core machine imports slowly; image mode first makes its working container.
    deadline = time.monotonic() + (180 if image else 60)
    while True:
        if not handle.alive():
            raise RunnerWaitError(f"the pod runner exited:\n{handle.log_tail()}")
        try:
            if httpx.get(f"{handle.status_url}/healthz", timeout=1).status_code == 200:
                return handle
        except httpx.HTTPError:
            pass
        if time.monotonic() >= deadline:
            handle.stop()
            raise RunnerWaitError(f"the pod runner did not answer:\n{handle.log_tail()}")
        time.sleep(0.1)


@contextmanager
def pod_runner_process(
    kubeconfig: Path,
    namespaces: Sequence[str],
    workdir: Path,
    **kwargs: object,
) -> Iterator[RunnerProcess]:
    """`start_pod_runner_process`, stopped on exit (every process SIGTERMed, waited for)."""
    handle = start_pod_runner_process(kubeconfig, namespaces, workdir, **kwargs)  # type: ignore[arg-type]
    try:
        yield handle
    finally:
        handle.stop()
