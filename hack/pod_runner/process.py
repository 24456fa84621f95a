"""One pod's agent container, played by a process on this machine.

Start: write the pod's volumes under its own root, rewrite the config and arguments to
host paths and ports, start `agentpool-agent` with the pod's environment and name, probe
`/readyz` until it answers (then on the pod's readiness period). A process that exits
while its pod is wanted is restarted with a back-off, as the kubelet does.

Stop (the pod went away): out of the front at once (the endpoints controller's part),
then the pod's preStop hook (`agentpool-agent --drain`, which returns once the turns it
holds are done), then SIGTERM, then SIGKILL once the pod's grace period is spent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import structlog

from hack.pod_runner.fork_server import ForkedProcess, ForkServer
from hack.pod_runner.front import Backend, PoolFront
from hack.pod_runner.image import (
    ENV_DIR,
    ENV_FILE,
    ContainerProcess,
    PodContainer,
    WorkingContainer,
    chown_tree,
    container_user,
    env_script,
    start_container_process,
)
from hack.pod_runner.orphans import die_with_parent
from hack.pod_runner.plan import PodPlan
from hack.pod_runner.rewrite import (
    HostLayout,
    Resolver,
    rewrite_argv,
    rewrite_config,
    rewrite_string,
)
from hack.pod_runner.volumes import ClusterSources, pod_environment, write_volumes

log = structlog.get_logger(__name__)

BIN_DIR = Path(sys.executable).parent
"""Where `agentpool-agent` is installed (the venv the runner runs in)."""
PROXIES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
"""Passed on, so a model endpoint the user names is reachable the way it is from their
shell."""
PASSED_THROUGH = ("PATH", "LANG", "LC_ALL", *PROXIES)
"""What a container gets from its image rather than from the pod (plus proxies)."""
READY_PERIOD_SECONDS = 1.0
STARTUP_PROBE_SECONDS = 0.05
RESTART_BACKOFF_MAX_SECONDS = 30.0
SIGTERM_MINIMUM_SECONDS = 2.0
"""After an overrunning preStop hook the kubelet still gives SIGTERM this long."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


Handle = asyncio.subprocess.Process | ForkedProcess | ContainerProcess
"""A pod's process: a bare one, a forked one, or a guarded `buildah run`."""


def _executable(name: str) -> str:
    """An image command resolved to the venv's copy (`agentpool-agent`), else PATH."""
    local = BIN_DIR / name
    if local.exists():
        return str(local)
    return shutil.which(name) or name


