"""State shared through a real Redis: the circuit breaker across two runtime processes,
trial rationing between replicas, and the shared cache tier."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from agent_runtime.cache import ToolCache
from agent_runtime.config.tools import CircuitBreakerSettings
from agent_runtime.memory.keys import KeySpace
from agent_runtime.resilience import (
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
    SharedCircuitBreaker,
)
from tests.support.fake_time import FakeTime
from tests.support.identity import identity
from tests.support.redis_server import RedisServer
from tests.support.wait import wait_until

KEYS = KeySpace("agentpool", identity("shared"))

# One "runtime process": a registry with a shared breaker around a tool that fails on
# request; it makes the calls it is told to and reports what happened as JSON.
RUNTIME = r"""
import asyncio, json, sys
from redis.asyncio import Redis
from agent_runtime.config.tools import ResilienceSettings
from agent_runtime.resilience import CircuitOpenError
from agent_runtime.tools.errors import ToolError
from agent_runtime.config import PoolIdentity
from agent_runtime.memory.keys import KeySpace
from agent_runtime.tools.registry import ToolRegistry
from agent_runtime.tools.tool import CallContext

CONTEXT = CallContext(tenant="tests")

async def main(url, fail, calls):
    invoked = []
    async def dependency(args, _ctx):
        invoked.append(1)
        if args["fail"]:
            raise ToolError("dep", "dependency down", kind="server")
        return "ok"
    redis = Redis.from_url(url)
    policy = ResilienceSettings.model_validate({
        "retry": {"enabled": False},
        "circuitBreaker": {"shared": True, "syncIntervalSeconds": 0, "minimumCalls": 3,
                           "windowSize": 3, "waitDurationInOpenSeconds": 1.5,
                           "permittedCallsInHalfOpen": 1},
    })
    keys = KeySpace("agentpool", PoolIdentity(namespace="tests", name="shared"))
    registry = ToolRegistry(resilience=policy, redis=redis, keys=keys)
    registry.register_function(dependency, name="dep", description="",
                               parameters={"type": "object"})
    outcomes = []
    for _ in range(calls):
        try:
            outcomes.append((await registry.call("dep", {"fail": fail}, context=CONTEXT)).value)
        except CircuitOpenError:
            outcomes.append("refused")
        except ToolError:
            outcomes.append("failed")
    state = registry.breakers()[0].state.value
    await redis.aclose()
    print(json.dumps({"outcomes": outcomes, "invoked": len(invoked), "state": state}))

