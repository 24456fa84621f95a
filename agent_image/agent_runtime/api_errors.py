"""How the runtime's errors become HTTP answers: a status and a body that says what failed.

Pure, so the whole table is unit-tested. Anything not listed is a 500, and that is a bug.
"""

from __future__ import annotations

import math
from typing import Any

from agent_runtime.agent.admission import AtCapacityError, DrainingError
from agent_runtime.agent.conversations import ConversationBusyError, ConversationNotFoundError
from agent_runtime.agent.model import ModelUnavailableError
from agent_runtime.conversation.store import ConflictError
from agent_runtime.memory.errors import (
    CorruptRecordError,
    InvalidMemoryError,
    StoreUnavailableError,
)
from agent_runtime.resilience.breaker import CircuitOpenError
from agent_runtime.resilience.fallback import FallbackExhaustedError
from agent_runtime.resilience.limits import BulkheadFullError, RateLimitedError
from agent_runtime.tools.errors import ToolError, ToolNotFoundError, ToolValidationError


class InvalidRequestError(ValueError):
    """A request whose body parsed but cannot be served as asked (HTTP 422)."""


class NoAgentError(LookupError):
    """This runtime has no model configured, so it serves tools and memory but no turns."""

    def __init__(self) -> None:
        super().__init__("this runtime has no model configured (model: null); it runs no turns")


def error_response(exc: BaseException) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, JSON body, headers) for an error raised while serving a request."""
    body: dict[str, Any] = {"error": {"type": type(exc).__name__, "message": str(exc)}}
    headers: dict[str, str] = {}
    status = 500
    if isinstance(exc, ToolNotFoundError | ConversationNotFoundError | NoAgentError):
        status = 404
    elif isinstance(exc, ConversationBusyError | ConflictError):
        status = 409  # one writer per conversation: the second turn is refused, not forked
    elif isinstance(exc, AtCapacityError):
        status = 503
        headers["Retry-After"] = "1"
    elif isinstance(exc, DrainingError | ModelUnavailableError):
        status = 503
    elif isinstance(exc, ToolValidationError | InvalidMemoryError | InvalidRequestError):
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
    elif isinstance(exc, ToolError | FallbackExhaustedError | CorruptRecordError):
        status = 502  # the dependency (and every fallback) failed, not this runtime
    return status, body, headers
