"""Landlock: the unprivileged Linux LSM that confines the program of one call.

Written here (ctypes over three syscalls) because the product needs exactly this and no
maintained Python binding covers signal scoping. A ruleset is built in the supervisor;
the child applies it between fork and exec (`restrict`), so each call is its own Landlock
domain:

- filesystem: read and execute beneath the system directories, read and write only
  beneath the call's own directories. Another call's directory, the runner's socket and
  every other path are out of reach, even for a program with the same uid.
- signals (ABI 6, Linux 6.12+): the program can signal only processes of its own domain,
  so not the supervisor, the runner, or another call's program.
- abstract Unix sockets (ABI 6): only those created inside the domain.

Best effort: on a kernel without Landlock, `Ruleset.build` returns None and the caller
reports it (the uid boundary still holds; see docs/security.md).
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass

_SYS_CREATE_RULESET = 444
_SYS_ADD_RULE = 445
_SYS_RESTRICT_SELF = 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

EXECUTE = 1 << 0
WRITE_FILE = 1 << 1
READ_FILE = 1 << 2
READ_DIR = 1 << 3
REFER = 1 << 13  # ABI 2
TRUNCATE = 1 << 14  # ABI 3
IOCTL_DEV = 1 << 15  # ABI 5
_FILE_ONLY = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1  # ABI 6

READ_ONLY = EXECUTE | READ_FILE | READ_DIR

SYSTEM_READ_PATHS = (
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc",
    "/opt",
    "/proc",
    "/dev",
)
"""What a program may read and execute: the image's software, never /tmp, /run or /var."""

DEVICES = ("/dev/null", "/dev/zero", "/dev/random", "/dev/urandom", "/dev/tty")


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # the kernel's struct is __attribute__((packed))
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def abi_version() -> int:
    """The kernel's Landlock ABI, 0 when Landlock is absent or disabled."""
    version = _libc.syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), _CREATE_RULESET_VERSION)
    return max(int(version), 0)


def _all_fs_rights(abi: int) -> int:
    rights = (1 << 13) - 1  # ABI 1: EXECUTE .. MAKE_SYM
    if abi >= 2:
        rights |= REFER
    if abi >= 3:
        rights |= TRUNCATE
    if abi >= 5:
        rights |= IOCTL_DEV
    return rights


@dataclass(frozen=True, slots=True)
class Ruleset:
    """A built ruleset (its file descriptor is close-on-exec); apply it with `restrict`."""

    fd: int
    abi: int

    @classmethod
    def build(cls, *, read: list[str], write: list[str]) -> Ruleset | None:
        """Read+execute beneath `read` (and the system paths), everything beneath `write`."""
        abi = abi_version()
        if abi < 1:
            return None
        handled = _all_fs_rights(abi)
        attr = _RulesetAttr(
            handled_access_fs=handled,
            handled_access_net=0,
            scoped=(SCOPE_SIGNAL | SCOPE_ABSTRACT_UNIX_SOCKET) if abi >= 6 else 0,
        )
        size = ctypes.sizeof(_RulesetAttr) if abi >= 6 else 8  # older kernels: fs field only
        fd = int(_libc.syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0))
        if fd < 0:
            return None
        try:
            for path in [*SYSTEM_READ_PATHS, *read]:
                _add(fd, path, READ_ONLY)
            for path in DEVICES:
                _add(fd, path, READ_FILE | WRITE_FILE)
            for path in write:
                _add(fd, path, handled)
        except BaseException:
            os.close(fd)
            raise
        return cls(fd=fd, abi=abi)

    def restrict(self) -> None:
        """Confine the calling process (and everything it starts) for good. Fork-safe."""
        if _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
        if _libc.syscall(_SYS_RESTRICT_SELF, self.fd, 0) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self")

    def close(self) -> None:
        os.close(self.fd)


def _add(ruleset_fd: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # a system path this image does not have
    try:
        if not os.path.isdir(path):
            rights &= _FILE_ONLY
        attr = _PathBeneathAttr(allowed_access=rights, parent_fd=fd)
        if _libc.syscall(_SYS_ADD_RULE, ruleset_fd, _RULE_PATH_BENEATH, ctypes.byref(attr), 0):
            raise OSError(ctypes.get_errno(), f"landlock_add_rule({path})")
    finally:
        os.close(fd)
