"""Tool-layer overheads: the full middleware chain, a cache hit, an open breaker rejecting.

Each subject runs ROUNDS rounds of CALLS calls; a round gives one per-call time, and the
table shows the median over rounds and the p10-p90 spread. Baselines run in the same
process, interleaved round by round with the subjects so machine load hits all alike:

- the chain against a bare `await` of the same coroutine,
- our breaker against pybreaker and purgatory rejecting on an open circuit (and passing
  calls on a closed one).

Logging is configured at level WARNING (structlog's filtering logger, loggers cached), so
the per-call `info` line is dropped at the call site: what is measured is the chain, not
a log sink. At INFO every call also renders one JSON line.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pybreaker
import structlog
from purgatory import AsyncCircuitBreakerFactory

from agent_runtime.cache import ToolCache
from agent_runtime.config.tools import CacheSettings, CircuitBreakerSettings, ToolHints
from agent_runtime.resilience import CircuitBreaker, CircuitOpenError
from agent_runtime.tools.registry import ToolRegistry
from agent_runtime.tools.schema import compile_schema
from agent_runtime.tools.tool import CallContext

ROUNDS = 31
CALLS = 2000

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"query": {"type": "string"}, "limit": {"type": "integer", "minimum": 1}},
    "required": ["query"],
}
ARGS: dict[str, Any] = {"query": "weather in Lyon", "limit": 3}

Subject = Callable[[], Awaitable[None]] | Callable[[], None]

CONTEXT = CallContext(tenant="bench")


def quiet_logging(level: int) -> None:
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(io.StringIO()),
        cache_logger_on_first_use=True,  # as configure_logging does in a pod
    )


async def implementation(args: dict[str, Any], _ctx: CallContext) -> dict[str, Any]:
    return {"answer": args["query"]}


async def per_call_us(subject: Subject, calls: int) -> float:
    if not asyncio.iscoroutinefunction(subject):  # synchronous APIs are timed without await
        started = time.perf_counter_ns()
        for _ in range(calls):
            subject()
        return (time.perf_counter_ns() - started) / calls / 1000
    started = time.perf_counter_ns()
    for i in range(calls):
        await subject()
        if i % 100 == 0:
            # Real tool calls suspend; yielding now and then lets the loop purge
            # cancelled timer handles as it would in a pod.
            await asyncio.sleep(0)
    return (time.perf_counter_ns() - started) / calls / 1000


async def measure(subjects: dict[str, Subject]) -> dict[str, list[float]]:
    for subject in subjects.values():  # warm up caches, breakers, label children
        await per_call_us(subject, 200)
    samples: dict[str, list[float]] = {name: [] for name in subjects}
    for _ in range(ROUNDS):
        for name, subject in subjects.items():
            samples[name].append(await per_call_us(subject, CALLS))
    return samples


def row(name: str, values: list[float], baseline: float | None, note: str = "") -> str:
    quantiles = statistics.quantiles(values, n=10)
    median = statistics.median(values)
    ratio = f"{median / baseline:6.1f}x" if baseline else "      "
    return (
        f"{name:<44} {median:8.2f} µs  p10-p90 {quantiles[0]:7.2f}-{quantiles[-1]:7.2f}  "
        f"{ratio}  {note}"
    )


def registry() -> ToolRegistry:
    reg = ToolRegistry()
    hints = ToolHints(read_only=True)
    reg.register_function(
        implementation,
        name="chain",
        description="",
        parameters=SCHEMA,
        hints=hints,
        cache=CacheSettings(enabled=False),
    )
    reg.register_function(
        implementation, name="trivial", description="", parameters={"type": "object"}, hints=hints
    )
    reg.register_function(
        implementation, name="cached", description="", parameters=SCHEMA, hints=hints
    )
    reg.register_function(
        implementation,
        name="opened",
        description="",
        parameters=SCHEMA,
        hints=hints,
        cache=CacheSettings(enabled=False),
    )
    return reg


async def chain_subjects() -> dict[str, Subject]:
    reg = registry()
    trivial_reg = ToolRegistry()
    trivial_reg.register_function(
        implementation,
        name="t",
        description="",
        parameters={"type": "object"},
        hints=ToolHints(read_only=True),
        cache=CacheSettings(enabled=False),
    )
    validator = compile_schema("chain", SCHEMA)  # what registration compiles
    bare_reg = ToolRegistry()
    bare_reg.register_function(
        implementation, name="t", description="", parameters={"type": "object"}
    )
    for layer in bare_reg.middleware:
        bare_reg.remove_middleware(layer)

    async def bare() -> None:
        await implementation(ARGS, CONTEXT)

    async def chain() -> None:
        await reg.call("chain", ARGS, context=CONTEXT)

    async def chain_trivial_schema() -> None:
        await trivial_reg.call("t", ARGS, context=CONTEXT)

    def validation_only() -> None:
        validator.is_valid(ARGS)

    async def no_middleware() -> None:
        await bare_reg.call("t", ARGS, context=CONTEXT)

    return {
        "bare": bare,
        "chain": chain,
        "chain_trivial": chain_trivial_schema,
        "validation": validation_only,
        "no_middleware": no_middleware,
    }


async def cache_subjects() -> dict[str, Subject]:
    cache = ToolCache(1024)
    reg = registry()
    await reg.call("cached", ARGS, context=CONTEXT)

    async def compute() -> Any:
        return await implementation(ARGS, CONTEXT)

    await cache.get_or_compute("t", "tenant", ARGS, 3600, compute)

    async def hit() -> None:
        await cache.get_or_compute("t", "tenant", ARGS, 3600, compute)

    async def chain_hit() -> None:
        await reg.call("cached", ARGS, context=CONTEXT)

    return {"cache_hit": hit, "chain_cache_hit": chain_hit}


async def breaker_subjects() -> dict[str, Subject]:
    settings = CircuitBreakerSettings(minimum_calls=1, wait_duration_in_open_seconds=3600)
    ours_open = CircuitBreaker("open", settings)
    ours_open.force_open()
    ours_closed = CircuitBreaker("closed", settings)

    py_open = pybreaker.CircuitBreaker(fail_max=1, reset_timeout=3600)
    py_open.open()
    py_closed = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=3600)

    purg = AsyncCircuitBreakerFactory(default_threshold=1, default_ttl=3600)
    await purg.initialize()
    try:
        async with await purg.get_breaker("open"):
            raise RuntimeError("trip it")
    except RuntimeError:
        pass

    def ok() -> None:
        return None

    def ours_rejects() -> None:
        with contextlib.suppress(CircuitOpenError):
            ours_open.acquire()

    def ours_passes() -> None:
        ours_closed.record(ours_closed.acquire(), failed=False)

    def pybreaker_rejects() -> None:
        with contextlib.suppress(pybreaker.CircuitBreakerError):
            py_open.call(ok)

    def pybreaker_passes() -> None:
        py_closed.call(ok)

    async def purgatory_rejects() -> None:
        try:
            async with await purg.get_breaker("open"):
                pass
        except Exception as exc:  # purgatory's OpenedState
            if type(exc).__name__ != "OpenedState":
                raise

    async def purgatory_passes() -> None:
        async with await purg.get_breaker("closed"):
            pass

    reg = registry()
    await reg.call(
        "opened", ARGS, context=CONTEXT
    )  # the breaker exists once the tool has been called
    breaker = reg.breaker("opened")
    assert breaker is not None
    breaker.force_open(3600)

    async def chain_rejects() -> None:
        with contextlib.suppress(CircuitOpenError):
            await reg.call("opened", ARGS, context=CONTEXT)

    return {
        "ours_rejects": ours_rejects,
        "pybreaker_rejects": pybreaker_rejects,
        "purgatory_rejects": purgatory_rejects,
        "chain_rejects": chain_rejects,
        "ours_passes": ours_passes,
        "pybreaker_passes": pybreaker_passes,
        "purgatory_passes": purgatory_passes,
    }


async def run() -> None:
    quiet_logging(logging.WARNING)
    subjects = {**await chain_subjects(), **await cache_subjects(), **await breaker_subjects()}
    samples = await measure(subjects)
    median = {name: statistics.median(values) for name, values in samples.items()}
    bare = median["bare"]

    print(f"{ROUNDS} rounds x {CALLS} calls; per-call time; ratio against the baseline named")
    print("\n-- middleware chain (goal: overhead < 30 µs median)")
    print(row("bare await of the implementation", samples["bare"], None))
    print(
        row(
            "registry.call, full chain + validation",
            samples["chain"],
            bare,
            f"overhead {median['chain'] - bare:.2f} µs",
        )
    )
    print(
        row(
            "registry.call, full chain, trivial schema",
            samples["chain_trivial"],
            bare,
            f"overhead {median['chain_trivial'] - bare:.2f} µs",
        )
    )
    print(
        row(
            "registry.call, no middleware, trivial schema",
            samples["no_middleware"],
            bare,
            "validation floor + call bookkeeping",
        )
    )
    chain_only = median["chain_trivial"] - median["no_middleware"]
    print(f"{'=> the middleware chain alone':<44} {chain_only:8.2f} µs")
    print(row("jsonschema validation of the real schema", samples["validation"], None))
    print("\n-- cache (goal: hit < 5 µs)")
    print(row("ToolCache hit (key + lookup)", samples["cache_hit"], None))
    print(row("registry.call served from cache", samples["chain_cache_hit"], bare))
    print("\n-- open breaker rejecting (goal: < 2 µs); ratio against ours")
    print("   (ours and pybreaker are synchronous and timed without an await; purgatory is")
    print("    async-only, so its row includes one await, about the bare row's cost)")
    ours = median["ours_rejects"]
    print(row("ours: acquire() raises CircuitOpenError", samples["ours_rejects"], None))
    print(row("pybreaker: call() raises CircuitBreakerError", samples["pybreaker_rejects"], ours))
    print(row("purgatory: async with raises OpenedState", samples["purgatory_rejects"], ours))
    print(row("registry.call refused by the breaker", samples["chain_rejects"], ours))
    print("\n-- closed breaker admitting and recording one call; ratio against ours")
    ours = median["ours_passes"]
    print(row("ours: acquire() + record()", samples["ours_passes"], None))
    print(row("pybreaker: call()", samples["pybreaker_passes"], ours))
    print(row("purgatory: async with", samples["purgatory_passes"], ours))


def main() -> None:
    """Run the tool-layer benchmark and print the table."""
    asyncio.run(run())


if __name__ == "__main__":
    main()