asyncio.run(main(sys.argv[1], sys.argv[2] == "fail", int(sys.argv[3])))
"""


def runtime(url: str, mode: str, calls: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", RUNTIME, url, mode, str(calls)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


async def test_two_runtime_processes_share_the_open_state(redis_url: str) -> None:
    first = runtime(redis_url, "fail", 4)
    assert first == {"outcomes": ["failed"] * 3 + ["refused"], "invoked": 3, "state": "open"}

    # A different process, with no local history, refuses at once: it read the state.
    second = runtime(redis_url, "ok", 2)
    assert second == {"outcomes": ["refused", "refused"], "invoked": 0, "state": "open"}

    async with Redis.from_url(redis_url) as redis:
        shared = await redis.hgetall(f"{KEYS.breaker_prefix}dep")
    until = float(shared[b"until"])
    wait_until(lambda: time.time() > until, timeout=10, what="the shared open period to end")

    # After the wait one trial goes through, succeeds and closes the breaker for everyone.
    third = runtime(redis_url, "ok", 1)
    assert third == {"outcomes": ["ok"], "invoked": 1, "state": "closed"}
    async with Redis.from_url(redis_url) as redis:
        assert await redis.exists(f"{KEYS.breaker_prefix}dep") == 0
    fourth = runtime(redis_url, "ok", 2)
    assert fourth == {"outcomes": ["ok", "ok"], "invoked": 2, "state": "closed"}


def replica(redis: Redis, clock: FakeTime, wall: FakeTime) -> SharedCircuitBreaker:
    settings = CircuitBreakerSettings(
        minimum_calls=2,
        window_size=2,
        wait_duration_in_open_seconds=10,
        permitted_calls_in_half_open=1,
        shared=True,
    )
    return SharedCircuitBreaker(
        CircuitBreaker("svc", settings, clock=clock),
        redis,
        sync_interval=0,
        clock=clock,
        wall=wall,
        key_prefix=KEYS.breaker_prefix,
    )


async def test_replicas_follow_each_other_and_share_the_trial_budget(redis_url: str) -> None:
    clock, wall = FakeTime(), FakeTime()
    wall.now = 1_000_000.0
    async with Redis.from_url(redis_url) as redis:
        a, b = replica(redis, clock, wall), replica(redis, clock, wall)
        for _ in range(2):
            await a.record(await a.acquire(), failed=True)
        assert a.breaker.state is BreakerState.OPEN
        with pytest.raises(CircuitOpenError) as caught:
            await b.acquire()
        assert caught.value.retry_after == pytest.approx(10)

        clock.now += 10
        wall.now += 10
        trial = await a.acquire()  # the pool's single half-open trial
        with pytest.raises(CircuitOpenError):
            await b.acquire()  # b is half-open too, but the trial budget is spent
        await a.record(trial, failed=False)
        assert a.breaker.snapshot().state is BreakerState.CLOSED
        permit = await b.acquire()  # b saw the key go and closed
        assert b.breaker.state is BreakerState.CLOSED
        await b.record(permit, failed=False)


async def test_a_replica_without_redis_falls_back_to_its_own_breaker(
    redis_server: RedisServer,
) -> None:
    clock, wall = FakeTime(), FakeTime()
    async with Redis.from_url(
        redis_server.url, socket_connect_timeout=0.2, socket_timeout=0.2
    ) as redis:
        a = replica(redis, clock, wall)
        redis_server.stop(kill=True)
        try:
            for _ in range(2):
                await a.record(await a.acquire(), failed=True)
            with pytest.raises(CircuitOpenError):
                await a.acquire()
        finally:
            redis_server.start()


async def test_the_shared_cache_tier_serves_other_replicas(redis_url: str) -> None:
    computed: list[int] = []

    async def compute() -> dict[str, int]:
        computed.append(1)
        return {"answer": 42}

    async with Redis.from_url(redis_url) as redis:
        prefix = KEYS.cache_prefix
        one, two = (
            ToolCache(10, redis=redis, shared_prefix=prefix),
            ToolCache(10, redis=redis, shared_prefix=prefix),
        )
        assert await one.get_or_compute("t", "u", {"q": 1}, 60, compute) == ({"answer": 42}, False)
        assert await two.get_or_compute("t", "u", {"q": 1}, 60, compute) == ({"answer": 42}, True)
        # Another tenant's identical call is computed for it, not served from the first's.
        assert await two.get_or_compute("t", "v", {"q": 1}, 60, compute) == ({"answer": 42}, False)
        computed.pop()
        assert computed == [1]
        assert two.stats().shared_hits == 1
        await two.invalidate("t")
        three = ToolCache(10, redis=redis, shared_prefix=prefix)
        assert await three.get_or_compute("t", "u", {"q": 1}, 60, compute) == (
            {"answer": 42},
            False,
        )
        assert computed == [1, 1]
        assert await redis.ttl(next(iter(await redis.keys(f"{prefix}t:*")))) <= 60


async def test_the_cache_keeps_working_when_redis_is_down(redis_server: RedisServer) -> None:
    async def compute() -> int:
        return 7

    async with Redis.from_url(
        redis_server.url, socket_connect_timeout=0.2, socket_timeout=0.2
    ) as redis:
        cache = ToolCache(10, redis=redis, shared_prefix=KEYS.cache_prefix)
        redis_server.stop(kill=True)
        try:
            assert await cache.get_or_compute("t", "u", {}, 60, compute) == (7, False)
            assert await cache.get_or_compute("t", "u", {}, 60, compute) == (7, True)
            await cache.invalidate("t")
        finally:
            redis_server.start()
