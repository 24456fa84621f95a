"""The command-tool boundary as a pod has it: the runtime and `agentpool-tool-runner` are
separate processes under different uids, talking over a Unix socket.

Each test starts the runner as uid 65533. A hostile program must not read the runtime's
environment or files, signal it, or see another call's files; and no process outlives
its call, however it tried to escape (double fork, new session).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_runtime.config.tools import ToolsConfig
from agent_runtime.sandbox import landlock
from agent_runtime.tools.build import build_registry
from agent_runtime.tools.errors import ToolTimeoutError
from agent_runtime.tools.registry import ToolRegistry
from tests.support.identity import CONTEXT
from tests.support.tool_runner import (
    RUNNER_UID,
    RUNTIME_UID,
    RunningRunner,
    private_dir,
    processes_of,
    skip_reason,
    tool_runner,
)
from tests.support.wait import async_wait_until, wait_until

REPO = Path(__file__).resolve().parents[2]
PYTHON = "/usr/bin/python3"


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[RunningRunner]:
    reason = skip_reason()
    if reason is not None:
        print(f"skipped: {reason}")  # the reason, in the output too
        pytest.skip(reason)
    with tool_runner(tmp_path / "runner.log") as running:
        yield running


def python_tool(name: str, *, timeout: float = 10, **command: Any) -> dict[str, Any]:
    return {
        "name": name,
        "parameters": {
            "type": "object",
            "properties": {"code": {"type": "string"}},
            "required": ["code"],
        },
        "command": {
            "argv": ["python3", "-c", "{code}"],
            "allowedBinaries": [PYTHON],
            "timeoutSeconds": timeout,
            "maxOutputBytes": 64 << 10,
            "allowPaths": True,  # the attacks name absolute paths on purpose
            **command,
        },
        "resilience": {"retry": {"enabled": False}, "circuitBreaker": {"enabled": False}},
    }


def shell_tool(name: str, script: str, **command: Any) -> dict[str, Any]:
    return {
        "name": name,
        "parameters": {"type": "object", "properties": {}},
        "command": {"argv": ["sh", "-c", script], "allowedBinaries": ["sh"], **command},
        "resilience": {"retry": {"enabled": False}, "circuitBreaker": {"enabled": False}},
    }


@pytest.fixture
async def registry(runner: RunningRunner) -> AsyncIterator[ToolRegistry]:
    """Tools that run in the runner, called from this (root) test process."""
    config = ToolsConfig.model_validate(
        {
            "commandRunner": {"socket": runner.socket},
            "definitions": [python_tool("py"), python_tool("py_quick", timeout=0.5)],
        }
    )
    built = await build_registry(config, strict=True)
    yield built
    await built.aclose()


ATTACK = """
import json, os, signal
pid = int("RUNTIME_PID")
seen = {"uid": os.getuid(), "env": dict(os.environ)}
def attempt(name, action):
    try:
        seen[name] = ["done", action()]
    except Exception as exc:
        seen[name] = [type(exc).__name__, str(exc)]
attempt("environ", lambda: open(f"/proc/{pid}/environ", "rb").read().decode("latin-1"))
attempt("secret_file", lambda: open(SECRET_FILE).read())
attempt("cwd_of_runtime", lambda: os.listdir(f"/proc/{pid}/cwd"))
attempt("signal_runtime", lambda: os.kill(pid, signal.SIGTERM))
attempt("probe_runtime", lambda: os.kill(pid, 0))
attempt("signal_supervisor", lambda: os.kill(os.getppid(), signal.SIGKILL))
attempt("list_calls", lambda: os.listdir(WORK_ROOT))
print(json.dumps(seen))
"""

NEIGHBOUR = """
import os, time
open("neighbour-note", "w").write("mine, not yours")
print(os.getcwd())
time.sleep(1.5)
"""


def probe_runtime(job: dict[str, Any], secret: str, tmp_path: Path) -> dict[str, Any]:
    """Run `runtime_probe.py` as the runtime's uid with `secret` in its environment."""
    env = {"PATH": "/usr/bin:/bin", "AGENTPOOL_TEST_SECRET": secret, "HOME": "/nonexistent"}
    done = subprocess.run(
        [sys.executable, str(REPO / "tests/support/runtime_probe.py"), f"--uid={RUNTIME_UID}"],
        input=json.dumps(job).encode(),
        env=env,
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    report: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])  # logs come first
    return report


