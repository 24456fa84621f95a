"""The memory hierarchy against a real Redis: tiers, promotion, isolation, forget."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import JsonValue

from agent_runtime.config import PoolIdentity
from agent_runtime.config.memory import MemoryConfig, RoutingRule, RoutingSettings
from agent_runtime.memory import (
    InvalidMemoryError,
    KeySpace,
    MemoryHierarchy,
    create_health,
    create_redis,
)
from tests.support.wait import async_wait_until

POOL = PoolIdentity(namespace="tests", name="test-pool")

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=20,
)


def config_for(url: str, **overrides: object) -> MemoryConfig:
    document: dict[str, object] = {
        "redis": {"url": url},
        "episodic": {"embedder": {"kind": "hashing", "dimensions": 64}},
        "longTerm": {"compressAboveBytes": 256},
    }
    document.update(overrides)
    return MemoryConfig.model_validate(document)


class Replica:
    """What one agent pod holds: a client and a hierarchy built from config."""

    def __init__(self, config: MemoryConfig) -> None:
        self.client = create_redis(config.redis)
        self.health = create_health(POOL, self.client, config.redis)
        self.memory = MemoryHierarchy.from_config(config, POOL, self.client, self.health)

    async def close(self) -> None:
        await self.client.aclose()


@pytest.fixture
async def config(redis_url: str) -> MemoryConfig:
    return config_for(redis_url)


@pytest.fixture
async def replica(config: MemoryConfig) -> AsyncIterator[Replica]:
    made = Replica(config)
    yield made
    await made.close()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(value=json_values)
async def test_remembered_is_recalled_unchanged_from_every_tier(
    config: MemoryConfig, replica: Replica, value: JsonValue
) -> None:
    key = f"fact-{uuid.uuid4().hex}"
    tiers = await replica.memory.remember(key, value, tenant="u1", importance=0.9)
    assert tiers == ("working", "longTerm", "episodic")

    found = await replica.memory.recall(key, tenant="u1")
    assert found is not None
    assert found.tier == "working"
    assert found.value == value

    fresh = Replica(config)  # another replica: empty working memory
    try:
        from_redis = await fresh.memory.recall(key, tenant="u1")
        assert from_redis is not None
        assert from_redis.tier == "longTerm"
        assert from_redis.value == value
        promoted = await fresh.memory.recall(key, tenant="u1")
        assert promoted is not None
        assert promoted.tier == "working"
        assert promoted.value == value
    finally:
        await fresh.close()

    episodic_only = Replica(
        config.model_copy(
            update={
                "routing": RoutingSettings(
                    rules=(RoutingRule(min_importance=0, tiers=("episodic",)),)
                )
            }
        )
    )
    try:
        other = f"episode-{uuid.uuid4().hex}"
        await episodic_only.memory.remember(other, value, tenant="u1")
        found = await episodic_only.memory.recall(other, tenant="u1")
        assert found is not None
        assert found.tier == "episodic"
        assert found.value == value
        assert found.key == other
    finally:
        await episodic_only.close()


RECALL_IN_NEW_PROCESS = """
import asyncio, json, sys
from agent_runtime.config import PoolIdentity
from agent_runtime.config.memory import MemoryConfig
from agent_runtime.memory import MemoryHierarchy, create_health, create_redis

async def main():
    config = MemoryConfig.model_validate_json(sys.argv[1])
    pool = PoolIdentity(namespace="tests", name="test-pool")
    client = create_redis(config.redis)
    health = create_health(pool, client, config.redis)
    memory = MemoryHierarchy.from_config(config, pool, client, health)
    found = [await memory.recall(key, tenant=sys.argv[3]) for key in json.loads(sys.argv[2])]
    print(json.dumps([None if f is None else f.model_dump(mode="json") for f in found]))
    await client.aclose()

