"""Image mode: each pod's agent container runs in the agent image with `buildah run`, as
docs/images.md describes buildah here (vfs storage, chroot isolation, no Docker engine).

One working container per runner (`buildah from` once, 1.7-12 s here), not one per pod:
the root is bound read-only in each run's own mount namespace and every pod brings its
own /tmp, so pods share nothing through it; only the mount points a pod needs are made
in it first (buildah cannot create one on a read-only root). Per pod:

- the pod's mounts at their container paths, from the pod's host directory (written by
  `volumes.py`, owned by the pod's uid), read-only where the pod says `readOnly`;
- `--user` from the pod's securityContext (container over pod), else the image's USER;
- the image's entry point (tini) with the pod's args, unless the container sets `command`;
- the pod's environment from a file the container's shell reads before it execs the
  entry point (argv is visible to every user in `ps`; the API key in it would be too);
- the host's network (chroot isolation has no network namespace): the process listens
  on its own loopback port, as a bare process does.

Each run is started under `container_guard.py`, which stops it through tini and leaves
nothing behind, also when the runner is killed; a second guard removes the working
container then.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import structlog

from hack.pod_runner.plan import PodPlan

log = structlog.get_logger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILDAH = str(REPO_ROOT / "hack" / "buildah.sh")
"""buildah on Agentpool's own image storage (hack/lib.sh)."""
GUARD = str(Path(__file__).with_name("container_guard.py"))
READ_ONLY_ROOT = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
"""Makes the container's root a read-only bind of itself, in a private mount namespace
(nothing leaks to the host), then execs the command: $0 is the root, "$@" the command."""
ENV_DIR = "/run/agentpool-pod-env"
"""Where a pod's environment file is mounted (read-only, the pod's uid only)."""
ENV_FILE = "env.sh"
SOURCE_ENV = f'set -a && . {ENV_DIR}/{ENV_FILE} && set +a && exec "$@"'
KILL_NOW = signal.SIGUSR1
"""What container_guard.py takes for SIGKILL."""


CONTAINERENV = "run/.containerenv"
"""A file buildah binds in every run: made once, as a read-only root cannot take a new
mount point (the pod's /run stays the image's, read-only, as on a node)."""
MAX_SYMLINKS = 40


def resolve_inside(root: str, path: str) -> str:
    """`path` inside the container with its symlinks resolved against `root`, not the
    host's (`/var/run` -> `/run` is absolute: followed on the host it is the host's)."""
    parts = list(PurePosixPath(path).parts[1:])
    done: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            done = done[:-1]
            continue
        host = Path(root, *done, part)
        if not host.is_symlink():
            done.append(part)
            continue
        hops += 1
        if hops > MAX_SYMLINKS:
            raise OSError(f"too many symbolic links in {path}")
        target = PurePosixPath(os.readlink(host))
        if target.is_absolute():
            done = []
            parts = list(target.parts[1:]) + parts
        else:
            parts = list(target.parts) + parts
    return "/" + "/".join(done)