def test_a_command_cannot_reach_the_runtime_or_another_call(
    runner: RunningRunner, tmp_path: Path
) -> None:
    secret = f"s3cret-{uuid.uuid4().hex}"
    home = private_dir(RUNTIME_UID, "agentpool-runtime-")
    secret_file = Path(home, "token")
    secret_file.write_text(secret)
    os.chown(secret_file, RUNTIME_UID, RUNTIME_UID)
    secret_file.chmod(0o600)
    os.chmod(tmp_path, 0o755)
    attack = ATTACK.replace("SECRET_FILE", repr(str(secret_file))).replace(
        "WORK_ROOT", repr(runner.work_root)
    )
    job = {
        "socket": runner.socket,
        "definitions": [python_tool("py")],
        "calls": [{"tool": "py", "arguments": {"code": attack}}],
        "together": [
            {"tool": "py", "arguments": {"code": NEIGHBOUR}},
            {"tool": "py", "arguments": {"code": attack}},
        ],
    }
    try:
        report = probe_runtime(job, secret, tmp_path)
    finally:
        secret_file.unlink()
        os.rmdir(home)
    assert report["uid"] == RUNTIME_UID
    alone = report["calls"][0]
    assert "value" in alone, alone
    assert secret not in json.dumps(report), "the secret reached a command"
    seen = json.loads(alone["value"]["stdout"])
    assert seen["uid"] == RUNNER_UID
    assert set(seen["env"]) == {"PATH", "LANG", "HOME", "TMPDIR"}
    assert seen["environ"][0] == "PermissionError"
    assert seen["secret_file"][0] == "PermissionError"
    assert seen["cwd_of_runtime"][0] == "PermissionError"
    assert seen["signal_runtime"][0] == "PermissionError"
    assert seen["probe_runtime"][0] == "PermissionError"
    # The runtime survived the attempts (it answered after them).
    neighbour, spy = report["together"]
    assert neighbour["value"]["exitCode"] == 0, neighbour
    spied = json.loads(spy["value"]["stdout"])
    assert spied["uid"] == RUNNER_UID
    abi = landlock.abi_version()
    if abi >= 1:  # same uid as the neighbour: only Landlock keeps them apart
        assert spied["list_calls"][0] == "PermissionError", spied["list_calls"]
    if abi >= 6:
        assert seen["signal_supervisor"][0] == "PermissionError"
    assert runner.process.poll() is None, runner.logs()
    assert os.listdir(runner.work_root) == []  # every call's directory is gone


DAEMON = "setsid sleep {marker} </dev/null >/dev/null 2>&1 & echo started"


def leftovers(marker: str) -> list[tuple[int, str, str]]:
    return [p for p in processes_of(RUNNER_UID) if marker in p[2]]


async def test_a_call_leaves_no_process_behind_even_after_200_calls(
    runner: RunningRunner,
) -> None:
    marker = f"{uuid.uuid4().int % 9000 + 1000}.{uuid.uuid4().int % 1000}"
    config = ToolsConfig.model_validate(
        {
            "commandRunner": {"socket": runner.socket},
            "definitions": [
                shell_tool("daemon", DAEMON.format(marker=marker), limits={"processes": 4})
            ],
        }
    )
    registry = await build_registry(config, strict=True)
    try:
        for _ in range(200):
            result = await registry.call("daemon", {}, context=CONTEXT)
            assert result.value["exitCode"] == 0, result.value
            assert result.value["stdout"] == "started\n"
            assert not leftovers(marker), "a daemon outlived its call"
    finally:
        await registry.aclose()
    after = processes_of(RUNNER_UID)
    # Only the runner and its spare supervisors (waiting for a call) are left.
    lingering = [p for p in after if p[0] != runner.process.pid and "sandbox.supervise" not in p[2]]
    assert not lingering, after
    assert not [p for p in after if p[1] == "Z"], after
    assert os.listdir(runner.work_root) == []