asyncio.run(main())
"""


@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(values=st.lists(json_values, min_size=1, max_size=15))
async def test_a_new_process_recalls_what_another_remembered(
    config: MemoryConfig, replica: Replica, values: list[JsonValue]
) -> None:
    keys = [f"k-{uuid.uuid4().hex}" for _ in values]
    for key, value in zip(keys, values, strict=True):
        await replica.memory.remember(key, value, tenant="tenant-1", importance=0.5)
    out = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-c",
            RECALL_IN_NEW_PROCESS,
            config.model_dump_json(),
            json.dumps(keys),
            "tenant-1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found = json.loads(out.stdout)
    assert [f["tier"] for f in found] == ["longTerm"] * len(values)
    assert [f["value"] for f in found] == values


async def test_tenants_never_see_each_other(replica: Replica) -> None:
    await replica.memory.remember(
        "secret", "tenant a's card number", tenant="tenant-a", importance=0.9
    )
    assert await replica.memory.recall("secret", tenant="tenant-b") is None
    assert await replica.memory.search("tenant a's card number", tenant="tenant-b") == []
    # Separator tricks cannot reach another tenant's keys.
    await replica.memory.remember("x", "mine", tenant="a:lt:b", importance=0.5)
    assert await replica.memory.recall("b:lt:x", tenant="a") is None
    hits = await replica.memory.search("tenant a's card number", tenant="tenant-a")
    assert [h.key for h in hits] == ["secret"]


async def test_forget_removes_from_every_tier(config: MemoryConfig, replica: Replica) -> None:
    await replica.memory.remember("pref", {"tea": "green"}, tenant="u", importance=0.95)
    other = Replica(config)
    try:
        assert await other.memory.search("pref tea green", tenant="u")
        removed = await replica.memory.forget("pref", tenant="u")
        assert removed == ("working", "longTerm", "episodic")
        assert await replica.memory.recall("pref", tenant="u") is None
        assert await other.memory.search("pref tea green", tenant="u") == []
        assert other.memory.episodic is not None
        assert other.memory.episodic.index_size("u") == 0
        assert await replica.memory.forget("pref", tenant="u") == ()
    finally:
        await other.close()


async def test_low_importance_stays_in_working_memory_only(
    config: MemoryConfig, replica: Replica
) -> None:
    assert await replica.memory.remember("scratch", 1, tenant="u", importance=0.1) == ("working",)
    hit = await replica.memory.recall("scratch", tenant="u")
    assert hit is not None
    assert hit.tier == "working"
    other = Replica(config)
    try:
        assert await other.memory.recall("scratch", tenant="u") is None
    finally:
        await other.close()


async def test_working_memory_is_per_conversation(replica: Replica) -> None:
    await replica.memory.remember("k", "v", tenant="u", importance=0.5, conversation="c1")
    hit = await replica.memory.recall("k", tenant="u", conversation="c2")
    assert hit is not None
    assert hit.tier == "longTerm"
    again = await replica.memory.recall("k", tenant="u", conversation="c2")
    assert again is not None
    assert again.tier == "working"


async def test_overwriting_replaces_every_copy(replica: Replica) -> None:
    await replica.memory.remember("k", "old", tenant="u", importance=0.9, conversation="c1")
    await replica.memory.recall("k", tenant="u", conversation="c2")  # promoted copy
    await replica.memory.remember("k", "new", tenant="u", importance=0.5, conversation="c1")
    for conversation in ("c1", "c2"):
        hit = await replica.memory.recall("k", tenant="u", conversation=conversation)
        assert hit is not None
        assert hit.value == "new"
    assert replica.memory.episodic is not None
    episode = await replica.memory.episodic.get_by_key("u", "k")
    assert episode is not None
    assert episode.data == "old"


async def test_large_values_are_stored_compressed_and_ttls_are_set(redis_url: str) -> None:
    config = config_for(redis_url, longTerm={"compressAboveBytes": 64, "ttlSeconds": 300})
    made = Replica(config)
    try:
        big = {"notes": "remember the milk " * 100}
        await made.memory.remember("big", big, tenant="u", importance=0.5)
        raw = redis.Redis.from_url(redis_url)
        try:
            name = KeySpace("agentpool", POOL).long_term("u", "big")
            stored = raw.get(name)
            assert isinstance(stored, bytes)
            assert stored.startswith(b"Z:")
            assert len(stored) < len(json.dumps(big))
            assert 0 < int(raw.ttl(name)) <= 300
        finally:
            raw.close()
        fresh = Replica(config)
        try:
            hit = await fresh.memory.recall("big", tenant="u")
            assert hit is not None
            assert hit.value == big
        finally:
            await fresh.close()
    finally:
        await made.close()


async def test_semantic_recall_answers_from_episodic_memory(replica: Replica) -> None:
    await replica.memory.remember(
        "trip",
        "the customer is flying to Lisbon on the 3rd of May",
        tenant="u",
        importance=0.9,
    )
    await replica.memory.forget("trip", tenant="other")  # a no-op elsewhere
    hit = await replica.memory.recall(
        "travel", tenant="u", query="when is the customer flying to Lisbon"
    )
    assert hit is not None
    assert hit.tier == "episodic"
    assert hit.key == "trip"
    assert hit.score is not None
    assert 0.5 <= hit.score < 1.0


@pytest.mark.parametrize(
    ("key", "value", "tenant", "importance"),
    [
        ("", 1, "u", 0.5),
        ("k", (1, 2), "u", 0.5),
        ("k", 1, "", 0.5),
        ("k", 1, "u", 1.5),
        ("k", {1: 2}, "u", 0.9),
    ],
)
async def test_bad_input_is_refused_clearly(
    replica: Replica, key: str, value: JsonValue, tenant: str, importance: float
) -> None:
    with pytest.raises(InvalidMemoryError):
        await replica.memory.remember(key, value, tenant=tenant, importance=importance)


async def test_other_replicas_drop_overwritten_and_forgotten_keys(config: MemoryConfig) -> None:
    first, second = Replica(config), Replica(config)
    listeners = [
        asyncio.create_task(first.memory.watch_invalidations()),
        asyncio.create_task(second.memory.watch_invalidations()),
    ]
    try:
        for made in (first, second):
            assert made.memory.invalidator is not None
            await asyncio.wait_for(made.memory.invalidator.subscribed.wait(), 10)
        await first.memory.remember("plan", "v1", tenant="u", importance=0.5)
        await second.memory.recall("plan", tenant="u")  # now cached on the second replica
        await second.memory.remember("note", "only here", tenant="u", importance=0.1)

        await first.memory.remember("plan", "v2", tenant="u", importance=0.5)

        async def second_sees(value: str) -> bool:
            found = await second.memory.recall("plan", tenant="u")
            return found is not None and found.value == value

        await async_wait_until(lambda: second_sees("v2"), timeout=10, what="overwrite to spread")
        await first.memory.forget("plan", tenant="u")

        async def second_forgot() -> bool:
            return await second.memory.recall("plan", tenant="u") is None

        await async_wait_until(second_forgot, timeout=10, what="forget to spread")
        note = await second.memory.recall("note", tenant="u")
        assert note is not None
        assert note.tier == "working"  # working-only memories are untouched
    finally:
        for task in listeners:
            task.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)
        await first.close()
        await second.close()
