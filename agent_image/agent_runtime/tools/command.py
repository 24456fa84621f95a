"""Command tools: run an allow-listed program in a sandbox, never through a shell.

What the sandbox guarantees, and how:

- argv only: the program is started with `execve` directly (no shell), so `;`, `|`,
  `$(...)`, backticks and globs in arguments are just bytes.
- The binary is the template's literal `argv[0]`, which must be on `allowedBinaries`; it
  is resolved once, at build time, to an absolute real path (searched on a fixed
  `PATH`), so neither the environment nor the model can swap it.
- Each `{placeholder}` is filled from one schema-validated argument and stays inside its
  own argv element. A value that would make its element start with `-` (option
  injection) is refused unless a literal `--` came earlier; absolute paths and `..`
  components are refused unless the tool sets `allowPaths`; NUL bytes are refused.
- A minimal environment (`PATH`, `LANG`, `HOME`/`TMPDIR` = the working directory, plus
  the tool's literal `env`), stdin from /dev/null, and a fresh temporary working
  directory, deleted afterwards.
- Kernel limits in the child (setrlimit): CPU seconds, address space, file size, process
  count, no core dumps. When the runtime runs as root the command runs as `nobody`, so
  it can neither undo the limits nor touch the runtime's files.
- Its own session and process group; on the wall-clock timeout, or once output passes
  `maxOutputBytes`, the whole group is killed, and any stragglers are killed after exit.
- stdout and stderr are read while the program runs and capped; the exit status (or the
  signal that ended it) is reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import shutil
import signal
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from time import perf_counter
from typing import Any

from agent_runtime.config.tools import CommandImplementation, CommandLimits
from agent_runtime.tools.errors import CommandRefusedError, ToolConfigError, ToolTimeoutError
from agent_runtime.tools.tool import CallContext

SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
NOBODY = 65534
_CHUNK = 64 << 10
_REAP_SECONDS = 5.0
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_FORBIDDEN_ENV = re.compile(r"^(LD_|PATH$)")


@dataclass(frozen=True, slots=True)
class CommandResult:
    """How the program ended and what it printed (each stream capped)."""

    exit_code: int | None
    signal: int | None
    stdout: str
    stderr: str
    truncated: bool
    duration_seconds: float

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape the model sees."""
        return {
            "exitCode": self.exit_code,
            "signal": self.signal,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "truncated": self.truncated,
        }


def resolve_binaries(tool: str, allowed: list[str]) -> dict[str, str]:
    """Each allow-listed binary (name or absolute path) -> its absolute real path."""
    resolved: dict[str, str] = {}
    for entry in allowed:
        found = entry if entry.startswith("/") else shutil.which(entry, path=SAFE_PATH)
        if found is None or not os.access(found, os.X_OK) or not Path(found).is_file():
            raise ToolConfigError(
                f"tool {tool!r}: allowed binary {entry!r} is not an executable file "
                f"(searched {SAFE_PATH})"
            )
        real = os.path.realpath(found)
        resolved[entry] = real
        resolved[entry.rsplit("/", 1)[-1]] = real
    return resolved


def _scalar(tool: str, name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise CommandRefusedError(tool, f"argument {name!r} must be a string, number or boolean")


def _checked(tool: str, name: str, value: str, allow_paths: bool) -> str:
    if "\x00" in value:
        raise CommandRefusedError(tool, f"argument {name!r} contains a NUL byte")
    if not allow_paths and (value.startswith("/") or ".." in PurePosixPath(value).parts):
        raise CommandRefusedError(
            tool, f"argument {name!r} is a path outside the working directory: {value!r}"
        )
    return value


def render_argv(tool: str, spec: CommandImplementation, arguments: Mapping[str, Any]) -> list[str]:
    """The template's arguments filled in (without argv[0]); `CommandRefusedError` if unsafe.

    An element whose placeholders' arguments are all absent is left out (optional flags
    like `--limit={limit}`); one with only some of them is refused.
    """
    out: list[str] = []
    options_ended = False
    for element in spec.argv[1:]:
        names = _PLACEHOLDER.findall(element)
        if not names:
            out.append(element)
            options_ended = options_ended or element == "--"
            continue
        absent = [n for n in names if n not in arguments]
        if len(absent) == len(names):
            continue  # an optional argument left out: so is its element
        if absent:
            raise CommandRefusedError(tool, f"missing arguments {absent} for {element!r}")
        filled = _PLACEHOLDER.sub(
            lambda m: _checked(
                tool, m.group(1), _scalar(tool, m.group(1), arguments[m.group(1)]), spec.allow_paths
            ),
            element,
        )
        if filled.startswith("-") and not element.startswith("-") and not options_ended:
            raise CommandRefusedError(
                tool,
                f"argument value {filled!r} starts with '-' and would be read as an option "
                "(refused; a template can put a literal '--' before it)",
            )
        out.append(filled)
    return out


def _user_tasks(uid: int) -> int:
    """Threads owned by `uid` now: what RLIMIT_NPROC counts against."""
    count = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        if int(fields.get("Uid", "-1").split()[0]) == uid:
            count += int(fields.get("Threads", "1").strip())
    return count


def _limit_setter(limits: CommandLimits, nproc: int) -> Any:
    def apply() -> None:  # runs in the child between fork and exec: keep it to syscalls
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_size_bytes, limits.file_size_bytes))
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class _Capture:
    """One output stream, read as it comes and capped."""

    def __init__(self, limit: int, on_overflow: Any) -> None:
        self.data = bytearray()
        self.truncated = False
        self._limit = limit
        self._on_overflow = on_overflow

    async def drain(self, stream: asyncio.StreamReader) -> None:
        """Read to EOF (so the pipe closes), keeping at most `limit` bytes."""
        while chunk := await stream.read(_CHUNK):
            if self.truncated:
                continue  # the group is being killed: discard until EOF
            room = self._limit - len(self.data)
            if len(chunk) > room:
                self.data += chunk[:room]
                self.truncated = True
                self._on_overflow()
            else:
                self.data += chunk


