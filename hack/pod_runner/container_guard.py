"""The parent of one `buildah run`: the container's processes end when it says so, and
when the pod runner dies, however it dies.

Under chroot isolation a container's processes are host processes, and `buildah run`
does not keep them: killed, it leaves `buildah-chroot-exec`, tini and the runtime
running, parented to init (measured: SIGKILL to buildah, the runtime went on). This
guard is a child subreaper, so whatever `buildah run` leaves is re-parented to the guard
and stays in reach; and it asks for SIGTERM when its own parent (the runner) dies.

    python hack/pod_runner/container_guard.py --grace 30 --container NAME -- COMMAND...

- SIGTERM (from the runner, or the runner's death): SIGTERM to the container's init
  (`/usr/bin/tini`, which forwards it to the runtime as PID 1 does on a node; not to
  `buildah run`, which would kill tini outright and orphan the runtime); whatever is
  left `--grace` seconds later is killed.
- SIGUSR1 (the runner's grace period is over): SIGKILL to every process under the guard.
- It exits once no process is left under it, with the status of `COMMAND`.

`--remove-container NAME` instead runs nothing: on SIGTERM (or the runner's death) it
waits until no guard of that container is left, then removes the working container.

Run by path, not with `-m`: it uses the standard library only, so it starts in tens of
milliseconds instead of importing the runner's package.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
INIT = "/usr/bin/tini"
KILL_NOW = signal.SIGUSR1
"""The runner's SIGKILL, passed on: the guard itself must live to kill the others."""
REMOVE_WAIT_SECONDS = 3600.0
"""Each guard ends on its own, a grace period after SIGTERM (a pool's can be minutes:
its longest turn); this only bounds a guard that somehow never does."""
_SIGNALS = {signal.SIGTERM, KILL_NOW, signal.SIGCHLD}


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option})")


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def descendants(pid: int) -> list[int]:
    """Every live descendant of `pid`, parents before children (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses.
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    queue = [pid]
    while queue:
        for child in children.get(queue.pop(0), []):
            found.append(child)
            queue.append(child)
    return found


def _signal(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _unblock() -> None:
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def guard(command: list[str], grace: float) -> int:
    """Run `command` under this subreaper until nothing is left; its exit status."""
    child = subprocess.Popen(command, preexec_fn=_unblock)  # the guard has one thread
    status: int | None = None
    kill_at: float | None = None
    killing = False
    me = os.getpid()
    while True:
        while True:  # reap: `command` and whatever was re-parented here
            try:
                pid, raw = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return status if status is not None else 1
            if pid == 0:
                break
            if pid == child.pid:
                status = os.waitstatus_to_exitcode(raw)
        if killing:
            _signal(descendants(me), signal.SIGKILL)
        timeout = 1.0 if kill_at is None else max(0.0, min(1.0, kill_at - time.monotonic()))
        info = signal.sigtimedwait(_SIGNALS, timeout)
        if kill_at is not None and time.monotonic() >= kill_at:
            killing = True
        if info is None or info.si_signo == signal.SIGCHLD:
            continue
        if info.si_signo == KILL_NOW:
            killing = True
        elif info.si_signo == signal.SIGTERM and kill_at is None:
            kill_at = time.monotonic() + grace
            tree = descendants(me)
            inits = [pid for pid in tree if _cmdline(pid)[:1] == [INIT]]
            # No init yet: the container is still being set up and nothing in it can
            # shut down in order; it goes at once.
            if inits:
                _signal(inits, signal.SIGTERM)
            else:
                killing = True


def _guards_of(container: str) -> list[int]:
    flag = f"--container={container}"
    return [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and flag in _cmdline(int(entry.name))
    ]


def remove_when_done(container: str, buildah: str) -> int:
    """Wait for SIGTERM (or the runner's death), then for the container's guards to end,
    then remove the working container."""
    signal.sigwait({signal.SIGTERM})
    deadline = time.monotonic() + REMOVE_WAIT_SECONDS
    while _guards_of(container) and time.monotonic() < deadline:
        time.sleep(0.2)
    out = subprocess.run([buildah, "rm", container], capture_output=True, check=False)
    return out.returncode


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="container_guard.py")
    parser.add_argument("--grace", type=float, default=30.0)
    parser.add_argument("--container", default="", help="the working container (for ps)")
    parser.add_argument("--remove-container", default=None)
    parser.add_argument("--buildah", default="buildah")
    parser.add_argument("--parent", type=int, default=None, help="exit if this pid is gone")
    parser.add_argument("command", nargs="*")
    args = parser.parse_args(argv)
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if args.parent is not None and os.getppid() != args.parent:
        os.kill(os.getpid(), signal.SIGTERM)  # the runner died before the line above
    if args.remove_container is not None:
        return remove_when_done(args.remove_container, args.buildah)
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    return guard(args.command, args.grace)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
