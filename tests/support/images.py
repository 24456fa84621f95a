"""The images as the tests see them: built by hack/build-images.sh (cached by content, so a
session with no change builds nothing), run with `buildah run` on a read-only root with a
tmpfs on /tmp, as a pod runs them."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from hack.pod_runner.container_guard import descendants
from hack.pod_runner.image import BUILDAH, buildah, read_only_root_command
from tests.support.cluster import Cluster
from tests.support.wait import wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
HACK = REPO_ROOT / "hack"


_EXIT_MARKER = "agentpool-test-exit="


class BuildahUnavailableError(RuntimeError):
    """buildah is missing and could not be installed here."""


def ensure_buildah() -> None:
    out = subprocess.run(
        [str(HACK / "ensure-buildah.sh")], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise BuildahUnavailableError(out.stderr.strip()[-1000:])


@dataclass(frozen=True)
class BuiltImages:
    refs: dict[str, str]
    seconds: float


def build_images() -> BuiltImages:
    """Both images' references (NAME -> REF); builds what changed since the last build."""
    ensure_buildah()
    start = time.monotonic()
    # The tests run the images with buildah, so they build them with buildah too.
    env = {**os.environ, "AGENTPOOL_IMAGE_BUILDER": "buildah"}
    out = subprocess.run(
        [str(HACK / "build-images.sh")],
        capture_output=True,
        text=True,
        timeout=3000,
        check=False,
        env=env,
    )
    if out.returncode != 0:
        raise RuntimeError(f"hack/build-images.sh failed:\n{out.stderr[-4000:]}")
    refs = dict(line.split(" ", 1) for line in out.stdout.splitlines() if line.strip())
    return BuiltImages(refs=refs, seconds=time.monotonic() - start)


def image_config(ref: str) -> dict[str, Any]:
    """The OCI config of an image (User, Env, Entrypoint, Labels, ...)."""
    config: dict[str, Any] = json.loads(buildah("inspect", "--type", "image", ref))["OCIv1"][
        "config"
    ]
    return config


