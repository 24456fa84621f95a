"""The middleware chain: declared order, hooks, and each built-in layer through the registry."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from agent_runtime.config.tools import (
    CacheSettings,
    ResilienceSettings,
    ToolHints,
)
from agent_runtime.resilience import BulkheadFullError, CircuitOpenError, RateLimitedError
from agent_runtime.resilience.fallback import FallbackExhaustedError
from agent_runtime.tools.errors import ToolError, ToolHttpStatusError, ToolTimeoutError
from agent_runtime.tools.middleware.chain import HookMiddleware, MiddlewareChain, Next
from agent_runtime.tools.registry import DEFAULT_ORDER, ToolRegistry
from agent_runtime.tools.tool import CallContext, Invocation
from tests.support.fake_time import FakeTime
from tests.support.identity import CONTEXT

READ_ONLY = ToolHints(read_only=True)
NO_CACHE = CacheSettings(enabled=False)


class Recorder:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self._log = log

    async def __call__(self, call: Invocation, call_next: Next) -> Any:
        self._log.append(f"pre:{self.name}")
        value = await call_next(call)
        self._log.append(f"post:{self.name}")
        return value


def flaky(failures: int, error: Callable[[], Exception]) -> tuple[Callable[..., Any], list[int]]:
    calls: list[int] = []

    async def run(_: dict[str, Any], _ctx: CallContext) -> Any:
        calls.append(1)
        if len(calls) <= failures:
            raise error()
        return "ok"

    return run, calls


def server_error() -> Exception:
    return ToolHttpStatusError("t", 503, "busy")


def policy(doc: dict[str, Any]) -> ResilienceSettings:
    return ResilienceSettings.model_validate(doc)


# --------------------------------------------------------------------------- order


def test_the_default_chain_is_in_the_declared_order() -> None:
    assert ToolRegistry().middleware == list(DEFAULT_ORDER)


@given(
    placements=st.lists(
        st.tuples(st.sampled_from(["before", "after", "inner"]), st.sampled_from(DEFAULT_ORDER)),
        min_size=1,
        max_size=6,
    )
)
async def test_user_middleware_runs_where_it_was_declared(
    placements: list[tuple[str, str]],
) -> None:
    log: list[str] = []
    chain = MiddlewareChain([Recorder(name, log) for name in DEFAULT_ORDER])
    for i, (how, anchor) in enumerate(placements):
        layer = Recorder(f"user{i}", log)
        if how == "before":
            chain.add(layer, before=anchor)
        elif how == "after":
            chain.add(layer, after=anchor)
        else:
            chain.add(layer)

    async def terminal(call: Invocation) -> str:
        log.append("implementation")
        return "done"

    assert await chain.build(terminal)(None) == "done"  # type: ignore[arg-type]
    names = chain.names
    assert log == [f"pre:{n}" for n in names] + ["implementation"] + [
        f"post:{n}" for n in reversed(names)
    ]
    for i, (how, anchor) in enumerate(placements):
        position = names.index(f"user{i}")
        if how == "inner":
            assert position > names.index("attempt_timeout")
        elif how == "before":
            assert position < names.index(anchor)
        else:
            assert position > names.index(anchor)


def test_chain_names_must_be_unique_and_anchors_must_exist() -> None:
    chain = MiddlewareChain([Recorder("a", [])])
    with pytest.raises(ValueError, match="already in the chain"):
        chain.add(Recorder("a", []))
    with pytest.raises(ValueError, match="no middleware named 'zzz'"):
        chain.add(Recorder("b", []), before="zzz")


async def test_hook_middleware_sees_before_after_and_errors() -> None:
    events: list[str] = []

    class Audit(HookMiddleware):
        name = "audit"

        async def before(self, call: Invocation) -> None:
            events.append(f"before {call.arguments}")

        async def after(self, call: Invocation, value: Any) -> Any:
            events.append("after")
            return {"wrapped": value}

        async def on_error(self, call: Invocation, error: Exception) -> None:
            events.append(f"error {error}")

    async def echo(args: dict[str, Any], _ctx: CallContext) -> Any:
        if args.get("fail"):
            raise ToolError("echo", "asked to fail")
        return args

    registry = ToolRegistry()
    registry.register_function(echo, name="echo", description="", parameters={"type": "object"})
    registry.add_middleware(Audit(), before="logging")
    assert registry.middleware[0] == "audit"
    assert (await registry.call("echo", {"x": 1}, context=CONTEXT)).value == {"wrapped": {"x": 1}}
    with pytest.raises(ToolError):
        await registry.call("echo", {"fail": True}, context=CONTEXT)
    assert events == [
        "before {'x': 1}",
        "after",
        "before {'fail': True}",
        "error tool 'echo': asked to fail",
    ]


async def test_a_retry_is_seen_by_layers_inside_retry_only() -> None:
    log: list[str] = []
    time = FakeTime(1000.0)
    run, calls = flaky(2, server_error)
    registry = ToolRegistry(clock=time, sleep=time.sleep)
    registry.register_function(run, name="t", description="", hints=READ_ONLY, cache=NO_CACHE)
    registry.add_middleware(Recorder("outside", log), before="retry")
    registry.add_middleware(Recorder("inside", log), after="retry")
    result = await registry.call("t", {}, context=CONTEXT)
    assert result.attempts == 3
    assert len(calls) == 3
    assert log.count("pre:outside") == 1
    assert log.count("pre:inside") == 3


# --------------------------------------------------------------------------- retry


async def test_idempotent_tools_are_retried_with_backoff() -> None:
    time = FakeTime(1000.0)
    run, calls = flaky(2, server_error)
    registry = ToolRegistry(
        resilience=policy(
            {"retry": {"maxAttempts": 4, "initialBackoffSeconds": 0.5, "jitterSeconds": 0}}
        ),
        clock=time,
        sleep=time.sleep,
    )
    registry.register_function(run, name="t", description="", hints=ToolHints(idempotent=True))
    before = REGISTRY.get_sample_value("agentpool_tool_retries_total", {"tool": "t"}) or 0
    result = await registry.call("t", {}, context=CONTEXT)
    assert (result.value, result.attempts, len(calls)) == ("ok", 3, 3)
    assert time.sleeps == [0.5, 1.0]
    assert REGISTRY.get_sample_value("agentpool_tool_retries_total", {"tool": "t"}) == before + 2


@pytest.mark.parametrize(
    ("hints", "overrides", "error", "attempts"),
    [
        (ToolHints(), {}, server_error, 1),  # not idempotent: never retried
        (ToolHints(), {"retry": {"retryNonIdempotent": True}}, server_error, 3),
        (READ_ONLY, {}, lambda: ToolHttpStatusError("t", 404, "no"), 1),  # client errors
        (READ_ONLY, {"retry": {"enabled": False}}, server_error, 1),
    ],
)
async def test_what_is_not_retried(
    hints: ToolHints, overrides: dict[str, Any], error: Callable[[], Exception], attempts: int
) -> None:
    time = FakeTime(1000.0)
    run, calls = flaky(5, error)
    registry = ToolRegistry(clock=time, sleep=time.sleep)
    registry.register_function(
        run, name="t", description="", hints=hints, resilience=policy(overrides), cache=NO_CACHE
    )
    with pytest.raises(ToolError):
        await registry.call("t", {}, context=CONTEXT)
    assert len(calls) == attempts


async def test_retries_stop_before_the_call_deadline() -> None:
    time = FakeTime(1000.0)
    run, calls = flaky(10, server_error)
    registry = ToolRegistry(
        resilience=policy(
            {
                "retry": {"maxAttempts": 10, "initialBackoffSeconds": 1, "jitterSeconds": 0},
                "timeouts": {"perCallSeconds": 5},
            }
        ),
        clock=time,
        sleep=time.sleep,
    )
    registry.register_function(run, name="t", description="", hints=READ_ONLY)
    with pytest.raises(ToolHttpStatusError):
        await registry.call("t", {}, context=CONTEXT)
    assert time.sleeps == [1, 2]  # a third backoff (4s) would end past the 5s deadline
    assert len(calls) == 3


# --------------------------------------------------------------------------- breaker


async def test_the_breaker_opens_and_refuses_without_calling() -> None:
    time = FakeTime(1000.0)
    run, calls = flaky(100, server_error)
    registry = ToolRegistry(
        resilience=policy(
            {
                "circuitBreaker": {
                    "minimumCalls": 3,
                    "windowSize": 3,
                    "waitDurationInOpenSeconds": 10,
                },
                "retry": {"enabled": False},
            }
        ),
        clock=time,
        sleep=time.sleep,
    )
    registry.register_function(run, name="dep", description="", hints=READ_ONLY, cache=NO_CACHE)
    for _ in range(3):
        with pytest.raises(ToolHttpStatusError):
            await registry.call("dep", {}, context=CONTEXT)
    with pytest.raises(CircuitOpenError, match="'dep' is open"):
        await registry.call("dep", {}, context=CONTEXT)
    assert len(calls) == 3
    [snapshot] = registry.breakers()
    assert snapshot.state.value == "open"
    assert snapshot.retry_after_seconds == 10
    assert REGISTRY.get_sample_value("agentpool_tool_circuit_state", {"tool": "dep"}) == 1
    time.now += 10
    with pytest.raises(ToolHttpStatusError):  # the half-open trial reaches the dependency
        await registry.call("dep", {}, context=CONTEXT)
    assert len(calls) == 4


async def test_client_errors_do_not_trip_the_breaker() -> None:
    run, calls = flaky(100, lambda: ToolHttpStatusError("t", 400, "bad"))
    registry = ToolRegistry(
        resilience=policy({"circuitBreaker": {"minimumCalls": 1, "windowSize": 1}})
    )
    registry.register_function(run, name="t", description="", cache=NO_CACHE)
    for _ in range(5):
        with pytest.raises(ToolHttpStatusError):
            await registry.call("t", {}, context=CONTEXT)
    assert len(calls) == 5


async def test_results_are_cached_per_tenant() -> None:
    async def whoami(_: dict[str, Any], context: CallContext) -> Any:
        return context.tenant

    registry = ToolRegistry()
    registry.register_function(whoami, name="whoami", description="", hints=READ_ONLY)
    alice, bob = CallContext(tenant="alice"), CallContext(tenant="bob")
    assert (await registry.call("whoami", {}, context=alice)).value == "alice"
    assert (await registry.call("whoami", {}, context=alice)).cached
    answer = await registry.call("whoami", {}, context=bob)
    assert (answer.value, answer.cached) == ("bob", False)
    assert await registry.invalidate_cache("whoami", {}, tenant="alice") == 1
    assert not (await registry.call("whoami", {}, context=alice)).cached


# --------------------------------------------------------------------------- fallback


async def test_fallback_tools_run_for_the_same_context() -> None:
    seen: list[CallContext] = []

    async def broken(_: dict[str, Any], context: CallContext) -> Any:
        seen.append(context)
        raise ToolError("primary", "down")

    async def backup(_: dict[str, Any], context: CallContext) -> Any:
        seen.append(context)
        return context.tenant

    registry = ToolRegistry(resilience=policy({"retry": {"enabled": False}}))
    registry.register_function(
        broken,
        name="primary",
        description="",
        resilience=policy({"fallback": {"tools": ["backup"]}}),
    )
    registry.register_function(backup, name="backup", description="")
    context = CallContext(tenant="alice", conversation_id="c-9")
    answer = await registry.call("primary", {}, context=context)
    assert (answer.value, answer.answered_by) == ("alice", "tool:backup")
    assert seen == [context, context]


async def test_fallbacks_answer_in_order_and_say_which() -> None:
    async def broken(_: dict[str, Any], _ctx: CallContext) -> Any:
        raise ToolError("primary", "down")

    async def backup(args: dict[str, Any], _ctx: CallContext) -> Any:
        return f"backup:{args['q']}"

    schema = {"type": "object", "properties": {"q": {"type": "string"}}}
    registry = ToolRegistry(resilience=policy({"retry": {"enabled": False}}))
    registry.register_function(
        broken,
        name="primary",
        description="",
        parameters=schema,
        resilience=policy({"fallback": {"tools": ["also_broken", "backup"]}}),
    )
    registry.register_function(broken, name="also_broken", description="", parameters=schema)
    registry.register_function(backup, name="backup", description="", parameters=schema)
    registry.register_function(
        broken,
        name="static",
        description="",
        resilience=policy({"fallback": {"static": {"value": {"answer": "unknown"}}}}),
    )
    result = await registry.call("primary", {"q": "x"}, context=CONTEXT)
    assert (result.value, result.answered_by) == ("backup:x", "tool:backup")
    static = await registry.call("static", {}, context=CONTEXT)
    assert (static.value, static.answered_by) == ({"answer": "unknown"}, "static")


async def test_fallbacks_that_name_each_other_do_not_loop() -> None:
    async def broken(_: dict[str, Any], _ctx: CallContext) -> Any:
        raise ToolError("x", "down")

    registry = ToolRegistry(resilience=policy({"retry": {"enabled": False}}))
    registry.register_function(
        broken, name="a", description="", resilience=policy({"fallback": {"tools": ["b"]}})
    )
    registry.register_function(
        broken, name="b", description="", resilience=policy({"fallback": {"tools": ["a"]}})
    )
    with pytest.raises(FallbackExhaustedError) as caught:
        await registry.call("a", {}, context=CONTEXT)
    assert set(caught.value.errors) == {"primary", "tool:b"}


# --------------------------------------------------------------------------- cache


@pytest.mark.parametrize(
    ("hints", "cache", "computed"),
    [
        (READ_ONLY, None, 1),
        (ToolHints(), None, 3),  # not read-only: never cached by default
        (ToolHints(), CacheSettings(allow_non_read_only=True), 1),
        (READ_ONLY, NO_CACHE, 3),
    ],
)
async def test_only_read_only_or_opted_in_tools_are_cached(
    hints: ToolHints, cache: CacheSettings | None, computed: int
) -> None:
    calls: list[dict[str, Any]] = []

    async def run(args: dict[str, Any], _ctx: CallContext) -> Any:
        calls.append(args)
        return len(calls)

    registry = ToolRegistry()
    registry.register_function(run, name="t", description="", hints=hints, cache=cache)
    results = [await registry.call("t", {"a": 1, "b": 2}, context=CONTEXT) for _ in range(2)]
    results.append(
        await registry.call("t", {"b": 2, "a": 1}, context=CONTEXT)
    )  # same canonical arguments
    assert len(calls) == computed
    assert [r.cached for r in results] == ([False, True, True] if computed == 1 else [False] * 3)
    await registry.invalidate_cache("t")
    assert (await registry.call("t", {"a": 1, "b": 2}, context=CONTEXT)).cached is False


# --------------------------------------------------------------------------- limits, time


async def test_the_call_timeout_cuts_a_hanging_call() -> None:
    async def hang(_: dict[str, Any], _ctx: CallContext) -> Any:
        await asyncio.Event().wait()

    registry = ToolRegistry(resilience=policy({"timeouts": {"perCallSeconds": 0.05}}))
    registry.register_function(hang, name="hang", description="")
    with pytest.raises(ToolTimeoutError, match=r"call timed out after 0\.05s"):
        await registry.call("hang", {}, context=CONTEXT)


async def test_the_bulkhead_refuses_calls_beyond_its_limit() -> None:
    release = asyncio.Event()
    entered = asyncio.Event()

    async def busy(_: dict[str, Any], _ctx: CallContext) -> Any:
        entered.set()
        await release.wait()
        return "done"

    registry = ToolRegistry(
        resilience=policy({"bulkhead": {"maxConcurrent": 1, "maxWaitSeconds": 0}})
    )
    registry.register_function(busy, name="busy", description="")
    first = asyncio.create_task(registry.call("busy", {}, context=CONTEXT))
    await entered.wait()
    with pytest.raises(BulkheadFullError, match="1 calls in flight"):
        await registry.call("busy", {}, context=CONTEXT)
    release.set()
    assert (await first).value == "done"
    assert (await registry.call("busy", {}, context=CONTEXT)).value == "done"


async def test_the_rate_limit_refuses_then_refills() -> None:
    time = FakeTime(1000.0)

    async def ok(_: dict[str, Any], _ctx: CallContext) -> Any:
        return "ok"

    registry = ToolRegistry(
        resilience=policy({"rateLimit": {"ratePerSecond": 1, "burst": 2}}),
        clock=time,
        sleep=time.sleep,
    )
    registry.register_function(ok, name="t", description="")
    await registry.call("t", {}, context=CONTEXT)
    await registry.call("t", {}, context=CONTEXT)
    with pytest.raises(RateLimitedError, match=r"next call allowed in 1\.00s"):
        await registry.call("t", {}, context=CONTEXT)
    time.now += 1
    await registry.call("t", {}, context=CONTEXT)


# --------------------------------------------------------------------------- observability


async def test_the_call_id_is_bound_to_the_log_context_during_the_call() -> None:
    async def context(_: dict[str, Any], _ctx: CallContext) -> Any:
        return structlog.contextvars.get_contextvars()

    registry = ToolRegistry()
    registry.register_function(context, name="ctx", description="", cache=NO_CACHE)
    result = await registry.call("ctx", {}, call_id="call-42", context=CONTEXT)
    assert result.value == {"tool_call_id": "call-42"}
    assert structlog.contextvars.get_contextvars() == {}


async def test_calls_are_counted_by_outcome() -> None:
    run, _ = flaky(1, server_error)
    registry = ToolRegistry(resilience=policy({"retry": {"enabled": False}}))
    registry.register_function(run, name="counted", description="", cache=NO_CACHE)

    def count(outcome: str) -> float:
        return (
            REGISTRY.get_sample_value(
                "agentpool_tool_calls_total", {"tool": "counted", "outcome": outcome}
            )
            or 0
        )

    with pytest.raises(ToolError):
        await registry.call("counted", {}, context=CONTEXT)
    await registry.call("counted", {}, context=CONTEXT)
    assert (count("error"), count("ok")) == (1, 1)


async def test_a_layer_that_does_not_apply_to_a_tool_is_left_out_of_its_chain() -> None:
    log: list[str] = []

    class OnlyForA(Recorder):
        def applies_to(self, tool: Any, policy: Any) -> bool:
            return bool(tool.name == "a")

    async def ok(_: dict[str, Any], _ctx: CallContext) -> Any:
        return "ok"

    registry = ToolRegistry()
    registry.register_function(ok, name="a", description="")
    registry.register_function(ok, name="b", description="")
    registry.add_middleware(OnlyForA("only_a", log))
    await registry.call("a", {}, context=CONTEXT)
    await registry.call("b", {}, context=CONTEXT)
    assert log == ["pre:only_a", "post:only_a"]


async def test_re_registering_a_tool_starts_it_with_a_fresh_breaker() -> None:
    run, _ = flaky(100, server_error)
    opens_fast = policy({"circuitBreaker": {"minimumCalls": 1}, "retry": {"enabled": False}})
    registry = ToolRegistry(resilience=opens_fast)
    registry.register_function(run, name="t", description="", cache=NO_CACHE)
    with pytest.raises(ToolError):
        await registry.call("t", {}, context=CONTEXT)
    with pytest.raises(CircuitOpenError):
        await registry.call("t", {}, context=CONTEXT)
    registry.register(registry.get("t"), replace=True)
    with pytest.raises(ToolError):  # reached the implementation again
        await registry.call("t", {}, context=CONTEXT)
    assert registry.breakers()[0].as_dict()["state"] == "open"


async def test_cache_evictions_are_counted_per_tool() -> None:
    async def echo(args: dict[str, Any], _ctx: CallContext) -> Any:
        return args

    registry = ToolRegistry(cache_settings=CacheSettings(max_entries=2))
    registry.register_function(echo, name="evicting", description="", hints=READ_ONLY)
    before = (
        REGISTRY.get_sample_value("agentpool_tool_cache_evictions_total", {"tool": "evicting"}) or 0
    )
    for i in range(5):
        await registry.call("evicting", {"i": i}, context=CONTEXT)
    stats = registry.cache_stats()
    assert (stats.size, stats.evictions) == (2, 3)
    assert (
        REGISTRY.get_sample_value("agentpool_tool_cache_evictions_total", {"tool": "evicting"})
        == before + 3
    )
