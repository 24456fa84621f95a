"""The per-call supervisor: `python -I -m agent_runtime.sandbox.supervise`.

Reads one `RunRequest` on stdin, runs the program, writes one `RunOutcome` on stdout.
One supervisor per call, so the call's process tree is exactly the supervisor's
descendants:

- it is a child subreaper (`PR_SET_CHILD_SUBREAPER`): whatever the program leaves
  behind — double forks, `setsid`, new process groups — is re-parented to it, not to
  PID 1 of the container;
- when the program exits, times out, or floods its output, every descendant is killed
  with SIGKILL and reaped (`sweep`), so no process outlives its call and no zombie is
  left to count against a later call's process limit;
- the program gets argv only (no shell), a clean environment, stdin from /dev/null, a
  fresh private directory (0700, removed afterwards), kernel limits (setrlimit), its own
  session, and, where the kernel has it, a Landlock domain of its own (`landlock`).

Stdlib only and synchronous: it starts on every call, and it is the one process here
that forks with `preexec_fn`, which is only safe in a single-threaded process.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import resource
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from agent_runtime.sandbox.landlock import Ruleset
from agent_runtime.sandbox.protocol import (
    MAX_REQUEST_BYTES,
    ProtocolError,
    RunLimits,
    RunOutcome,
    RunRequest,
    RunResult,
)

SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
NOBODY = 65534
WORK_ROOT_ENV = "AGENTPOOL_SANDBOX_WORK_ROOT"
"""Where the per-call directories are made; default: the system temp directory (/tmp)."""

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_CHUNK = 64 << 10
_DRAIN_SECONDS = 2.0
_libc = ctypes.CDLL(None, use_errno=True)


class _CancelledError(Exception):
    """The parent asked this call to stop (SIGTERM), or died."""


def become_subreaper() -> None:
    if _libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def children() -> list[int]:
    """This process's children, zombies included (Linux: /proc/self/task/*/children)."""
    found: list[int] = []
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):
            found.extend(int(p) for p in (task / "children").read_text().split())
    return found


def sweep(on_reaped: Callable[[int, int], None]) -> None:
    """Kill every descendant and reap them all; `on_reaped(pid, status)` for each.

    Killing a child re-parents its own children to this subreaper, so the loop goes on
    until no child is left: ECHILD from waitpid is the only way out.
    """
    while True:
        for pid in children():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return
        on_reaped(pid, status)


def _user_tasks(uid: int) -> int:
    """Threads owned by `uid` now: what RLIMIT_NPROC counts against."""
    count = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(
                line.split(":", 1) for line in status.read_text().splitlines() if ":" in line
            )
        except OSError:
            continue
        if int(fields.get("Uid", "-1").split()[0]) == uid:
            count += int(fields.get("Threads", "1").strip())
    return count


def _preexec(limits: RunLimits, nproc: int, ruleset: Ruleset | None) -> Callable[[], None]:
    def apply() -> None:  # in the child between fork and exec: syscalls only
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_size_bytes, limits.file_size_bytes))
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if ruleset is not None:
            ruleset.restrict()

    return apply


def _remove(path: str) -> None:
    """Remove a call's directory even if the program made parts of it unreadable."""

    def unlock(function: object, failed: str, _exc: object) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(failed), stat.S_IRWXU)
            os.chmod(failed, stat.S_IRWXU)
        with contextlib.suppress(OSError):
            if os.path.isdir(failed) and not os.path.islink(failed):
                shutil.rmtree(failed, ignore_errors=True)
            else:
                os.unlink(failed)

    with contextlib.suppress(OSError):
        os.chmod(path, stat.S_IRWXU)
    shutil.rmtree(path, onerror=unlock)


class _Capture:
    def __init__(self, limit: int) -> None:
        self.data = bytearray()
        self.truncated = False
        self.limit = limit

    def add(self, chunk: bytes) -> bool:
        """Keep what fits; True when the cap was just passed."""
        if self.truncated:
            return False
        room = self.limit - len(self.data)
        if len(chunk) > room:
            self.data += chunk[:room]
            self.truncated = True
            return True
        self.data += chunk
        return False


def run(request: RunRequest, *, work_root: str | None = None) -> RunOutcome:
    """Run one call to its end (this process must be a subreaper with no other children)."""
    workdir = tempfile.mkdtemp(prefix="agentpool-cmd-", dir=work_root)
    try:
        return _run_in(request, workdir)
    finally:
        _remove(workdir)


