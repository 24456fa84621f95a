"""The Redis health gate, on a fake clock: degrade, fail fast, back off, recover."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY
from redis.exceptions import ConnectionError as RedisConnectionError

from agent_runtime.memory.errors import StoreUnavailableError
from agent_runtime.memory.health import RedisHealth
from tests.support.fake_time import FakeTime
from tests.support.identity import identity


def gauge(pool: str) -> float | None:
    labels = {"namespace": "tests", "pool": pool}
    return REGISTRY.get_sample_value("agentpool_memory_degraded", labels)


async def test_failures_degrade_then_fail_fast_until_the_backoff_passes() -> None:
    clock = FakeTime(1000.0)
    health = RedisHealth(identity("unit-a"), initial_backoff=1.0, max_backoff=4.0, clock=clock)
    attempts = 0

    async def broken() -> None:
        nonlocal attempts
        attempts += 1
        raise RedisConnectionError("connection refused")

    with pytest.raises(StoreUnavailableError, match="connection refused"):
        await health.call(broken, what="write")
    assert health.degraded
    assert gauge("unit-a") == 1.0
    status = health.status()
    assert status.degraded
    assert status.failures == 1
    assert "refused" in status.detail

    with pytest.raises(StoreUnavailableError, match="refused"):
        await health.call(broken, what="write")
    assert attempts == 1  # failed fast, Redis not touched

    clock.now += 1.0
    with pytest.raises(StoreUnavailableError):
        await health.call(broken, what="write")
    assert attempts == 2
    clock.now += 1.5  # backoff doubled to 2 s
    with pytest.raises(StoreUnavailableError, match="refused"):
        await health.call(broken, what="write")
    assert attempts == 2


async def test_backoff_is_capped_and_success_recovers() -> None:
    clock = FakeTime(1000.0)
    health = RedisHealth(identity("unit-b"), initial_backoff=1.0, max_backoff=4.0, clock=clock)

    async def broken() -> None:
        raise RedisConnectionError("down")

    async def fine() -> str:
        return "ok"

    for _ in range(6):
        clock.now += 10
        with pytest.raises(StoreUnavailableError):
            await health.call(broken, what="x")
    clock.now += 4.0
    assert await health.call(fine, what="x") == "ok"
    assert not health.degraded
    assert gauge("unit-b") == 0.0
    assert health.status().detail == "redis reachable"


async def test_probe_ignores_the_backoff() -> None:
    clock = FakeTime(1000.0)
    up = False

    async def ping() -> bool:
        if not up:
            raise RedisConnectionError("down")
        return True

    health = RedisHealth(identity("unit-c"), ping=ping, initial_backoff=100.0, clock=clock)
    assert await health.probe() is False
    up = True
    assert await health.probe() is True
    assert not health.degraded


async def test_other_errors_pass_through_without_degrading() -> None:
    health = RedisHealth(identity("unit-d"))

    async def bug() -> None:
        raise KeyError("not an outage")

    with pytest.raises(KeyError):
        await health.call(bug, what="x")
    assert not health.degraded