async def test_a_timed_out_call_is_killed_with_its_escaped_children(
    registry: ToolRegistry, runner: RunningRunner
) -> None:
    marker = f"escape-{uuid.uuid4().hex}"
    code = (
        f"import os, time  # {marker}\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    os.setpgid(0, 0) if False else None\n"
        "    time.sleep(60)\n"
        "time.sleep(60)\n"
    )
    with pytest.raises(ToolTimeoutError, match=r"command timed out after 0\.5s"):
        await registry.call("py_quick", {"code": code}, context=CONTEXT)
    wait_until(lambda: not leftovers(marker), timeout=5, what="the call's processes to die")


async def test_a_caller_that_gives_up_stops_the_call(
    registry: ToolRegistry, runner: RunningRunner
) -> None:
    marker = f"abandoned-{uuid.uuid4().hex}"
    call = asyncio.create_task(
        registry.call("py", {"code": f"import time  # {marker}\ntime.sleep(60)"}, context=CONTEXT)
    )

    async def started() -> bool:
        return bool(leftovers(marker))

    await async_wait_until(started, timeout=10, what="the program to start")
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    wait_until(lambda: not leftovers(marker), timeout=10, what="the abandoned call to be killed")
    assert runner.process.poll() is None


async def test_the_working_dir_is_honoured(runner: RunningRunner) -> None:
    workdir = private_dir(RUNNER_UID, "agentpool-workdir-")
    try:
        config = ToolsConfig.model_validate(
            {
                "commandRunner": {"socket": runner.socket},
                "definitions": [
                    shell_tool("here", "pwd; echo made > made-here", workingDir=workdir)
                ],
            }
        )
        registry = await build_registry(config, strict=True)
        try:
            result = await registry.call("here", {}, context=CONTEXT)
        finally:
            await registry.aclose()
        assert result.value["stdout"] == f"{workdir}\n", result.value
        with open(os.path.join(workdir, "made-here")) as made:  # noqa: ASYNC230 - a tiny file
            assert made.read() == "made\n"
    finally:
        shutil.rmtree(workdir)


async def test_an_unreachable_runner_is_a_transport_error(tmp_path: Path) -> None:
    config = ToolsConfig.model_validate(
        {
            "commandRunner": {"socket": str(tmp_path / "nobody-listens.sock")},
            "definitions": [shell_tool("echo", "echo hi")],
        }
    )
    registry = await build_registry(config, strict=True)
    try:
        with pytest.raises(Exception, match="cannot be reached") as caught:
            await registry.call("echo", {}, context=CONTEXT)
    finally:
        await registry.aclose()
    assert getattr(caught.value, "kind", None) == "transport"


def test_a_uid_not_allowed_is_refused(tmp_path: Path) -> None:
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    with tool_runner(tmp_path / "runner.log", allowed_uids=(RUNTIME_UID,)) as running:
        from agent_runtime.sandbox.client import run_remote
        from agent_runtime.sandbox.protocol import RunLimits, RunRequest

        request = RunRequest(
            argv=["/bin/true"],
            timeout_seconds=5,
            max_output_bytes=100,
            limits=RunLimits(cpu_seconds=1, memory_bytes=64 << 20, file_size_bytes=0, processes=4),
        )
        outcome = asyncio.run(run_remote(running.socket, request))
    assert outcome.error_kind == "refused"
    assert "uid 0 may not use this tool-runner" in outcome.error_message
