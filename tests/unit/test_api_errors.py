"""Every runtime error maps to a 4xx/5xx with a body that says what failed."""

from __future__ import annotations

import pytest
from redis import exceptions as redis_errors

from agent_runtime.agent.admission import AtCapacityError, DrainingError
from agent_runtime.agent.approval import (
    AlreadyDecidedError,
    ApprovalPendingError,
    HeldCallNotFoundError,
)
from agent_runtime.agent.conversations import ConversationBusyError, ConversationNotFoundError
from agent_runtime.agent.model import ModelUnavailableError
from agent_runtime.api_errors import InvalidRequestError, NoAgentError, error_response
from agent_runtime.conversation.store import ConflictError
from agent_runtime.credentials import (
    AuthenticationError,
    CredentialsUnavailableError,
    TenantForbiddenError,
    TenantRequiredError,
)
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
from agent_runtime.tools.errors import (
    CommandRefusedError,
    ToolError,
    ToolNotFoundError,
    ToolTimeoutError,
    ToolValidationError,
    ValidationIssue,
)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ToolNotFoundError("x", ["a"]), 404),
        (ToolValidationError("x", [ValidationIssue("$.a", "type", "not a string")]), 422),
        (InvalidMemoryError("bad key"), 422),
        (RateLimitedError("x", 2.2), 429),
        (CircuitOpenError("x", 4.5), 503),
        (BulkheadFullError("x", 3), 503),
        (StoreUnavailableError("redis down"), 503),
        (ToolTimeoutError("x", 2.0), 504),
        (ToolError("x", "boom"), 502),
        (FallbackExhaustedError({"primary": ToolError("x", "boom")}), 502),
        (CorruptRecordError("not ours"), 502),
        (ConversationNotFoundError("c"), 404),
        (NoAgentError(), 404),
        (ConversationBusyError("c"), 409),
        (ConflictError("c", 1, 2), 409),
        (ApprovalPendingError("c", ["v2.call_1"]), 409),
        (AlreadyDecidedError("v2.call_1", "succeeded"), 409),
        (HeldCallNotFoundError("v9.x"), 404),
        (AtCapacityError(8), 503),
        (DrainingError(), 503),
        (ModelUnavailableError("all down"), 503),
        (InvalidRequestError("no user message"), 422),
        (TaskNotFoundError("no task"), 404),
        (TasksDisabledError("off"), 404),
        (IdempotencyConflictError("k", "abc"), 409),
        (TaskTooLargeError("big"), 413),
        (InvalidTaskError("tenant is required"), 422),
        (CorruptTaskError("not ours"), 502),
        (RuntimeError("a bug"), 500),
    ],
)
def test_status_and_body(error: Exception, status: int) -> None:
    got, body, _ = error_response(error)
    assert got == status
    assert body["error"]["type"] == type(error).__name__
    assert set(body["error"]) <= {"type", "message", "issues"}
    assert body["error"]["message"]


def test_validation_issues_are_listed() -> None:
    _, body, _ = error_response(
        ToolValidationError("x", [ValidationIssue("$.a", "type", "not a string")])
    )
    assert body["error"]["issues"] == [{"path": "$.a", "rule": "type", "message": "not a string"}]


def test_retry_after_is_given_in_whole_seconds() -> None:
    assert error_response(RateLimitedError("x", 2.2))[2] == {"Retry-After": "3"}
    assert error_response(CircuitOpenError("x", 0.1))[2] == {"Retry-After": "1"}


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (AuthenticationError("credentials required"), 401),
        (TenantForbiddenError("not yours"), 403),
        (TenantRequiredError("name one"), 422),
        (CredentialsUnavailableError("api down"), 503),
        (CommandRefusedError("x", "binary not allowed"), 422),
        (redis_errors.ConnectionError("Error 111 connecting"), 503),
        (redis_errors.TimeoutError("Timeout reading"), 503),
        (redis_errors.BusyLoadingError("loading"), 503),
        (redis_errors.ResponseError("WRONGTYPE Operation against a key"), 502),
        (redis_errors.NoScriptError("NOSCRIPT"), 502),
        (redis_errors.DataError("invalid input"), 502),
    ],
)
def test_access_and_redis_errors(error: Exception, status: int) -> None:
    assert error_response(error)[0] == status


def test_401_says_how_to_authenticate() -> None:
    status, body, headers = error_response(AuthenticationError("credentials required"))
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert body["error"]["type"] == "AuthenticationError"


@pytest.mark.parametrize(
    "error",
    [
        ToolNotFoundError("nope", ["secret_tool", "other_tool"]),
        CorruptRecordError("long-term record under 'agentpool:ns:pool:tenant:a:lt:k' is bad"),
        redis_errors.ResponseError("ERR Error running script on key agentpool:ns:pool:x"),
        FallbackExhaustedError(
            {"primary": ToolError("x", "boom"), "tool:secret_tool": ToolError("secret_tool", "n")}
        ),
        RuntimeError("a bug at agentpool:ns:pool:tenant"),
    ],
)
def test_messages_name_no_other_tool_and_no_redis_key(error: Exception) -> None:
    message = error_response(error)[1]["error"]["message"]
    assert "secret_tool" not in message
    assert "other_tool" not in message
    assert "agentpool:" not in message
