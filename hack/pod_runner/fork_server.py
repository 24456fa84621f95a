"""Warm starts: a process that has imported the agent runtime once and forks a child per
pod, so a pod's process skips the runtime's imports (seconds of CPU on this machine).

Opt-in (`--fork-server`): a forked child is the same program with the same arguments,
environment and files as a cold one, but it did not pay Python's start-up, so its
start-up time is the runtime's own, not a container's. The server is the runner's child;
each pod's process is the server's child, so the server reports exits and the runner
signals the pid directly.

Protocol (JSON lines): the runner writes `{"id", "argv", "env", "cwd", "log"}` and reads
`{"id", "pid"}` back, then `{"pid", "exit"}` once that child has exited.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import selectors
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hack.pod_runner.orphans import die_with_parent

REAP_SECONDS = 0.05
REPO_ROOT = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------- the server


def _child(request: dict[str, Any]) -> None:
    """In the forked child: become the pod's process and never return."""
    code = 1
    try:
        os.setsid()  # a signal to the runner or the server is not one to the pods
        die_with_parent()  # but the server's death is (it follows the runner's)
        fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        sys.argv = list(request["argv"])
        from agent_runtime.main import main

        main(sys.argv[1:])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    """The server's loop: fork on request, report pids and exits (runs as `__main__`)."""
    import agent_runtime.main  # noqa: F401 - the point: imported once, before any fork

    out = sys.stdout
    selector = selectors.DefaultSelector()
    selector.register(0, selectors.EVENT_READ)
    pending = b""
    while True:
        # os.read, not sys.stdin: a buffered reader would keep a burst of requests in its
        # buffer where select() cannot see them.
        for _ in selector.select(timeout=REAP_SECONDS):
            chunk = os.read(0, 1 << 16)
            if not chunk:  # the runner went away
                return
            pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            request = json.loads(line)
            out.flush()
            pid = os.fork()
            if pid == 0:
                _child(request)
            out.write(json.dumps({"id": request["id"], "pid": pid}) + "\n")
            out.flush()
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            out.write(json.dumps({"pid": pid, "exit": os.waitstatus_to_exitcode(status)}) + "\n")
            out.flush()


# ----------------------------------------------------------------------------- the client


@dataclass
class ForkedProcess:
    """A pod's process forked by the server: the parts of asyncio's Process we use."""

    pid: int
    _exited: asyncio.Future[int]

    @property
    def returncode(self) -> int | None:
        return self._exited.result() if self._exited.done() else None

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


@dataclass
class ForkServer:
    """The runner's handle on the server."""

    proc: asyncio.subprocess.Process | None = None
    _ids: int = 0
    _started: dict[int, asyncio.Future[int]] = field(default_factory=dict)
    _exits: dict[int, asyncio.Future[int]] = field(default_factory=dict)
    _reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            # Not `-m`: the package (imported first) already holds this module.
            "from hack.pod_runner.fork_server import serve; serve()",
            cwd=REPO_ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            preexec_fn=die_with_parent,
        )
        # Not waiting for its imports: requests queue in the pipe behind them.
        self._reader = asyncio.create_task(self._read())

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            await self.proc.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def spawn(
        self, argv: list[str], env: dict[str, str], cwd: str, log: str
    ) -> ForkedProcess:
        assert self.proc is not None
        assert self.proc.stdin is not None
        loop = asyncio.get_running_loop()
        self._ids += 1
        started: asyncio.Future[int] = loop.create_future()
        self._started[self._ids] = started
        request = {"id": self._ids, "argv": argv, "env": env, "cwd": cwd, "log": log}
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        await self.proc.stdin.drain()
        pid = await started
        exited = self._exits.setdefault(pid, loop.create_future())
        return ForkedProcess(pid, exited)

    async def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        loop = asyncio.get_running_loop()
        while line := await self.proc.stdout.readline():
            message = json.loads(line)
            if "id" in message:
                self._started.pop(message["id"]).set_result(message["pid"])
            else:
                found = self._exits.setdefault(message["pid"], loop.create_future())
                if not found.done():
                    found.set_result(message["exit"])
        # The server is gone: nothing waiting on it will be answered.
        for waiting in self._started.values():
            if not waiting.done():
                waiting.set_exception(RuntimeError("the fork server exited"))