async def run_sandboxed(
    tool: str,
    argv: list[str],
    *,
    timeout_seconds: float,
    max_output_bytes: int,
    limits: CommandLimits,
    env: Mapping[str, str] | None = None,
) -> CommandResult:
    """Run `argv` (argv[0] an absolute path) under the sandbox described in the module doc."""
    workdir = tempfile.mkdtemp(prefix="agentpool-cmd-")
    as_root = os.geteuid() == 0
    uid = NOBODY if as_root else os.getuid()
    if as_root:
        os.chown(workdir, NOBODY, NOBODY)
    nproc = limits.processes + (0 if as_root else _user_tasks(uid))
    environment = {"PATH": SAFE_PATH, "LANG": "C.UTF-8", "HOME": workdir, "TMPDIR": workdir}
    environment.update(env or {})
    started = perf_counter()
    privileges: dict[str, Any] = (
        {"user": NOBODY, "group": NOBODY, "extra_groups": []} if as_root else {}
    )
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=workdir,
            env=environment,
            start_new_session=True,
            close_fds=True,
            preexec_fn=_limit_setter(limits, nproc),
            **privileges,
        )
    except OSError as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        raise CommandRefusedError(tool, f"could not start {argv[0]}: {exc}") from None
    assert process.stdout is not None
    assert process.stderr is not None
    pgid = process.pid  # start_new_session: the child leads its own group

    def overflow() -> None:
        _kill_group(pgid)

    out = _Capture(max_output_bytes, overflow)
    err = _Capture(max_output_bytes, overflow)
    drains = asyncio.gather(out.drain(process.stdout), err.drain(process.stderr))
    try:
        async with asyncio.timeout(timeout_seconds):
            await asyncio.shield(drains)
            returncode = await process.wait()
    except TimeoutError:
        _kill_group(pgid)
        raise ToolTimeoutError(tool, timeout_seconds, "command") from None
    finally:
        _kill_group(pgid)  # whatever the program left running in its group
        # With the group dead the pipes reach EOF; a grandchild that escaped the group
        # could hold them open, so the wait is bounded.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_REAP_SECONDS):
                await drains
                await process.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    return CommandResult(
        exit_code=returncode if returncode >= 0 else None,
        signal=-returncode if returncode < 0 else None,
        stdout=out.data.decode(errors="replace"),
        stderr=err.data.decode(errors="replace"),
        truncated=out.truncated or err.truncated,
        duration_seconds=perf_counter() - started,
    )


class CommandTool:
    """The implementation of one `command` tool definition."""

    def __init__(self, name: str, spec: CommandImplementation) -> None:
        self.name = name
        self.spec = spec
        bad_env = sorted(k for k in spec.env if _FORBIDDEN_ENV.match(k))
        if bad_env:
            raise ToolConfigError(f"tool {name!r}: env may not set {bad_env}")
        binaries = resolve_binaries(name, spec.allowed_binaries)
        wanted = spec.argv[0]
        self.binary = binaries.get(wanted) or binaries[wanted.rsplit("/", 1)[-1]]

    async def __call__(self, arguments: dict[str, Any], context: CallContext) -> Any:
        argv = [self.binary, *render_argv(self.name, self.spec, arguments)]
        result = await run_sandboxed(
            self.name,
            argv,
            timeout_seconds=self.spec.timeout_seconds,
            max_output_bytes=self.spec.max_output_bytes,
            limits=self.spec.limits,
            env=self.spec.env,
        )
        return result.as_dict()