def buildah(*args: str, timeout: float = 300) -> str:
    """Run buildah on the project's storage (blocking); its stdout."""
    out = subprocess.run(
        [BUILDAH, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"buildah {' '.join(args)} failed: {out.stderr.strip()[-2000:]}")
    return out.stdout


def read_only_root_command(root: str, run: Sequence[str]) -> list[str]:
    """`run` (a `buildah run` command line) on a read-only bind of the container's root."""
    return ["unshare", "--mount", "sh", "-c", READ_ONLY_ROOT, root, *run]


def env_script(env: Mapping[str, str]) -> str:
    """A POSIX shell file setting `env` (any value: quoted)."""
    return "".join(f"{name}={shlex.quote(value)}\n" for name, value in sorted(env.items()))


def container_user(plan: PodPlan, image_user: str) -> str:
    """`uid:gid` as the kubelet resolves it: the container's securityContext over the
    pod's, else the image's USER."""
    image_uid, _, image_gid = image_user.partition(":")
    uid = plan.run_as_user if plan.run_as_user is not None else image_uid
    gid = plan.run_as_group if plan.run_as_group is not None else (image_gid or uid)
    return f"{uid}:{gid}"


@dataclass(frozen=True)
class ImageConfig:
    entrypoint: tuple[str, ...]
    user: str


@dataclass(frozen=True)
class PodContainer:
    """What one pod's `buildah run` needs from the runner."""

    host_root: Path
    """The pod's host directory (`volumes.py` wrote its mounts under it)."""
    user: str
    env_dir: Path


def _make_working_container(name: str, image: str) -> tuple[str, ImageConfig]:
    """`buildah from` and `mount` (blocking): its root on the host, and the image's config."""
    buildah("from", "--pull=never", "--name", name, image)
    root = buildah("mount", name).strip()
    Path(root, CONTAINERENV).touch()
    oci: dict[str, Any] = json.loads(buildah("inspect", "--type", "image", image))["OCIv1"][
        "config"
    ]
    entrypoint = tuple(oci.get("Entrypoint") or ())
    return root, ImageConfig(entrypoint=entrypoint, user=str(oci.get("User") or "0"))


@dataclass
class WorkingContainer:
    """The runner's working container of the agent image."""

    image: str
    name: str
    root: str
    config: ImageConfig
    remover: asyncio.subprocess.Process | None = None

    @classmethod
    async def create(cls, image: str) -> WorkingContainer:
        name = f"agentpool-pods-{secrets.token_hex(4)}"
        # The remover first: it removes the container when the runner stops or dies,
        # whatever happens below.
        remover = await asyncio.create_subprocess_exec(
            sys.executable,
            GUARD,
            f"--remove-container={name}",
            f"--buildah={BUILDAH}",
            f"--parent={os.getpid()}",
            stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C to the runner's group is the runner's
        )
        started = time.monotonic()
        root, config = await asyncio.to_thread(_make_working_container, name, image)
        seconds = round(time.monotonic() - started, 2)
        log.info("working container ready", image=image, container=name, seconds=seconds)
        return cls(image=image, name=name, root=root, config=config, remover=remover)

    async def remove(self) -> None:
        """Removed by its remover, once no run of it is left."""
        if self.remover is None or self.remover.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.remover.send_signal(signal.SIGTERM)
        await self.remover.wait()

    def make_mount_points(self, paths: Sequence[str]) -> None:
        """Directories for a pod's mounts in the shared root, made before a run binds it
        read-only (buildah cannot make them then). Empty and root-owned: harmless to the
        other pods."""
        for path in paths:
            inside = resolve_inside(self.root, path)
            Path(self.root, inside.lstrip("/")).mkdir(parents=True, exist_ok=True)

    def command(
        self, plan: PodPlan, pod: PodContainer, argv: Sequence[str], *, grace: float
    ) -> list[str]:
        """The guarded, read-only `buildah run` of `argv` in this pod's container."""
        run = [BUILDAH, "run", "--user", pod.user]
        for mount in plan.mounts:
            host = pod.host_root / mount.container_path.lstrip("/")
            suffix = ":ro" if mount.read_only else ""
            # Resolved here: buildah follows an absolute symlink (/var/run -> /run) on
            # the host when it makes a mount point.
            inside = resolve_inside(self.root, mount.container_path)
            run += ["--volume", f"{host}:{inside}{suffix}"]
        run += ["--volume", f"{pod.env_dir}:{ENV_DIR}:ro"]
        run += [self.name, "--", "/bin/sh", "-c", SOURCE_ENV, "sh", *argv]
        guard = [sys.executable, GUARD, f"--grace={grace}", f"--container={self.name}"]
        return [*guard, f"--parent={os.getpid()}", "--", *read_only_root_command(self.root, run)]

    def entrypoint_argv(self, plan: PodPlan, args: Sequence[str]) -> list[str]:
        """What the container runs: its `command` if set, else the image's entry point."""
        command = list(self.config.entrypoint) if plan.image_entrypoint else list(plan.command)
        return [*command, *args]


@dataclass
class ContainerProcess:
    """A guarded `buildah run`: the parts of asyncio's Process the runner uses. SIGTERM
    reaches the container's tini; `kill()` has the guard SIGKILL everything."""

    proc: asyncio.subprocess.Process

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    async def wait(self) -> int:
        return await self.proc.wait()

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(KILL_NOW if sig == signal.SIGKILL else sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


async def start_container_process(command: Sequence[str], log_path: Path) -> ContainerProcess:
    with log_path.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # a signal to the runner is not one to the pods
        )
    return ContainerProcess(proc)


def chown_tree(path: Path, user: str) -> None:
    """The pod's files to its uid:gid, as the kubelet hands volumes to the pod's user
    (fsGroup); the modes stay (files 0600, directories 0700)."""
    uid, _, gid = user.partition(":")
    for dirpath, dirnames, filenames in os.walk(path):
        os.chown(dirpath, int(uid), int(gid))
        for name in [*dirnames, *filenames]:
            os.chown(os.path.join(dirpath, name), int(uid), int(gid), follow_symlinks=False)
