"""The errors of the tool layer. Each carries a `kind` that breakers and retries act on.

The HTTP API maps them to statuses: `ToolNotFoundError` 404, `ToolValidationError` 422,
refusals (`CircuitOpenError`, `BulkheadFullError`, `RateLimitedError`) 503/429, the rest 502.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent_runtime.config.tools import ErrorKind
from agent_runtime.credentials import TenantForbiddenError, TenantRequiredError
from agent_runtime.memory.errors import InvalidMemoryError
from agent_runtime.resilience.breaker import CircuitOpenError
from agent_runtime.resilience.limits import BulkheadFullError, RateLimitedError


class ToolError(Exception):
    """A tool call failed; `kind` says how."""

    kind: ErrorKind = "execution"

    def __init__(self, tool: str, message: str, *, kind: ErrorKind | None = None) -> None:
        self.tool = tool
        if kind is not None:
            self.kind = kind
        super().__init__(f"tool {tool!r}: {message}")


class ToolNotFoundError(LookupError):
    """No tool of that name is registered."""

    def __init__(self, tool: str, known: list[str]) -> None:
        self.tool = tool
        super().__init__(
            f"no tool named {tool!r}; registered: {', '.join(sorted(known)) or 'none'}"
        )


class ToolConfigError(ValueError):
    """A tool definition cannot be built (bad schema, missing secret, unknown binary...)."""


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    """One schema violation: where (`$.items[0].name`), which rule (`type`), and why."""

    path: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message} (rule: {self.rule})"


class ToolValidationError(ToolError):
    """The arguments (or the result) do not match the tool's JSON Schema."""

    kind: ErrorKind = "client"

    def __init__(
        self, tool: str, issues: list[ValidationIssue], *, what: str = "arguments"
    ) -> None:
        self.issues = issues
        detail = "; ".join(str(issue) for issue in issues)
        super().__init__(tool, f"invalid {what}: {detail}")


class ToolTimeoutError(ToolError, TimeoutError):
    """The call, or one attempt, ran out of time."""

    kind: ErrorKind = "timeout"

    def __init__(self, tool: str, seconds: float, scope: str = "call") -> None:
        self.seconds = seconds
        self.scope = scope
        super().__init__(tool, f"{scope} timed out after {seconds:g}s")


class ToolTransportError(ToolError):
    """The dependency could not be reached (connection refused, reset, DNS...)."""

    kind: ErrorKind = "transport"


class ToolConnectError(ToolTransportError):
    """Nothing accepted the connection (refused, no route): for a Service, no ready
    endpoint behind it."""


class ToolHttpStatusError(ToolError):
    """The dependency answered with an error status."""

    def __init__(self, tool: str, status: int, body: str) -> None:
        self.status = status
        self.body = body
        kind: ErrorKind = (
            "rateLimited" if status == 429 else "server" if status >= 500 else "client"
        )
        super().__init__(tool, f"HTTP {status}: {body[:200]}", kind=kind)


class ToolResponseTooLargeError(ToolError):
    """The response exceeded the tool's size cap."""

    kind: ErrorKind = "responseTooLarge"

    def __init__(self, tool: str, limit: int) -> None:
        self.limit = limit
        super().__init__(tool, f"response larger than {limit} bytes")


class ToolArgumentRefusedError(ToolValidationError):
    """The arguments match the schema but are unsafe for this tool (a path that escapes,
    an option injection): invalid input like any other, so nothing was sent or started."""

    def __init__(self, tool: str, message: str, *, argument: str | None = None) -> None:
        path = "$" if argument is None else f"$.{argument}"
        super().__init__(tool, [ValidationIssue(path=path, rule="refused", message=message)])


class CommandRefusedError(ToolArgumentRefusedError):
    """The command sandbox refused to run the call (nothing was started)."""


REFUSALS: tuple[type[Exception], ...] = (
    CircuitOpenError,
    BulkheadFullError,
    RateLimitedError,
    ToolNotFoundError,
)
"""Errors that mean the call was refused before anything was attempted."""

CALLER_ERRORS: tuple[type[Exception], ...] = (
    InvalidMemoryError,
    TenantForbiddenError,
    TenantRequiredError,
)
"""Errors in what the caller sent: they say nothing about the dependency, so they are of
kind `client` and never count against a breaker other tenants share."""


def error_kind(error: BaseException) -> ErrorKind | None:
    """How a failure counts for breakers and retries; None for refusals (nothing was tried)."""
    if isinstance(error, ToolError):
        return error.kind
    if isinstance(error, REFUSALS):
        return None
    if isinstance(error, CALLER_ERRORS):
        return "client"
    if isinstance(error, TimeoutError):
        return "timeout"
    if isinstance(error, ConnectionError):
        return "transport"
    return "execution"
