"""Redis killed and restarted mid-run: degrade, refuse what cannot be kept, lose nothing acked."""

from __future__ import annotations

import asyncio

import pytest
import redis
from prometheus_client import REGISTRY

from agent_runtime.config.memory import MemoryConfig
from agent_runtime.conversation.state import InputReceived, ResponseGenerated, new_state
from agent_runtime.conversation.store import ConversationStore
from agent_runtime.memory import MemoryHierarchy, StoreUnavailableError, create_health, create_redis
from tests.support.identity import identity
from tests.support.redis_server import RedisServer
from tests.support.wait import async_wait_until


def degraded_gauge(pool: str) -> float | None:
    labels = {"namespace": "tests", "pool": pool}
    return REGISTRY.get_sample_value("agentpool_memory_degraded", labels)


async def test_redis_killed_and_restarted_mid_run(redis_server: RedisServer) -> None:
    with redis.Redis.from_url(redis_server.url) as admin:
        admin.flushall()
        # A SIGKILL is a process crash, which the AOF page cache survives anyway; `always`
        # makes every acknowledged write durable even against losing the machine.
        admin.config_set("appendfsync", "always")
    config = MemoryConfig.model_validate(
        {
            "redis": {"url": redis_server.url, "reconnectBackoffMaxSeconds": 0.5},
            "episodic": {"embedder": {"dimensions": 32}},
            "state": {"snapshotEvery": 5},
        }
    )
    client = create_redis(config.redis)
    pool = identity("outage")
    health = create_health(pool, client, config.redis)
    memory = MemoryHierarchy.from_config(config, pool, client, health)
    conversations = ConversationStore.from_config(config, pool, client, health)
    try:
        acked: dict[str, int] = {}
        state = new_state("conv")
        for i in range(30):
            tiers = await memory.remember(f"k{i}", i, tenant="u", importance=0.9)
            assert "longTerm" in tiers
            acked[f"k{i}"] = i
            state = await conversations.append(state, InputReceived(at=i, content=f"m{i}"))

        redis_server.stop(kill=True)

        for i in range(30, 40):
            with pytest.raises(StoreUnavailableError, match="Redis is unreachable"):
                await memory.remember(f"k{i}", i, tenant="u", importance=0.9)
        status = memory.status()
        assert status.degraded
        assert status.last_error
        assert degraded_gauge("outage") == 1.0

        # Working memory keeps serving what this replica holds; nothing else is invented.
        hit = await memory.recall("k3", tenant="u")
        assert hit is not None
        assert hit.tier == "working"
        assert hit.value == 3
        with pytest.raises(StoreUnavailableError):  # unknown now, not "not found"
            await memory.recall("k35", tenant="u")
        assert await memory.remember("scratch", "ok", tenant="u", importance=0.1) == ("working",)
        with pytest.raises(StoreUnavailableError):
            await conversations.append(state, InputReceived(at=99, content="lost?"))

        redis_server.start()
        await async_wait_until(health.probe, timeout=20, what="memory to recover")
        assert not memory.status().degraded
        assert degraded_gauge("outage") == 0.0

        # Every acknowledged write survived the crash; refused ones were never stored.
        fresh = MemoryHierarchy.from_config(config, pool, client, health)
        for key, value in acked.items():
            found = await fresh.recall(key, tenant="u")
            assert found is not None
            assert found.tier == "longTerm"
            assert found.value == value
        assert await fresh.recall("k35", tenant="u") is None
        loaded = await conversations.load("conv")
        assert loaded == state
        continued = await conversations.append(loaded, ResponseGenerated(at=100, content="back"))
        assert continued.version == 31
        assert await memory.remember("k40", 40, tenant="u", importance=0.9)
    finally:
        await client.aclose()


async def test_recovery_happens_by_itself_with_the_watch_task(redis_server: RedisServer) -> None:
    config = MemoryConfig.model_validate(
        {
            "redis": {"url": redis_server.url, "reconnectBackoffMaxSeconds": 0.3},
        }
    )
    client = create_redis(config.redis)
    health = create_health(identity("outage-watch"), client, config.redis)
    watcher = asyncio.create_task(health.watch(interval=0.1))
    try:
        redis_server.stop(kill=True)
        await async_wait_until(
            lambda: _true_if(health.degraded), timeout=10, what="the outage to be noticed"
        )
        redis_server.start()
        await async_wait_until(
            lambda: _true_if(not health.degraded), timeout=20, what="recovery without traffic"
        )
    finally:
        watcher.cancel()
        await client.aclose()


async def _true_if(condition: bool) -> bool:
    return condition
