"""Start one supervisor for one call and read its outcome (the asyncio side of `supervise`).

Both the tool-runner and a runtime started by hand (in-process mode) run calls this way.
The supervisor gets a minimal environment: whatever secrets the caller's environment
holds never reach it, so not the program either.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import sys
from pathlib import Path

import structlog

from agent_runtime.sandbox.protocol import (
    OUTCOME_OVERHEAD_BYTES,
    ProtocolError,
    RunOutcome,
    RunRequest,
)
from agent_runtime.sandbox.supervise import SAFE_PATH, WORK_ROOT_ENV

SUPERVISOR_MARGIN_SECONDS = 5.0
"""Time the supervisor has beyond the program's own timeout to sweep and answer."""
_STOP_SECONDS = 2.0
log = structlog.get_logger("agent_runtime.sandbox")


_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
"""Where `agent_runtime` is imported from in this process (site-packages in the image)."""


def supervisor_argv() -> list[str]:
    """This interpreter in isolated mode (`-I`: no PYTHON* variables, no user site, no
    current directory) without `site` (`-S`: the supervisor needs only the standard
    library, and skipping site-packages saves ~20% of its start-up), importing the
    supervisor from where this process found it."""
    code = (
        f"import sys; sys.path.insert(0, {_PACKAGE_ROOT!r}); "
        "from agent_runtime.sandbox.supervise import main; main()"
    )
    return [sys.executable, "-I", "-S", "-c", code]


def outcome_limit(request: RunRequest) -> int:
    """The largest outcome a well-behaved supervisor can write (JSON escapes up to 6x)."""
    return 2 * 6 * request.max_output_bytes + OUTCOME_OVERHEAD_BYTES


async def start_supervisor(*, work_root: str | None = None) -> asyncio.subprocess.Process:
    """A supervisor waiting for its one request on stdin; `OSError` if it cannot start."""
    env = {"PATH": SAFE_PATH, "LANG": "C.UTF-8"}
    if work_root is not None:
        env[WORK_ROOT_ENV] = work_root
    return await asyncio.create_subprocess_exec(
        *supervisor_argv(),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
        close_fds=True,
    )


async def run_supervised(request: RunRequest, *, work_root: str | None = None) -> RunOutcome:
    """Run `request` in a fresh supervisor; on cancellation the supervisor is stopped and
    sweeps the call's processes before it exits."""
    try:
        process = await start_supervisor(work_root=work_root)
    except OSError as exc:
        return RunOutcome.failed(f"could not start the sandbox supervisor: {exc}")
    return await converse(process, request)


async def converse(process: asyncio.subprocess.Process, request: RunRequest) -> RunOutcome:
    """Hand `request` to a waiting supervisor and read its outcome."""
    try:
        async with asyncio.timeout(request.timeout_seconds + SUPERVISOR_MARGIN_SECONDS):
            raw, _ = await process.communicate(request.to_json())
    except TimeoutError:
        await _stop(process)
        return RunOutcome.failed("the sandbox supervisor did not answer in time")
    except BaseException:
        await asyncio.shield(_stop(process))
        raise
    if len(raw) > outcome_limit(request):
        return RunOutcome.failed("the sandbox supervisor answered too much")
    try:
        return RunOutcome.from_json(raw)
    except ProtocolError:
        return RunOutcome.failed(
            f"the sandbox supervisor ended without an answer (exit status {process.returncode})"
        )


class SupervisorPool:
    """Supervisors started ahead of time, so a call does not wait for Python to start.

    Each supervisor still serves exactly one call and exits (one process tree per call);
    the pool only moves its start-up (~50-100 ms) off the call's path. A taken
    supervisor is replaced in the background.
    """

    def __init__(self, *, warm: int = 2, work_root: str | None = None) -> None:
        self.work_root = work_root
        self._target = warm
        self._ready: collections.deque[asyncio.subprocess.Process] = collections.deque()
        self._starting: set[asyncio.Task[None]] = set()
        self._closed = False

    async def run(self, request: RunRequest) -> RunOutcome:
        process = self._take()
        self._refill()
        if process is None:
            return await run_supervised(request, work_root=self.work_root)
        return await converse(process, request)

    def _take(self) -> asyncio.subprocess.Process | None:
        while self._ready:
            process = self._ready.popleft()
            if process.returncode is None:
                return process
        return None

    def _refill(self) -> None:
        missing = self._target - len(self._ready) - len(self._starting)
        for _ in range(max(0, missing) if not self._closed else 0):
            task = asyncio.create_task(self._start_one())
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)

    async def _start_one(self) -> None:
        try:
            process = await start_supervisor(work_root=self.work_root)
        except OSError as exc:
            log.warning("could not start a spare sandbox supervisor", error=str(exc))
            return
        if self._closed:
            await _stop(process)
        else:
            self._ready.append(process)

    def fill(self) -> None:
        """Start the spare supervisors now (the runner does it when it starts)."""
        self._refill()

    async def aclose(self) -> None:
        self._closed = True
        for task in list(self._starting):
            task.cancel()
        while self._ready:
            await _stop(self._ready.popleft())


async def _stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM (the supervisor sweeps its call), then SIGKILL if it does not go."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(_STOP_SECONDS):
            await process.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        await process.wait()
