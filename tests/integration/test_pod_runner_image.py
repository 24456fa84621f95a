"""The pod runner in image mode (`--image`): each Running agent pod's container runs in
the agent image with `buildah run` (hack/pod_runner/image.py), against the real control
plane, a real Redis and the scripted model. A pod served by the image answers /v1/chat
through its pool's front; its runtime runs as the image's non-root uid under tini, in
the image's root; a pod that goes away, and a runner killed outright, leave no process
and no working container behind.

Skipped, with the reason, only where buildah cannot be installed (as test_images.py)."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client

from hack.pod_runner import RunnerProcess, pod_runner_process
from hack.pod_runner.container_guard import descendants
from tests.integration.crd_install import install_crds
from tests.integration.test_pod_runner import (
    POOL,
    _chat,
    _create_pool,
    _delete_pool_and_wait,
    _pool_spec,
    _secrets,
)
from tests.support.cluster import Cluster
from tests.support.images import (
    BUILDAH,
    BuildahUnavailableError,
    build_images,
    cmdline,
    proc_status,
)
from tests.support.operator_process import operator_running
from tests.support.scripted_model import scripted_model_process
from tests.support.wait import wait_until

# The first run on a fresh machine builds the images (minutes); then nothing is built.
pytestmark = pytest.mark.timeout(1800)

UID = "65532"  # the image's USER, and the runAsUser the operator renders


@pytest.fixture(scope="module")
def agent_image() -> str:
    try:
        built = build_images()
    except BuildahUnavailableError as exc:
        pytest.skip(f"buildah is not available and could not be installed: {exc}")
    return built.refs["agent"]


@pytest.fixture
def model_url(tmp_path: Path) -> Iterator[str]:
    with scripted_model_process(tmp_path / "model.log") as url:
        yield url


def _working_containers() -> set[str]:
    out = subprocess.run(
        [BUILDAH, "containers", "--format", "{{.ContainerName}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(out.stdout.split())


def _runtime_pid(runner: RunnerProcess, namespace: str) -> tuple[int, list[int]]:
    """The pod's runtime process (its tini's child) and every process under its pod."""
    (pod,) = runner.pool(namespace, POOL).pods
    assert pod.pid is not None
    tree = descendants(pod.pid)
    (tini,) = [pid for pid in tree if cmdline(pid)[:1] == ["/usr/bin/tini"]]
    (runtime,) = [pid for pid in tree if (proc_status(pid) or {}).get("PPid") == str(tini)]
    return runtime, tree


def _mounts(pid: int) -> dict[str, set[str]]:
    """Each mount point the process sees (in its root) -> its options (the top mount)."""
    found: dict[str, set[str]] = {}
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        found[fields[4]] = set(fields[5].split(","))
    return found


def _all_gone(pids: list[int]) -> bool:
    return all(proc_status(pid) is None for pid in pids)


@dataclass
class ImagePool:
    """A pool of one serving pod, run by the pod runner in image mode."""

    runner: RunnerProcess
    namespace: str
    container: str | None
    """The runner's working container, as its status reports it."""


@pytest.fixture
def image_pool(
    cluster: Cluster,
    kube_api: client.ApiClient,
    namespace: str,
    redis_url: str,
    model_url: str,
    agent_image: str,
    tmp_path: Path,
) -> Iterator[ImagePool]:
    install_crds(cluster)
    _secrets(kube_api, namespace)
    with (
        operator_running(cluster, [namespace], tmp_path / "operator.log"),
        pod_runner_process(
            cluster.kubeconfig, [namespace], tmp_path / "runner", image=agent_image
        ) as runner,
    ):
        status = runner.status()
        assert status.image == agent_image
        assert status.container in _working_containers()
        _create_pool(kube_api, namespace, {**_pool_spec(model_url, redis_url), "replicas": 1})
        runner.wait_serving(namespace, POOL, 1, timeout=300)
        yield ImagePool(runner, namespace, status.container)


def test_a_pod_served_by_the_image_answers_as_the_non_root_uid_and_leaves_nothing(
    image_pool: ImagePool, kube_api: client.ApiClient, tmp_path: Path
) -> None:
    runner, namespace = image_pool.runner, image_pool.namespace
    answer = _chat(runner.front_url(namespace, POOL), "from the image")
    assert answer.status_code == 200, answer.text
    assert answer.json()["answer"] == "echo: from the image"

    runtime, tree = _runtime_pid(runner, namespace)
    status_lines = proc_status(runtime)
    assert status_lines is not None
    assert status_lines["Uid"].split() == [UID] * 4
    assert status_lines["Gid"].split() == [UID] * 4
    # The image's runtime, under its tini, in the image's root (not the checkout's).
    assert cmdline(runtime)[1] == "/opt/agentpool/bin/agentpool-agent"
    parent = int(status_lines["PPid"])
    assert cmdline(parent)[:2] == ["/usr/bin/tini", "--"]
    assert Path(f"/proc/{runtime}/root").resolve() != Path("/")
    # A read-only root; the pod's /tmp writable, its config read-only as the pod mounts it.
    mounts = _mounts(runtime)
    assert "ro" in mounts["/"], mounts["/"]
    assert "rw" in mounts["/tmp"]
    assert "ro" in mounts["/etc/agentpool"]

    # The pod goes away: preStop and SIGTERM through tini; nothing of it is left.
    _delete_pool_and_wait(kube_api, runner, namespace, timeout=120)
    assert _all_gone(tree), [cmdline(pid) for pid in tree]
    log = (tmp_path / "runner" / "logs").glob("*.log")
    assert any("drained" in f.read_text() for f in log)
    runner.stop()
    assert image_pool.container not in _working_containers()


def test_a_killed_runner_leaves_no_container_process_or_working_container(
    image_pool: ImagePool,
) -> None:
    """`buildah run` killed with the runner leaves tini and the runtime running (chroot
    isolation); the container's guard and the working container's remover end them."""
    runner = image_pool.runner
    _, tree = _runtime_pid(runner, image_pool.namespace)
    runner.proc.send_signal(signal.SIGKILL)
    runner.proc.wait(timeout=10)
    wait_until(
        lambda: _all_gone(tree),
        timeout=60,
        what="the pod's container processes gone with the runner",
    )
    wait_until(
        lambda: image_pool.container not in _working_containers(),
        timeout=60,
        what=f"the working container {image_pool.container} removed",
    )
