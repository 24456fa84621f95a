"""How the runtime's errors become HTTP answers: a status and a body that says what failed.

Pure, so the whole table is unit-tested. Anything not listed is a 500, and that is a bug.
"""

from __future__ import annotations

import math
from typing import Any

from agent_runtime.memory.errors import (
    CorruptRecordError,
    InvalidMemoryError,
    StoreUnavailableError,
)
from agent_runtime.resilience.breaker import CircuitOpenError
from agent_runtime.resilience.fallback import FallbackExhaustedError
from agent_runtime.resilience.limits import BulkheadFullError, RateLimitedError
from agent_runtime.tasks.errors import (
    CorruptTaskError,
    IdempotencyConflictError,
    InvalidTaskError,
    TaskNotFoundError,
    TasksDisabledError,
    TaskTooLargeError,
)
from agent_runtime.tools.errors import ToolError, ToolNotFoundError, ToolValidationError


def error_response(exc: BaseException) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, JSON body, headers) for an error raised while serving a request."""
    body: dict[str, Any] = {"error": {"type": type(exc).__name__, "message": str(exc)}}
    headers: dict[str, str] = {}
    status = 500
    if isinstance(exc, ToolNotFoundError | TaskNotFoundError | TasksDisabledError):
        status = 404
    elif isinstance(exc, IdempotencyConflictError):
        status = 409
    elif isinstance(exc, TaskTooLargeError):
        status = 413
    elif isinstance(exc, InvalidTaskError):
        status = 422
    elif isinstance(exc, ToolValidationError | InvalidMemoryError):
        status = 422
        if isinstance(exc, ToolValidationError):
            body["error"]["issues"] = [
                {"path": i.path, "rule": i.rule, "message": i.message} for i in exc.issues
            ]
    elif isinstance(exc, RateLimitedError):
        status = 429
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    elif isinstance(exc, CircuitOpenError):
        status = 503
        headers["Retry-After"] = str(max(1, math.ceil(exc.args[1])))
    elif isinstance(exc, BulkheadFullError | StoreUnavailableError):
        status = 503
    elif isinstance(
        exc, ToolError | FallbackExhaustedError | CorruptRecordError | CorruptTaskError
    ):
        status = 502  # the dependency (and every fallback) failed, not this runtime
    return status, body, headers
