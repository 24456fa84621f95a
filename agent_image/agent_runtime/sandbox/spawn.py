"""Start one supervisor for one call and read its outcome (the asyncio side of `supervise`).

Both the tool-runner and a runtime started by hand (in-process mode) run calls this way.
The supervisor gets a minimal environment: whatever secrets the caller's environment
holds never reach it, so not the program either.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

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


_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
"""Where `agent_runtime` is imported from in this process (site-packages in the image)."""


def supervisor_argv() -> list[str]:
    """This interpreter in isolated mode (`-I`: no PYTHON* variables, no user site, no
    current directory), importing the supervisor from where this process found it."""
    code = (
        f"import sys; sys.path.insert(0, {_PACKAGE_ROOT!r}); "
        "from agent_runtime.sandbox.supervise import main; main()"
    )
    return [sys.executable, "-I", "-c", code]


def outcome_limit(request: RunRequest) -> int:
    """The largest outcome a well-behaved supervisor can write (JSON escapes up to 6x)."""
    return 2 * 6 * request.max_output_bytes + OUTCOME_OVERHEAD_BYTES


async def run_supervised(request: RunRequest, *, work_root: str | None = None) -> RunOutcome:
    """Run `request` in a fresh supervisor; on cancellation the supervisor is stopped and
    sweeps the call's processes before it exits."""
    env = {"PATH": SAFE_PATH, "LANG": "C.UTF-8"}
    if work_root is not None:
        env[WORK_ROOT_ENV] = work_root
    try:
        process = await asyncio.create_subprocess_exec(
            *supervisor_argv(),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=env,
            close_fds=True,
        )
    except OSError as exc:
        return RunOutcome.failed(f"could not start the sandbox supervisor: {exc}")
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