@dataclass
class AgentProcess:
    """The process of one pod, its host files and its place in the pool's front."""

    plan: PodPlan
    workdir: Path
    """Where its log goes (`logs/NAMESPACE.POD.log`)."""
    roots: Path
    """Where its files go (`UID/` + container paths): short, as a Unix socket's path
    (the tool runner's, under /run/agentpool) may not exceed 107 characters."""
    front: PoolFront
    sources: ClusterSources
    resolve: Resolver
    seen_running_at: float = field(default_factory=time.time)
    """When the runner saw the pod Running (wall clock)."""
    ready_at: float | None = None
    """When /readyz first answered 200 (wall clock)."""
    port: int = 0
    restarts: int = 0
    last_exit: int | None = None
    stopping: bool = False
    stopped: bool = False
    error: str | None = None
    fork_server: ForkServer | None = None
    """Forks warm processes when set; else each process is started cold."""
    container: WorkingContainer | None = None
    """Image mode: the process runs in the agent image (`buildah run`; image.py)."""
    proc: Handle | None = None
    backend: Backend | None = None
    _task: asyncio.Task[None] | None = None
    _env: dict[str, str] = field(default_factory=dict)
    _pod_container: PodContainer | None = None
    _stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    _stopped_event: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def root(self) -> Path:
        return self.roots / self.plan.uid[:8]

    @property
    def log_path(self) -> Path:
        return self.workdir / "logs" / f"{self.plan.namespace}.{self.plan.name}.log"

    @property
    def layout(self) -> HostLayout:
        return HostLayout(str(self.root), tuple(m.container_path for m in self.plan.mounts))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"pod {self.plan.name}")

    # ------------------------------------------------------------------ preparing the pod

    def _prepare(self) -> tuple[list[str], dict[str, str]]:
        """Blocking: volumes, environment, config rewrite; the argv and env to start."""
        plan, layout = self.plan, self.layout
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        write_volumes(plan, self.root, self.sources)
        if self.container is not None:
            return self._prepare_image(self.container)
        args = rewrite_argv(
            plan.args, layout, container_port=plan.container_port, host_port=self.port
        )
        self._rewrite_config_files(_config_paths(args))
        env = {k: os.environ[k] for k in PASSED_THROUGH if k in os.environ}
        tmp = layout.host_path("/tmp") or str(self.root / "tmp")  # noqa: S108 - container path
        Path(tmp).mkdir(parents=True, exist_ok=True, mode=0o700)
        # The image's own environment (agent_image/Containerfile), then the pod's.
        env.update({"HOME": tmp, "TMPDIR": tmp, "PYTHONUNBUFFERED": "1"})
        env["HOSTNAME"] = plan.name  # a container's hostname is its pod's name
        for name, value in pod_environment(plan, self.sources).items():
            env[name] = rewrite_string(value, layout, self.resolve)
        if "AGENTPOOL_PORT" in env:
            env["AGENTPOOL_PORT"] = str(self.port)
        argv = [_executable(plan.command[0]), *plan.command[1:], *args]
        # The pod's network namespace is its own; here, only the loopback is ours.
        argv.append("--host=127.0.0.1")
        return argv, env

    def _prepare_image(self, container: WorkingContainer) -> tuple[list[str], dict[str, str]]:
        """Image mode: the container sees its mounts at their own paths, so only ports and
        cluster names move; the files go to the pod's uid; the env goes in a file."""
        plan = self.plan
        in_place = HostLayout(str(self.root), ())  # paths stay container paths
        args = rewrite_argv(
            plan.args, in_place, container_port=plan.container_port, host_port=self.port
        )
        on_host = [self.layout.host_path(path) for path in _config_paths(args)]
        self._rewrite_config_files([path for path in on_host if path], in_place)
        env = {k: os.environ[k] for k in PROXIES if k in os.environ}
        env["HOSTNAME"] = plan.name  # the image's PATH, HOME and the rest come with it
        for name, value in pod_environment(plan, self.sources).items():
            env[name] = rewrite_string(value, in_place, self.resolve)
        if "AGENTPOOL_PORT" in env:
            env["AGENTPOOL_PORT"] = str(self.port)
        env_dir = self.root / ".pod-env"
        env_dir.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(env_dir / ENV_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(env_script(env))
        user = container_user(plan, container.config.user)
        chown_tree(self.root, user)
        container.make_mount_points([*(m.container_path for m in plan.mounts), ENV_DIR])
        self._pod_container = PodContainer(host_root=self.root, user=user, env_dir=env_dir)
        argv = container.entrypoint_argv(plan, args)
        argv.append("--host=127.0.0.1")  # the host's network: only the loopback is ours
        return argv, env

    def _rewrite_config_files(self, paths: list[str], layout: HostLayout | None = None) -> None:
        """The runtime config files (host paths) with container paths and cluster names
        mapped (container paths left as they are with an image's `layout`)."""
        for path in paths:
            file = Path(path)
            if not file.is_file():
                continue
            document = json.loads(file.read_text())
            rewritten = rewrite_config(
                document, layout or self.layout, self.resolve, self.plan.namespace
            )
            file.write_text(json.dumps(rewritten, indent=2, ensure_ascii=False))

    # ------------------------------------------------------------------ running it

    async def _run(self) -> None:
        backoff = 1.0
        try:
            self.port = free_port()
            argv, env = await asyncio.to_thread(self._prepare)
            self._env = env
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            log.error("pod not started", pod=self.plan.name, error=self.error)
            return
        self.backend = Backend(self.plan.name, self.port)
        self.front.backends[self.plan.name] = self.backend
        while not self.stopping:
            self.proc = await self._spawn(argv, env)
            log.info("pod process started", pod=self.plan.name, port=self.port, pid=self.proc.pid)
            if self.stopping:  # stopped while it was being started: nothing to drain yet
                self.proc.terminate()
            await self._probe_until_exit(self.proc)
            if self.stopping:
                break
            self.restarts += 1
            self.last_exit = self.proc.returncode
            log.warning("pod process exited; restarting", pod=self.plan.name, backoff=backoff)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_event.wait(), timeout=backoff)
            backoff = min(backoff * 2, RESTART_BACKOFF_MAX_SECONDS)

    def _container_command(self, argv: list[str]) -> list[str]:
        assert self.container is not None
        assert self._pod_container is not None
        grace = max(float(self.plan.grace_seconds), SIGTERM_MINIMUM_SECONDS)
        return self.container.command(self.plan, self._pod_container, argv, grace=grace)

    async def _spawn(self, argv: list[str], env: dict[str, str]) -> Handle:
        if self.container is not None:
            return await start_container_process(self._container_command(argv), self.log_path)
        if self.fork_server is not None:
            return await self.fork_server.spawn(argv, env, env["HOME"], str(self.log_path))
        with self.log_path.open("ab") as out:
            return await asyncio.create_subprocess_exec(
                *argv,
                env=env,
                cwd=env["HOME"],
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # a signal to the runner is not one to the pods
                preexec_fn=die_with_parent,
            )

    async def _probe_until_exit(self, proc: Handle) -> None:
        backend = self.backend
        assert backend is not None
        url = f"{backend.url}{self.plan.readiness_path}"
        async with httpx.AsyncClient(timeout=2.0) as probe:
            while proc.returncode is None:
                try:
                    ready = (await probe.get(url)).status_code == 200
                except httpx.HTTPError:
                    ready = False
                if ready and self.ready_at is None:
                    self.ready_at = time.time()
                    log.info(
                        "pod process ready",
                        pod=self.plan.name,
                        seconds=round(self.ready_at - self.seen_running_at, 3),
                    )
                if ready != backend.ready:
                    backend.ready = ready
                    self.front.changed()
                period = READY_PERIOD_SECONDS if self.ready_at else STARTUP_PROBE_SECONDS
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), timeout=period)
        if backend.ready:
            backend.ready = False
            self.front.changed()

    # ------------------------------------------------------------------ stopping it

    async def stop(self, *, drain: bool = True) -> None:
        """The pod went away: out of the front, preStop, SIGTERM, SIGKILL at the deadline."""
        if self.stopping:
            await self.wait_stopped()
            return
        self.stopping = True
        self._stop_event.set()
        deadline = time.monotonic() + self.plan.grace_seconds
        if self.backend is not None:
            self.backend.draining = True
            self.front.changed()
        proc = self.proc
        if proc is not None and proc.returncode is None:
            if drain and self.plan.pre_stop:
                await self._pre_stop(deadline)
            await self._terminate(proc, deadline)
        if self._task is not None:
            await self._task
        self.front.backends.pop(self.plan.name, None)
        self.front.changed()
        shutil.rmtree(self.root, ignore_errors=True)  # Secrets and tokens do not outlive the pod
        self.stopped = True
        self._stopped_event.set()
        log.info("pod process stopped", pod=self.plan.name)

    async def wait_stopped(self) -> None:
        await self._stopped_event.wait()

    async def _pre_stop(self, deadline: float) -> None:
        assert self.plan.pre_stop is not None
        in_container = self.container is not None
        argv = rewrite_argv(
            self.plan.pre_stop,
            HostLayout(str(self.root), ()) if in_container else self.layout,
            container_port=self.plan.container_port,
            host_port=self.port,
        )
        hook: Handle
        if in_container:  # the hook runs in the pod's container, as the kubelet runs it
            hook = await start_container_process(self._container_command(argv), self.log_path)
        elif self.fork_server is not None and argv[0] == "agentpool-agent":
            # The hook runs in the pod, with its environment; forked, it skips the imports.
            argv[0] = _executable(argv[0])
            hook = await self.fork_server.spawn(
                argv, self._env, self._env["HOME"], str(self.log_path)
            )
        else:
            argv[0] = _executable(argv[0])
            with self.log_path.open("ab") as out:
                hook = await asyncio.create_subprocess_exec(
                    *argv,
                    env=self._env or None,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=asyncio.subprocess.STDOUT,
                )
        try:
            await asyncio.wait_for(hook.wait(), timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            log.warning("preStop hook overran the grace period", pod=self.plan.name)
            hook.kill()
            await hook.wait()

    async def _terminate(self, proc: Handle, deadline: float) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        left = max(SIGTERM_MINIMUM_SECONDS, deadline - time.monotonic())
        try:
            await asyncio.wait_for(proc.wait(), timeout=left)
        except TimeoutError:
            log.warning("grace period over: SIGKILL", pod=self.plan.name)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


def _config_paths(args: list[str]) -> list[str]:
    """The files `--config` names in the arguments."""
    paths = [a.split("=", 1)[1] for a in args if a.startswith("--config=")]
    paths += [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--config"]
    return paths
