"""A caller's invalid input is the caller's fault: it never counts against a breaker that
other tenants share, and it is never retried."""

from __future__ import annotations

from typing import Any

import pytest

from agent_runtime.config.tools import CircuitBreakerSettings, ResilienceSettings
from agent_runtime.credentials import TenantForbiddenError
from agent_runtime.memory.errors import InvalidMemoryError
from agent_runtime.tools.errors import ToolError, error_kind
from agent_runtime.tools.registry import ToolRegistry
from agent_runtime.tools.tool import CallContext


@pytest.mark.parametrize(
    "error", [InvalidMemoryError("value too large"), TenantForbiddenError("not yours")]
)
def test_caller_errors_are_of_kind_client(error: Exception) -> None:
    assert error_kind(error) == "client"


async def test_a_tenants_invalid_input_cannot_open_the_shared_breaker() -> None:
    registry = ToolRegistry()

    async def keep(args: dict[str, Any], context: CallContext) -> str:
        if context.tenant == "mallory":
            raise InvalidMemoryError("memory values must be plain JSON")
        return "kept"

    breaker = CircuitBreakerSettings(window_size=10, minimum_calls=2, failure_rate_threshold=0.5)
    registry.register_function(
        keep,
        name="keep",
        description="Keep something.",
        resilience=ResilienceSettings(circuit_breaker=breaker),
    )
    for _ in range(50):
        with pytest.raises(InvalidMemoryError):
            await registry.call("keep", {}, context=CallContext(tenant="mallory"))
    result = await registry.call("keep", {}, context=CallContext(tenant="alice"))
    assert result.value == "kept"
    assert registry.breakers()[0].state.value == "closed"


async def test_an_answer_nested_too_deeply_is_a_502_kind_not_a_crash() -> None:
    registry = ToolRegistry()

    async def deep(args: dict[str, Any], context: CallContext) -> Any:
        value: Any = 1
        for _ in range(500):
            value = [value]
        return value

    async def recursing(args: dict[str, Any], context: CallContext) -> Any:
        import json

        return json.loads("[" * 100_000 + "]" * 100_000)

    registry.register_function(deep, name="deep", description="Deep.")
    registry.register_function(recursing, name="recursing", description="Too deep to decode.")
    for name in ("deep", "recursing"):
        with pytest.raises(ToolError) as caught:
            await registry.call(name, {}, context=CallContext(tenant="t"))
        assert caught.value.kind == "responseTooLarge"