def _run_in(request: RunRequest, workdir: str) -> RunOutcome:
    as_root = os.geteuid() == 0
    uid = NOBODY if as_root else os.getuid()
    if as_root:
        os.chown(workdir, NOBODY, NOBODY)
    cwd = request.working_dir or workdir
    if not os.path.isdir(cwd):
        return RunOutcome.refused(f"working directory {cwd} does not exist")
    binary = request.argv[0]
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        return RunOutcome.refused(f"{binary} is not an executable file here")
    writable = [workdir] if request.working_dir is None else [workdir, request.working_dir]
    ruleset = Ruleset.build(read=[os.path.dirname(os.path.realpath(binary))], write=writable)
    nproc = request.limits.processes + (0 if as_root else _user_tasks(uid))
    environment = {"PATH": SAFE_PATH, "LANG": "C.UTF-8", "HOME": workdir, "TMPDIR": workdir}
    environment.update(request.env)
    started = time.monotonic()
    try:
        process = subprocess.Popen(  # preexec_fn: safe, this process is single-threaded
            request.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=environment,
            start_new_session=True,
            close_fds=True,
            preexec_fn=_preexec(request.limits, nproc, ruleset),
            # As root the program runs as nobody: it can neither undo its limits nor
            # touch the supervisor's files.
            user=NOBODY if as_root else None,
            group=NOBODY if as_root else None,
            extra_groups=[] if as_root else None,
        )
    except OSError as exc:
        return RunOutcome.refused(f"could not start {binary}: {exc.strerror or exc}")
    except UnicodeEncodeError:
        return RunOutcome.refused("an argument or variable is not valid Unicode")
    except subprocess.SubprocessError as exc:  # the limits or Landlock could not be applied
        return RunOutcome.failed(f"could not confine {binary}: {exc}")
    finally:
        if ruleset is not None:
            ruleset.close()
    statuses: dict[int, int] = {}

    def reaped(pid: int, status: int) -> None:
        statuses[pid] = status

    timed_out = False
    try:
        timed_out, out, err = _pump(process, request, started)
    finally:
        sweep(reaped)  # whatever the program left, wherever it went
    process.returncode = 0  # reaped by `sweep`; stop Popen from waiting on it again
    if timed_out:
        return RunOutcome(error_kind="timeout", error_message=f"{request.timeout_seconds:g}")
    status = statuses.get(process.pid, 0)
    return RunOutcome(
        result=RunResult(
            exit_code=os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            signal=os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
            stdout=out.data.decode(errors="replace"),
            stderr=err.data.decode(errors="replace"),
            truncated=out.truncated or err.truncated,
            duration_seconds=time.monotonic() - started,
        )
    )


def _pump(
    process: subprocess.Popen[bytes], request: RunRequest, started: float
) -> tuple[bool, _Capture, _Capture]:
    """Read both streams until EOF; kill everything at the deadline or on overflow.

    The program's exit is watched through a pidfd: once it has exited its leftovers are
    killed at once, so a daemon that kept the pipes open cannot hold the call open.
    """
    assert process.stdout is not None
    assert process.stderr is not None
    captures = {process.stdout.fileno(): _Capture(request.max_output_bytes)}
    captures[process.stderr.fileno()] = _Capture(request.max_output_bytes)
    out, err = captures[process.stdout.fileno()], captures[process.stderr.fileno()]
    pidfd = os.pidfd_open(process.pid)
    selector = selectors.DefaultSelector()
    for fd in captures:
        os.set_blocking(fd, False)
        selector.register(fd, selectors.EVENT_READ)
    selector.register(pidfd, selectors.EVENT_READ)
    deadline = started + request.timeout_seconds
    open_streams = set(captures)
    exited = False
    try:
        # Until the program has exited (a program may close its streams before it exits)
        # and both streams are at EOF.
        while open_streams or not exited:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if not exited:
                    return True, out, err
                break
            for key, _ in selector.select(remaining):
                fd = int(key.fd)
                if fd == pidfd:
                    selector.unregister(pidfd)
                    _kill_descendants_but(process.pid)
                    exited = True
                    deadline = min(deadline, time.monotonic() + _DRAIN_SECONDS)
                    continue
                try:
                    chunk = os.read(fd, _CHUNK)
                except BlockingIOError:
                    continue
                if not chunk:
                    selector.unregister(fd)
                    open_streams.discard(fd)
                elif captures[fd].add(chunk):
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    _kill_descendants_but(None)
        return False, out, err
    finally:
        selector.close()
        os.close(pidfd)


def _kill_descendants_but(spare: int | None) -> None:
    """SIGKILL every live child but `spare` (an exited program, kept for its status).

    Their own children then come back to this subreaper and are swept at the end.
    """
    for pid in children():
        if pid != spare:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _cancel(signum: int, frame: FrameType | None) -> None:
    raise _CancelledError


def main() -> None:
    """Entry point: one request on stdin, one outcome on stdout, exit 0 when answered."""
    signal.signal(signal.SIGTERM, _cancel)
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    become_subreaper()
    try:
        raw = sys.stdin.buffer.read(MAX_REQUEST_BYTES + 1)
        try:
            request = RunRequest.from_json(raw)
        except ProtocolError as exc:
            outcome = RunOutcome.refused(str(exc))
        else:
            outcome = run(request, work_root=os.environ.get(WORK_ROOT_ENV))
    except _CancelledError:
        outcome = RunOutcome.failed("cancelled")
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EMFILE, errno.EAGAIN):
            raise
        outcome = RunOutcome.failed(f"sandbox out of resources: {exc}")
    sys.stdout.buffer.write(outcome.to_json())
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
