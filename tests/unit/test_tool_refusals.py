"""Unsafe arguments are invalid input: HTTP 422 with the one error shape, kind `client`."""

from __future__ import annotations

import pytest

from agent_runtime.api_errors import error_response
from agent_runtime.tools.errors import (
    CommandRefusedError,
    ToolArgumentRefusedError,
    ToolError,
    error_kind,
)


@pytest.mark.parametrize(
    "error",
    [
        CommandRefusedError("cat", "argument '../x' is a path outside the working directory"),
        CommandRefusedError("cat", "argument 'p' contains a NUL byte", argument="p"),
        ToolArgumentRefusedError("orders", "a '..' segment", argument="user"),
    ],
)
def test_a_refused_argument_is_a_422_that_says_why(error: ToolArgumentRefusedError) -> None:
    status, body, _ = error_response(error)
    assert status == 422
    assert body["error"]["issues"][0]["rule"] == "refused"
    assert body["error"]["issues"][0]["message"] in body["error"]["message"]
    assert error_kind(error) == "client"  # never counts against a shared breaker


def test_the_argument_is_named_when_known() -> None:
    error = ToolArgumentRefusedError("orders", "a '..' segment", argument="user")
    assert error.issues[0].path == "$.user"


def test_a_sandbox_that_refuses_for_its_own_reasons_is_not_the_callers_fault() -> None:
    # What CommandTool raises when the runner refuses (binary missing there, bad workingDir).
    status, _, _ = error_response(ToolError("cat", "the sandbox refused the call: ..."))
    assert status == 502
