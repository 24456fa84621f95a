"""What the command sandbox costs per call, against a bare subprocess in the same run.

Subjects, each running `/bin/true` once per call, interleaved round by round:

- baseline: `asyncio.create_subprocess_exec` + `wait` (no limits, no sweep, no answer);
- the supervisor in-process (`run_supervised`): a Python supervisor process per call,
  then the program under limits and Landlock, the sweep, the JSON answer;
- the tool-runner over its Unix socket (`run_remote`): the same, plus one connection;
  the runner runs under this benchmark's uid (the uid switch costs nothing per call).

Latency, not throughput: each call is timed alone, with GAP_SECONDS of idle time before
it (what a tool call in an agent turn sees; the runner's spare supervisors refill in the
gap). ROUNDS rounds of CALLS calls per subject; the median over every call, p10-p90.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from agent_runtime.sandbox.client import run_remote
from agent_runtime.sandbox.protocol import RunLimits, RunRequest
from agent_runtime.sandbox.spawn import run_supervised

ROUNDS = 10
CALLS = 4
GAP_SECONDS = 0.2
REQUEST = RunRequest(
    argv=["/bin/true"],
    timeout_seconds=10,
    max_output_bytes=4096,
    limits=RunLimits(cpu_seconds=5, memory_bytes=256 << 20, file_size_bytes=1 << 20, processes=8),
)


async def bare() -> None:
    process = await asyncio.create_subprocess_exec("/bin/true")
    await process.wait()


async def supervised() -> None:
    outcome = await run_supervised(REQUEST)
    assert outcome.result is not None, outcome


def remote(socket: str) -> Callable[[], Awaitable[None]]:
    async def call() -> None:
        outcome = await run_remote(socket, REQUEST)
        assert outcome.result is not None, outcome

    return call


async def call_ms(subject: Callable[[], Awaitable[None]]) -> list[float]:
    times = []
    for _ in range(CALLS):
        await asyncio.sleep(GAP_SECONDS)
        started = time.perf_counter()
        await subject()
        times.append((time.perf_counter() - started) * 1000)
    return times


def spread(values: list[float]) -> str:
    deciles = statistics.quantiles(values, n=10)
    return f"{statistics.median(values):7.1f} ms  (p10-p90 {deciles[0]:.1f}-{deciles[-1]:.1f})"


async def measure(socket: str) -> None:
    subjects = {
        "bare subprocess (baseline)": bare,
        "supervisor, in-process": supervised,
        "tool-runner over the socket": remote(socket),
    }
    times: dict[str, list[float]] = {name: [] for name in subjects}
    for subject in subjects.values():
        await subject()  # warm up
    for _ in range(ROUNDS):
        for name, subject in subjects.items():
            times[name].extend(await call_ms(subject))
    base = statistics.median(times["bare subprocess (baseline)"])
    for name, values in times.items():
        ratio = statistics.median(values) / base
        print(f"{name:30} {spread(values)}  {ratio:5.1f}x baseline")


def main() -> None:
    load = os.getloadavg()[0]
    print(f"{ROUNDS} rounds x {CALLS} calls of /bin/true, each alone; load average {load:.2f}")
    with tempfile.TemporaryDirectory() as shared:
        socket = str(Path(shared, "runner.sock"))
        runner = subprocess.Popen(
            [sys.executable, "-m", "agent_runtime.sandbox.runner", f"--socket={socket}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while not Path(socket).is_socket():
                if time.monotonic() > deadline or runner.poll() is not None:
                    raise SystemExit("the tool-runner did not start")
                time.sleep(0.05)
            asyncio.run(measure(socket))
        finally:
            runner.terminate()
            runner.wait(timeout=10)


if __name__ == "__main__":
    main()