def apparent_size(path: Path) -> int:
    """Bytes of the files under `path` (not the blocks they fill): what a layer holds."""
    out = subprocess.run(
        ["du", "-sx", "--apparent-size", "--block-size=1", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.split()[0])


def top_contributors(root: Path, dirs: Sequence[str], count: int = 8) -> list[tuple[str, int]]:
    """The largest entries directly under each of `dirs` (paths inside the image)."""
    sizes: list[tuple[str, int]] = []
    for inside in dirs:
        base = root / inside.lstrip("/")
        for base_entry in base.glob("*") if base.is_dir() else []:
            if base_entry.is_symlink():
                continue
            sizes.append((f"{inside.rstrip('/')}/{base_entry.name}", apparent_size(base_entry)))
    return sorted(sizes, key=lambda item: item[1], reverse=True)[:count]


@dataclass
class Container:
    """A working container of an image; `popen`/`run` start processes in it."""

    image: str
    name: str
    root: Path

    @classmethod
    def create(cls, image: str) -> Container:
        name = buildah("from", "--pull=never", image).strip()
        root = Path(buildah("mount", name).strip())
        return cls(image=image, name=name, root=root)

    def remove(self) -> None:
        subprocess.run([BUILDAH, "rm", self.name], capture_output=True, check=False)

    def entrypoint(self) -> list[str]:
        entrypoint: list[str] = image_config(self.image)["Entrypoint"]
        return entrypoint

    def command(
        self,
        argv: Sequence[str],
        *,
        read_only: bool = True,
        volumes: Sequence[str] = (),
        user: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> list[str]:
        # /run: buildah bind-mounts /run/.containerenv, which it cannot create on a
        # read-only root (a pod needs no /run).
        run = [BUILDAH, "run", "--mount", "type=tmpfs,destination=/tmp"]
        run += ["--mount", "type=tmpfs,destination=/run"]
        for volume in volumes:
            run += ["--volume", volume]
        if user is not None:
            run += ["--user", user]
        for key, value in (env or {}).items():
            run += ["--env", f"{key}={value}"]
        run += [self.name, "--", *argv]
        if not read_only:
            return run
        return read_only_root_command(str(self.root), run)

    def popen(self, argv: Sequence[str], log: Path, **kwargs: Any) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            return subprocess.Popen(
                self.command(argv, **kwargs), stdout=out, stderr=subprocess.STDOUT
            )

    @staticmethod
    def stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
        """Stops what `popen` started, and everything under it. buildah answers SIGTERM by
        killing tini outright, which orphans the entry point (it went on running as uid
        65532); so SIGTERM goes to the container's tini, which forwards it to its child as
        PID 1 does when a kubelet stops a pod. Whatever is left after `timeout` is killed."""
        tree = {pid: cmdline(pid) for pid in descendants(proc.pid)}
        inits = [pid for pid, argv in tree.items() if argv[:1] == ["/usr/bin/tini"]]
        for pid in inits or [proc.pid]:
            _signal(pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
        for pid, argv in tree.items():
            if cmdline(pid) == argv:  # the same process, not a reused pid
                _signal(pid, signal.SIGKILL)

    def run(
        self, argv: Sequence[str], *, timeout: float = 60, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        """Runs `argv` to completion. buildah 1.28 panics after any command on a read-only
        root (its clean-up logs through a nil logger) and exits 2, so the command's own
        status travels on the last line of stdout instead."""
        wrapped = ["/bin/sh", "-c", f'"$@"; echo {_EXIT_MARKER}$?', "sh", *argv]
        out = subprocess.run(
            self.command(wrapped, **kwargs),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        stdout, marker, status = out.stdout.rpartition(_EXIT_MARKER)
        if not marker:
            raise RuntimeError(f"{argv} did not run: {out.stderr[-2000:]}")
        return subprocess.CompletedProcess(out.args, int(status), stdout, out.stderr)


class ContainerExitedError(AssertionError):
    """The process under test exited while it was awaited."""


def wait_answering(
    proc: subprocess.Popen[bytes], url: str, log: Path, *, timeout: float, what: str
) -> None:
    """Waits until GET `url` answers 200; fails at once, with the log's tail, if `proc`
    exits first."""

    def answered_or_exited() -> bool:
        if proc.poll() is not None:
            return True
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(answered_or_exited, timeout=timeout, interval=0.05, what=what)
    if proc.poll() is not None:
        tail = log.read_text(errors="replace")[-3000:]
        raise ContainerExitedError(f"{what}: the process exited ({proc.returncode}):\n{tail}")


def readable_by_the_image(directory: Path) -> None:
    """Opens `directory` and its files to the image's uid 65532, which reads them as it
    reads a mounted ConfigMap or Secret in a pod (pytest's tmp_path is private to root)."""
    directory.chmod(0o755)
    for entry in directory.iterdir():
        entry.chmod(0o644)


# The operator's kubeconfig goes on /mnt: a kubelet creates a mount point on a read-only
# root, buildah cannot, and /mnt is an empty directory in both bases.
KUBECONFIG_DIR = "/mnt"


def write_kubeconfig(cluster: Cluster, directory: Path) -> str:
    """Writes the cluster's kubeconfig, flattened (the certificates inline, no paths into
    the host's file system), into `directory` for the operator in its image; returns the
    KUBECONFIG value inside the container (mount `directory` on KUBECONFIG_DIR). The API
    server's loopback address works there: chroot isolation shares the host's network."""
    flat = cluster.kubectl("config", "view", "--raw", "--flatten", "--minify").stdout
    (directory / "kubeconfig").write_text(flat)
    readable_by_the_image(directory)
    return f"{KUBECONFIG_DIR}/kubeconfig"


# /proc, read directly: chroot isolation shares the host's PID namespace, so the
# container's processes are visible (and their pids the same) from the test.


def proc_status(pid: int) -> dict[str, str] | None:
    """/proc/PID/status as a dict, or None once the process is gone (reaped)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return dict(
        (key, value.strip())
        for key, _, value in (line.partition(":") for line in text.splitlines())
    )


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]
