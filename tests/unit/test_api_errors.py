"""Every runtime error maps to a 4xx/5xx with a body that says what failed."""

from __future__ import annotations

import pytest

from agent_runtime.agent.admission import AtCapacityError, DrainingError
from agent_runtime.agent.conversations import ConversationBusyError, ConversationNotFoundError
from agent_runtime.agent.model import ModelUnavailableError
from agent_runtime.api_errors import NoAgentError, error_response
from agent_runtime.conversation.store import ConflictError
from agent_runtime.memory.errors import (
    CorruptRecordError,
    InvalidMemoryError,
    StoreUnavailableError,
)
from agent_runtime.resilience.breaker import CircuitOpenError
from agent_runtime.resilience.fallback import FallbackExhaustedError
from agent_runtime.resilience.limits import BulkheadFullError, RateLimitedError
from agent_runtime.tools.errors import (
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
        (ToolTimeoutError("x", 2.0), 502),
        (ToolError("x", "boom"), 502),
        (FallbackExhaustedError({"primary": ToolError("x", "boom")}), 502),
        (CorruptRecordError("not ours"), 502),
        (ConversationNotFoundError("c"), 404),
        (NoAgentError(), 404),
        (ConversationBusyError("c"), 409),
        (ConflictError("c", 1, 2), 409),
        (AtCapacityError(8), 503),
        (DrainingError(), 503),
        (ModelUnavailableError("all down"), 503),
        (RuntimeError("a bug"), 500),
    ],
)
def test_status_and_body(error: Exception, status: int) -> None:
    got, body, _ = error_response(error)
    assert got == status
    assert body["error"] == {"type": type(error).__name__, "message": str(error)} | (
        {"issues": body["error"]["issues"]} if "issues" in body["error"] else {}
    )
    assert body["error"]["message"]


def test_validation_issues_are_listed() -> None:
    _, body, _ = error_response(
        ToolValidationError("x", [ValidationIssue("$.a", "type", "not a string")])
    )
    assert body["error"]["issues"] == [{"path": "$.a", "rule": "type", "message": "not a string"}]


def test_retry_after_is_given_in_whole_seconds() -> None:
    assert error_response(RateLimitedError("x", 2.2))[2] == {"Retry-After": "3"}
    assert error_response(CircuitOpenError("x", 0.1))[2] == {"Retry-After": "1"}
