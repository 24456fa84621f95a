"""Command tools: run an allow-listed program in the sandbox, never through a shell.

This module turns a call into a `RunRequest` (the argv, checked) and hands it to the
sandbox (`agent_runtime.sandbox`):

- with `tools.commandRunner.socket` set (what the operator renders), to the tool-runner:
  a separate container of the pod, under another uid, with no secrets. That is the
  boundary: see docs/security.md, "The command-tool sandbox".
- unset (a runtime started by hand), to a supervisor process of this runtime. The
  program still gets argv only, a clean environment, limits and a private directory,
  and its leftovers are killed; but it runs with the runtime's uid (or `nobody` when
  the runtime is root), so it is **not** a boundary against a hostile program.

What the argv rendering guarantees:

- argv only: `;`, `|`, `$(...)`, backticks and globs in arguments are just bytes.
- The binary is the template's literal `argv[0]`, which must be on `allowedBinaries`; it
  is resolved once, at build time, to an absolute real path (searched on a fixed `PATH`).
- Each `{placeholder}` is filled from one schema-validated argument and stays inside its
  own argv element. A value that would make its element start with `-` (option
  injection) is refused unless a literal `--` came earlier; NUL bytes are refused.
- The path check applies to the assembled element (and to the value of an
  `--option=value` element), not to each value alone: unless the tool sets `allowPaths`,
  a `..` component, or an absolute path that the template did not start with, is refused.
- An absent optional argument drops its element only when that cannot shift the others:
  an option element (`--limit={n}`), or positional elements at the very end.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import structlog

from agent_runtime.config.tools import CommandImplementation
from agent_runtime.sandbox.client import run_remote
from agent_runtime.sandbox.errors import SandboxUnavailableError
from agent_runtime.sandbox.protocol import RunLimits, RunOutcome, RunRequest
from agent_runtime.sandbox.spawn import run_supervised
from agent_runtime.sandbox.supervise import SAFE_PATH
from agent_runtime.tools.errors import (
    CommandRefusedError,
    ToolConfigError,
    ToolError,
    ToolTimeoutError,
    ToolTransportError,
)
from agent_runtime.tools.tool import CallContext

log = structlog.get_logger("agent_runtime.tools")

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_FORBIDDEN_ENV = re.compile(r"^(LD_|PATH$)")


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
        text = str(value)
        if "\x00" in text:
            raise CommandRefusedError(tool, f"argument {name!r} contains a NUL byte", argument=name)
        try:
            text.encode()
        except UnicodeEncodeError:  # a lone surrogate: no argv can carry it
            raise CommandRefusedError(
                tool, f"argument {name!r} is not valid Unicode", argument=name
            ) from None
        return text
    raise CommandRefusedError(
        tool, f"argument {name!r} must be a string, number or boolean", argument=name
    )


def _literal_prefix(template: str) -> str:
    match = _PLACEHOLDER.search(template)
    return template if match is None else template[: match.start()]


def check_path(tool: str, template: str, filled: str) -> None:
    """Refuse an assembled element that reaches outside the working directory.

    The candidates are the whole element and, for `--option=value`, the value; each must
    have no `..` component and may be absolute only if its template text was.
    """
    candidates = [(template, filled)]
    prefix = _literal_prefix(template)
    if "=" in prefix:  # --option={value}: the path is what follows the first '='
        cut = prefix.index("=") + 1
        candidates.append((template[cut:], filled[cut:]))
    for part_template, part in candidates:
        absolute_by_template = _literal_prefix(part_template).startswith("/")
        if ".." in PurePosixPath(part).parts or (part.startswith("/") and not absolute_by_template):
            raise CommandRefusedError(
                tool, f"argument {filled!r} is a path outside the working directory"
            )


def _droppable(index: int, elements: list[str], present: Mapping[str, Any]) -> bool:
    """May element `index` (some argument absent) be left out without shifting others?"""
    if elements[index].startswith("-"):
        return True  # a self-contained option: --limit={n}, -n{n}
    return all(
        _PLACEHOLDER.search(later) and not any(n in present for n in _PLACEHOLDER.findall(later))
        for later in elements[index + 1 :]
    )


def render_argv(tool: str, spec: CommandImplementation, arguments: Mapping[str, Any]) -> list[str]:
    """The template's arguments filled in (without argv[0]); `CommandRefusedError` if unsafe.

    An element whose placeholders' arguments are all absent is left out when that
    shifts nothing (see the module doc); otherwise, and when only some are absent, the
    call is refused.
    """
    elements = spec.argv[1:]
    out: list[str] = []
    options_ended = False
    for index, element in enumerate(elements):
        names = _PLACEHOLDER.findall(element)
        if not names:
            out.append(element)
            options_ended = options_ended or element == "--"
            continue
        absent = [n for n in names if n not in arguments]
        if absent and len(absent) == len(names) and _droppable(index, elements, arguments):
            continue
        if absent:
            raise CommandRefusedError(
                tool,
                f"missing arguments {absent} for {element!r} (leaving them out would shift "
                "the arguments after it)"
                if len(absent) == len(names)
                else f"missing arguments {absent} for {element!r}",
            )
        filled = _PLACEHOLDER.sub(
            lambda m: _scalar(tool, m.group(1), arguments[m.group(1)]), element
        )
        if not spec.allow_paths:
            check_path(tool, element, filled)
        if filled.startswith("-") and not element.startswith("-") and not options_ended:
            raise CommandRefusedError(
                tool,
                f"argument value {filled!r} starts with '-' and would be read as an option "
                "(refused; a template can put a literal '--' before it)",
            )
        out.append(filled)
    return out


class CommandTool:
    """The implementation of one `command` tool definition."""

    def __init__(
        self, name: str, spec: CommandImplementation, *, runner_socket: str | None = None
    ) -> None:
        self.name = name
        self.spec = spec
        self.runner_socket = runner_socket
        bad_env = sorted(k for k in spec.env if _FORBIDDEN_ENV.match(k))
        if bad_env:
            raise ToolConfigError(f"tool {name!r}: env may not set {bad_env}")
        binaries = resolve_binaries(name, spec.allowed_binaries)
        wanted = spec.argv[0]
        self.binary = binaries.get(wanted) or binaries[wanted.rsplit("/", 1)[-1]]
        if runner_socket is None:
            log.warning(
                "command tool runs in this runtime's own sandbox supervisor: not a security "
                "boundary (set tools.commandRunner; docs/security.md)",
                tool=name,
            )

    def request(self, arguments: Mapping[str, Any]) -> RunRequest:
        """The sandbox request for one call; `CommandRefusedError` if the argv is unsafe."""
        limits = self.spec.limits
        return RunRequest(
            argv=[self.binary, *render_argv(self.name, self.spec, arguments)],
            timeout_seconds=self.spec.timeout_seconds,
            max_output_bytes=self.spec.max_output_bytes,
            limits=RunLimits(
                cpu_seconds=limits.cpu_seconds,
                memory_bytes=limits.memory_bytes,
                file_size_bytes=limits.file_size_bytes,
                processes=limits.processes,
            ),
            env=dict(self.spec.env),
            working_dir=self.spec.working_dir,
        )

    async def __call__(self, arguments: dict[str, Any], context: CallContext) -> Any:
        request = self.request(arguments)
        try:
            if self.runner_socket is not None:
                outcome = await run_remote(self.runner_socket, request)
            else:
                outcome = await run_supervised(request)
        except SandboxUnavailableError as exc:
            raise ToolTransportError(self.name, str(exc)) from None
        return self._result(outcome)

    def _result(self, outcome: RunOutcome) -> dict[str, Any]:
        if outcome.result is not None:
            result = outcome.result
            return {
                "exitCode": result.exit_code,
                "signal": result.signal,
                "stdout": result.stdout,
                "stderr": result.stderr,
                "truncated": result.truncated,
            }
        if outcome.error_kind == "refused":
            # Not the caller's arguments (those were checked here): the deployment (a
            # binary missing in the runner, a workingDir that does not exist, a uid not
            # allowed), so a failure of the dependency, not a 4xx.
            raise ToolError(self.name, f"the sandbox refused the call: {outcome.error_message}")
        if outcome.error_kind == "timeout":
            raise ToolTimeoutError(self.name, self.spec.timeout_seconds, "command")
        raise ToolError(self.name, f"the sandbox failed: {outcome.error_message}")
