"""Faults stay where they belong: a corrupt record, vector or log entry in Redis is an
error for that key (or is skipped) and touches no other key and no other tenant; a
tenant's bookkeeping goes when its entries go."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from redis.exceptions import ResponseError

from agent_runtime.memory import KeySpace
from agent_runtime.memory.errors import CorruptRecordError
from tests.integration.test_memory_hierarchy import POOL, Replica, config_for

KEYS = KeySpace("agentpool", POOL)


@pytest.fixture
async def replica(redis_url: str) -> AsyncIterator[Replica]:
    made = Replica(config_for(redis_url))
    yield made
    await made.close()


@pytest.mark.parametrize(
    "payload",
    [
        b"garbage",
        b"\x00J{not json",
        b"\x00J" + b"[" * 5000 + b"]" * 5000,
        b'\x00J{"v": 1, "tenant": "a", "key": "k", "value": NaN}',
        b'\x00J{"v":1,"tenant":"a","key":"k","value":"\\ud800","importance":0.5,'
        b'"metadata":{},"createdAt":0,"expiresAt":null}',
        b"\x00Z" + b"\x78\x9c" + b"\xff" * 40,
    ],
)
async def test_a_corrupt_record_is_an_error_for_that_key_only(
    replica: Replica, payload: bytes
) -> None:
    memory = replica.memory
    for tenant in ("a", "b"):
        for key in ("k", "other"):
            await memory.remember(key, {"t": tenant, "k": key}, tenant=tenant, importance=0.9)
    await replica.client.set(KEYS.long_term("a", "k"), payload)
    fresh = Replica(config_for(replica_url(replica)))  # nothing in working memory
    try:
        with pytest.raises(CorruptRecordError):
            await fresh.memory.recall("k", tenant="a")
        assert (await fresh.memory.recall("other", tenant="a")).value == {"t": "a", "k": "other"}  # type: ignore[union-attr]
        assert (await fresh.memory.recall("k", tenant="b")).value == {"t": "b", "k": "k"}  # type: ignore[union-attr]
        assert "longTerm" in await fresh.memory.forget("k", tenant="a")  # still removable
    finally:
        await fresh.close()


def replica_url(replica: Replica) -> str:
    kwargs = replica.client.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"


async def test_a_key_of_the_wrong_type_is_a_redis_error_not_a_crash(replica: Replica) -> None:
    await replica.client.rpush(KEYS.long_term("a", "k"), "x")
    with pytest.raises(ResponseError):  # api_errors: 502, "the memory store answered..."
        await replica.memory.recall("k", tenant="a")
    await replica.memory.remember("k", 1, tenant="b", importance=0.9)
    assert (await replica.memory.recall("k", tenant="b")).value == 1  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "vector", [b"short", b"\x00\x00\xc0\x7f" * 64, json.dumps([1.0] * 64).encode()]
)
async def test_a_corrupt_vector_leaves_every_other_episode_and_tenant_searchable(
    replica: Replica, vector: bytes
) -> None:
    episodic = replica.memory.episodic
    assert episodic is not None
    a1 = await episodic.add("a", "the dog is called Biscuit", 1)
    await episodic.add("a", "invoices are paid monthly", 2)
    await episodic.add("b", "the cat is called Pixel", 3)
    await replica.client.hset(KEYS.episode_vectors("a"), str(a1.id), vector)
    later = Replica(config_for(replica_url(replica)))  # loads every index from Redis
    try:
        assert later.memory.episodic is not None
        b_hits = await later.memory.episodic.search("b", "what is the cat called", k=1)
        assert b_hits[0].episode.data == 3
        a_hits = await later.memory.episodic.search("a", "when are invoices paid", k=5)
        assert [hit.episode.data for hit in a_hits] == [2]  # the corrupt one is left out
        # and incrementally (the replica that was running sees the same)
        await episodic.add("a", "a third episode", 4)
        await replica.client.hset(KEYS.episode_vectors("a"), "999999", vector)
        await replica.client.xadd(KEYS.episode_log, {"op": "add", "tenant": "a", "id": "999999"})
        await replica.client.xadd(KEYS.episode_log, {"junk": "entry"})
        assert (await episodic.search("b", "cat", k=1))[0].episode.data == 3
    finally:
        await later.close()


async def test_a_corrupt_episode_document_is_skipped_by_search(replica: Replica) -> None:
    episodic = replica.memory.episodic
    assert episodic is not None
    bad = await episodic.add("a", "the dog is called Biscuit", 1)
    await episodic.add("a", "the dog likes walks", 2)
    await replica.client.hset(KEYS.episode_docs("a"), str(bad.id), b"garbage")
    hits = await episodic.search("a", "dog", k=5)
    assert [hit.episode.data for hit in hits] == [2]
    with pytest.raises(CorruptRecordError):
        await episodic.get("a", bad.id)


async def test_a_tenants_index_goes_with_its_last_episode(replica: Replica) -> None:
    episodic = replica.memory.episodic
    assert episodic is not None
    added = [await episodic.add(f"t{i}", f"episode {i}", i) for i in range(20)]
    await episodic.sync()
    assert len(episodic._indexes) == 20
    for episode in added:
        await episodic.delete(episode.tenant, episode.id)
    await episodic.sync()
    assert episodic._indexes == {}
