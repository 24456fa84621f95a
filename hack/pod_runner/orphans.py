"""Pod processes die with whoever started them.

A runner stopped in order stops its pods (preStop, SIGTERM). One that is killed (a test's
timeout, a crash, `kill -9`) used to leave its agent processes running for good, parented
to init. The kernel's parent-death signal closes that: each pod process (and the fork
server) asks for SIGKILL when its parent goes. Linux only, as the runner is.
"""

from __future__ import annotations

import ctypes
import signal

_PR_SET_PDEATHSIG = 1
# Loaded in the parent: the child (between fork and exec) only calls into it.
_LIBC = ctypes.CDLL(None, use_errno=True)


def die_with_parent() -> None:
    """Ask the kernel for SIGKILL when this process's parent exits (run in the child)."""
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
