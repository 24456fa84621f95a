"""How the runtime's errors become HTTP answers: a status and a body that says what failed.

Every error the API returns has one shape::

    {"error": {"type": "<ErrorType>", "message": "<what failed>", ...}}

Pure, so the whole table is unit-tested. Anything not listed is a 500, and that is a
bug. Messages are chosen for callers: they never name another tool, a Redis key or a
secret (the full error is in the runtime's log).
"""

from __future__ import annotations

import math
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from agent_runtime.agent.admission import AtCapacityError, DrainingError
from agent_runtime.agent.approval import (
    AlreadyDecidedError,
    ApprovalPendingError,
    HeldCallNotFoundError,
)
from agent_runtime.agent.conversations import ConversationBusyError, ConversationNotFoundError
from agent_runtime.agent.model import ModelUnavailableError
from agent_runtime.conversation.store import ConflictError
from agent_runtime.credentials import (
    AuthenticationError,
    CredentialsUnavailableError,
    TenantForbiddenError,
    TenantRequiredError,
)
from agent_runtime.memory.errors import (
    AgentMemoryError,
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
    TaskError,
    TaskNotFoundError,
    TasksDisabledError,
    TaskTooLargeError,
)
from agent_runtime.tools.errors import (
    CommandRefusedError,
    ToolError,
    ToolNotFoundError,
    ToolTimeoutError,
    ToolValidationError,
)

WWW_AUTHENTICATE = 'Bearer realm="agentpool"'


class InvalidRequestError(ValueError):
    """A request whose body parsed but cannot be served as asked (HTTP 422)."""


class NoAgentError(LookupError):
    """This runtime has no model configured, so it serves tools and memory but no turns."""

    def __init__(self) -> None:
        super().__init__("this runtime has no model configured (model: null); it runs no turns")


HANDLED: tuple[type[Exception], ...] = (
    AuthenticationError,
    TenantForbiddenError,
    TenantRequiredError,
    CredentialsUnavailableError,
    ToolError,
    ToolNotFoundError,
    CircuitOpenError,
    BulkheadFullError,
    RateLimitedError,
    FallbackExhaustedError,
    AgentMemoryError,
    TaskError,
    RedisError,
    AtCapacityError,
    DrainingError,
    ModelUnavailableError,
    NoAgentError,
    InvalidRequestError,
)
"""The errors the table maps (the app registers a handler for each)."""

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {
                "type": {"type": "string"},
                "message": {"type": "string"},
                "issues": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "path": {"type": "string"},
                            "rule": {"type": "string"},
                            "message": {"type": "string"},
                        },
                    },
                },
            },
        }
    },
}
"""The JSON Schema of every error body (for the OpenAPI document)."""


STATUS_DESCRIPTIONS: dict[int, str] = {
    400: "The request could not be read.",
    401: "No credentials, or credentials not accepted.",
    403: "The credentials do not allow the tenant named.",
    404: "Not found.",
    409: "Conflicts with what is already there (an idempotency key used for other work, "
    "a turn already running on the conversation, tool calls waiting for approval, a call "
    "already decided).",
    408: "The body was not sent in time.",
    413: "The body is too large.",
    422: "The request is invalid (the issues say where).",
    429: "Rate limited (Retry-After says when to come back).",
    502: "A dependency answered with an error, or with something unusable.",
    503: "A dependency (Redis, the Kubernetes API) is unavailable, or a limit is full.",
    504: "The call ran out of time.",
}

ALWAYS: frozenset[int] = frozenset({400, 401, 408, 413, 422, 503})
"""What any authenticated route can answer (the edge, authentication, validation, Redis)."""


def openapi_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """A route's OpenAPI `responses`: `ALWAYS` plus `statuses`, each in the one shape.

    Use on every route: `@router.post("/v1/x", responses=openapi_responses(403, 404))`.
    """
    content = {"application/json": {"schema": ERROR_SCHEMA}}
    return {
        code: {"description": STATUS_DESCRIPTIONS[code], "content": content}
        for code in sorted(ALWAYS | set(statuses))
    }


def error_body(kind: str, message: str, **extra: Any) -> dict[str, Any]:
    """The one error shape."""
    return {"error": {"type": kind, "message": message, **extra}}


def error_response(exc: BaseException) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, JSON body, headers) for an error raised while serving a request."""
    kind = type(exc).__name__
    message = str(exc)
    extra: dict[str, Any] = {}
    headers: dict[str, str] = {}
    status = 500
    if isinstance(exc, AuthenticationError):
        status = 401
        headers["WWW-Authenticate"] = WWW_AUTHENTICATE
    elif isinstance(exc, TenantForbiddenError):
        status = 403
    elif isinstance(exc, ToolNotFoundError):
        status = 404
        message = f"no tool named {exc.tool!r}"  # the registered names are not the caller's
    elif isinstance(
        exc,
        TaskNotFoundError
        | TasksDisabledError
        | ConversationNotFoundError
        | NoAgentError
        | HeldCallNotFoundError,
    ):
        status = 404
    elif isinstance(exc, ConversationBusyError | ConflictError):
        status = 409  # one writer per conversation: the second turn is refused, not forked
    elif isinstance(exc, ApprovalPendingError | AlreadyDecidedError):
        status = 409  # held calls are decided once, and before the conversation goes on
    elif isinstance(exc, AtCapacityError):
        status = 503
        headers["Retry-After"] = "1"
    elif isinstance(exc, DrainingError | ModelUnavailableError):
        status = 503
    elif isinstance(exc, IdempotencyConflictError):
        status = 409
    elif isinstance(exc, TaskTooLargeError):
        status = 413
    elif isinstance(exc, InvalidTaskError | InvalidRequestError):
        status = 422
    elif isinstance(exc, ToolValidationError | InvalidMemoryError | TenantRequiredError):
        status = 422
        if isinstance(exc, ToolValidationError):
            extra["issues"] = [
                {"path": i.path, "rule": i.rule, "message": i.message} for i in exc.issues
            ]
    elif isinstance(exc, CommandRefusedError):
        status = 422  # the sandbox refused this input: nothing ran
    elif isinstance(exc, RateLimitedError):
        status = 429
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    elif isinstance(exc, CircuitOpenError):
        status = 503
        headers["Retry-After"] = str(max(1, math.ceil(exc.args[1])))
    elif isinstance(exc, BulkheadFullError | StoreUnavailableError | CredentialsUnavailableError):
        status = 503
    elif isinstance(exc, RedisConnectionError | RedisTimeoutError):
        status = 503
        message = "the memory store is unavailable"
    elif isinstance(exc, RedisError):
        status = 502  # Redis answered, but not as this runtime expects (wrong type, script)
        message = "the memory store answered with an error"
    elif isinstance(exc, CorruptRecordError | CorruptTaskError):
        status = 502
        message = "a stored record could not be decoded (it was left untouched)"
    elif isinstance(exc, ToolTimeoutError):
        status = 504
    elif isinstance(exc, FallbackExhaustedError):
        status = 502  # the dependency and every fallback failed, not this runtime
        message = f"every strategy failed; the tool's own answer: {exc.primary}"
    elif isinstance(exc, ToolError):
        status = 502  # the dependency failed, not this runtime
    else:
        message = "internal error"  # the detail is in the log, not in the answer
    return status, error_body(kind, message, **extra), headers
