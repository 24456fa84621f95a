"""Start `agentpool-tool-runner` as a separate process under another uid, as a pod would.

Needs root (to start processes as other uids). The runner and its supervisors run on an
interpreter that other uids can execute: this venv's interpreter may live under /root,
so a system Python 3.11+ is used instead, importing this checkout and its site-packages
(the runner needs only the standard library and structlog).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import structlog

import agent_runtime
from tests.support.wait import wait_until

RUNNER_UID = 65533
"""The tool-runner container's uid in these tests (the runtime's image uses 65532)."""
RUNTIME_UID = 65532


def _others_can_execute(path: Path) -> bool:
    real = path.resolve()
    if not real.is_file() or not real.stat().st_mode & stat.S_IXOTH:
        return False
    return all(parent.stat().st_mode & stat.S_IXOTH for parent in real.parents)


def interpreter_for_other_uids() -> str | None:
    """A Python >= 3.11 that a non-root uid can run, or None."""
    for candidate in (sys.executable, "/usr/bin/python3.11", "/usr/bin/python3"):
        path = Path(candidate)
        if not path.exists() or not _others_can_execute(path):
            continue
        version = subprocess.run(
            [str(path), "-c", "import sys; print(sys.version_info >= (3, 11))"],
            capture_output=True,
            text=True,
            check=False,
        )
        if version.stdout.strip() == "True":
            return str(path)
    return None


def skip_reason() -> str | None:
    """Why these tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "the tool-runner tests start processes under other uids: run them as root"
    if interpreter_for_other_uids() is None:
        return "no Python >= 3.11 that a non-root uid can execute"
    return None


def import_paths() -> list[str]:
    """Where a system interpreter finds this checkout's runtime and structlog."""
    return [
        str(Path(agent_runtime.__file__).resolve().parents[1]),
        str(Path(structlog.__file__).resolve().parents[1]),
    ]


def as_uid(uid: int) -> dict[str, object]:
    """Popen keyword arguments that start a process as `uid` (and its group)."""
    return {"user": uid, "group": uid, "extra_groups": []}


def private_dir(owner: int, prefix: str) -> str:
    """A fresh 0700 directory under /tmp owned by `owner`."""
    path = tempfile.mkdtemp(prefix=prefix)
    os.chown(path, owner, owner)
    return path


@dataclass
class RunningRunner:
    process: subprocess.Popen[bytes]
    socket: str
    work_root: str
    log: Path

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@contextlib.contextmanager
def tool_runner(
    log: Path, *, allowed_uids: tuple[int, ...] = (0, RUNTIME_UID)
) -> Iterator[RunningRunner]:
    """The runner as `RUNNER_UID`, its socket in a directory like the pod's emptyDir."""
    interpreter = interpreter_for_other_uids()
    assert interpreter is not None, skip_reason()
    shared = private_dir(RUNNER_UID, "agentpool-runner-")
    os.chmod(shared, 0o755)  # the runtime's uid must reach the socket
    work_root = os.path.join(shared, "calls")
    os.mkdir(work_root, 0o700)
    os.chown(work_root, RUNNER_UID, RUNNER_UID)
    socket = os.path.join(shared, "runner.sock")
    code = (
        f"import sys; sys.path[:0] = {import_paths()!r}; "
        "from agent_runtime.sandbox.runner import main; main()"
    )
    argv = [interpreter, "-I", "-c", code, f"--socket={socket}", f"--work-root={work_root}"]
    argv += [f"--allowed-uid={uid}" for uid in allowed_uids]
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv,
            env={"PATH": "/usr/bin:/bin", "AGENTPOOL_LOG_FORMAT": "json"},
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd="/",
            **as_uid(RUNNER_UID),  # type: ignore[arg-type]
        )
    runner = RunningRunner(process, socket, work_root, log)
    try:

        def listening() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"the runner exited:\n{runner.logs()}")
            return Path(socket).is_socket()

        wait_until(listening, timeout=30, what="the tool-runner socket")
        yield runner
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(shared, ignore_errors=True)


def processes_of(uid: int) -> list[tuple[int, str, str]]:
    """(pid, state, command line) of every process owned by `uid`."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(
                line.split(":", 1) for line in status.read_text().splitlines() if ":" in line
            )
            cmdline = (status.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(fields["Uid"].split()[0]) == uid:
            found.append((int(status.parent.name), fields["State"].split()[0], cmdline))
    return found
