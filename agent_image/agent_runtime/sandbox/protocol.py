"""One sandboxed call on the wire: a `RunRequest` in, a `RunOutcome` out, each one JSON document.

Stdlib only: the supervisor imports this on every call, and its start-up time is the
sandbox's per-call overhead. The runtime, the tool-runner and the supervisor all speak
it (over a pipe, or one Unix-socket connection per call: request, then outcome, then EOF).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

MAX_REQUEST_BYTES = 1 << 20
"""A request is the rendered argv and env: a megabyte is far more than any real one."""

OUTCOME_OVERHEAD_BYTES = 64 << 10
"""What an outcome adds to its two capped streams (JSON escaping is counted separately)."""

ErrorKind = Literal["refused", "timeout", "failed"]


class ProtocolError(ValueError):
    """A document that is not a valid request or outcome."""


@dataclass(frozen=True, slots=True)
class RunLimits:
    """Kernel limits for the program (setrlimit), as the tool definition sets them."""

    cpu_seconds: int
    memory_bytes: int
    file_size_bytes: int
    processes: int


@dataclass(frozen=True, slots=True)
class RunRequest:
    """Run `argv` (argv[0] an absolute path) once, in a fresh private directory."""

    argv: list[str]
    timeout_seconds: float
    max_output_bytes: int
    limits: RunLimits
    env: dict[str, str] = field(default_factory=dict)
    working_dir: str | None = None

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> RunRequest:
        """Parse and check a request; `ProtocolError` says what is wrong."""
        if len(raw) > MAX_REQUEST_BYTES:
            raise ProtocolError(f"request larger than {MAX_REQUEST_BYTES} bytes")
        try:
            doc = json.loads(raw)
        except ValueError as exc:
            raise ProtocolError(f"request is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise ProtocolError("request is not a JSON object")
        argv = doc.get("argv")
        if (
            not isinstance(argv, list)
            or not argv
            or not all(isinstance(a, str) and "\x00" not in a for a in argv)
        ):
            raise ProtocolError("argv must be a non-empty list of strings without NUL bytes")
        if not argv[0].startswith("/"):
            raise ProtocolError("argv[0] must be an absolute path")
        env = doc.get("env", {})
        if not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and "\x00" not in k + v and "=" not in k
            for k, v in env.items()
        ):
            raise ProtocolError("env must map names to strings")
        working_dir = doc.get("working_dir")
        if working_dir is not None and (
            not isinstance(working_dir, str) or not working_dir.startswith("/")
        ):
            raise ProtocolError("working_dir must be an absolute path")
        limits = doc.get("limits")
        if not isinstance(limits, dict):
            raise ProtocolError("limits must be an object")
        try:
            run_limits = RunLimits(**{name: _count(limits, name) for name in RunLimits.__slots__})
        except ProtocolError as exc:
            raise ProtocolError(f"limits: {exc}") from None
        return cls(
            argv=argv,
            timeout_seconds=_positive_number(doc, "timeout_seconds"),
            max_output_bytes=_count(doc, "max_output_bytes"),
            limits=run_limits,
            env=env,
            working_dir=working_dir,
        )


def _positive_number(doc: dict[str, Any], name: str) -> float:
    value = doc.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolError(f"{name} must be a number")
    if not math.isfinite(value) or value <= 0:
        raise ProtocolError(f"{name} must be a positive finite number")
    return float(value)


def _count(doc: dict[str, Any], name: str) -> int:
    value = doc.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProtocolError(f"{name} must be a non-negative integer")
    return value


@dataclass(frozen=True, slots=True)
class RunResult:
    """How the program ended and what it printed (each stream capped)."""

    exit_code: int | None
    signal: int | None
    stdout: str
    stderr: str
    truncated: bool
    duration_seconds: float


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """Either a result or an error (`kind`, `message`): exactly one is set."""

    result: RunResult | None = None
    error_kind: ErrorKind | None = None
    error_message: str = ""

    def to_json(self) -> bytes:
        if self.result is not None:
            return json.dumps({"result": asdict(self.result)}).encode()
        return json.dumps(
            {"error": {"kind": self.error_kind, "message": self.error_message}}
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> RunOutcome:
        try:
            doc = json.loads(raw)
            if "result" in doc:
                return cls(result=RunResult(**doc["result"]))
            error = doc["error"]
            kind = error["kind"]
            if kind not in ("refused", "timeout", "failed"):
                raise ProtocolError(f"unknown error kind {kind!r}")
            return cls(error_kind=kind, error_message=str(error["message"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ProtocolError(f"not a sandbox outcome: {exc}") from None

    @classmethod
    def refused(cls, message: str) -> RunOutcome:
        return cls(error_kind="refused", error_message=message)

    @classmethod
    def failed(cls, message: str) -> RunOutcome:
        return cls(error_kind="failed", error_message=message)
