"""Episodic memory across replicas: incremental index sync, full load, deletes, recall."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import numpy as np
import pytest
import redis
from redis.asyncio import Redis

from agent_runtime.config.memory import IndexSettings, RedisSettings
from agent_runtime.memory import (
    EpisodicMemory,
    HashingEmbedder,
    KeySpace,
    RedisHealth,
    create_redis,
)
from agent_runtime.memory.errors import StoreUnavailableError
from tests.support.identity import identity
from tests.support.redis_server import RedisServer
from tests.support.wait import async_wait_until


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis]:
    made = create_redis(RedisSettings(url=redis_url))
    yield made
    await made.aclose()


def replica(client: Redis) -> EpisodicMemory:
    return EpisodicMemory(
        client,
        KeySpace("agentpool", identity("episodes")),
        RedisHealth(identity("episodes")),
        HashingEmbedder(128),
        index_settings=IndexSettings(dtype="f32"),
    )


TEXTS = [
    "user prefers vegetarian restaurants near the office",
    "invoice 881 was paid late by two weeks",
    "deployment of the billing service failed on friday",
    "the user's dog is called Biscuit",
    "meeting with the design team moved to thursday",
]


async def test_another_replica_syncs_incrementally_and_sees_deletes(client: Redis) -> None:
    writer, reader = replica(client), replica(client)
    assert await reader.sync() == 0  # full load of an empty pool
    added = [await writer.add("u", text, {"n": i}) for i, text in enumerate(TEXTS)]
    assert await reader.sync() == len(TEXTS)
    assert reader.index_size("u") == len(TEXTS)
    hits = await reader.search("u", "what is the dog's name", k=2)
    assert hits[0].episode.data == {"n": 3}
    assert hits[0].episode.text == TEXTS[3]

    assert await writer.delete("u", added[3].id)
    hits = await reader.search("u", "what is the dog's name", k=5)
    assert all(h.episode.id != added[3].id for h in hits)
    assert reader.index_size("u") == len(TEXTS) - 1


async def test_a_replica_started_later_loads_everything(client: Redis) -> None:
    writer = replica(client)
    for text in TEXTS:
        await writer.add("u", text)
    await writer.add("v", "other tenant's note about invoices")
    late = replica(client)
    assert await late.sync() == len(TEXTS) + 1
    assert late.index_size("u") == len(TEXTS)
    assert late.index_size("v") == 1
    assert await late.sync() == 0


async def test_exact_and_approximate_search_agree_on_small_sets(client: Redis) -> None:
    memory = replica(client)
    for text in TEXTS:
        await memory.add("u", text)
    for query in ("late invoice", "billing deployment", "design meeting"):
        approx = [h.episode.id for h in await memory.search("u", query, k=3)]
        exact = [h.episode.id for h in await memory.search("u", query, k=3, exact=True)]
        assert approx == exact


async def test_a_key_moves_to_its_newest_episode(client: Redis) -> None:
    memory = replica(client)
    first = await memory.add("u", "coffee order: flat white", "flat white", key="coffee")
    second = await memory.add("u", "coffee order: espresso", "espresso", key="coffee")
    found = await memory.get_by_key("u", "coffee")
    assert found is not None
    assert found.id == second.id
    assert await memory.get("u", first.id) is None
    await memory.sync()
    assert memory.index_size("u") == 1
    assert await memory.forget_key("u", "coffee")
    assert await memory.get_by_key("u", "coffee") is None


async def test_vectors_are_persisted_as_float32(client: Redis) -> None:
    memory = replica(client)
    episode = await memory.add("u", TEXTS[0])
    raw = await client.hget(
        KeySpace("agentpool", identity("episodes")).episode_vectors("u"), str(episode.id)
    )
    assert isinstance(raw, bytes)
    stored = np.frombuffer(raw, dtype="<f4")
    assert np.array_equal(stored, HashingEmbedder(128).embed_one(TEXTS[0]))


@contextlib.asynccontextmanager
async def following(memory: EpisodicMemory, block_seconds: float = 0.2) -> AsyncIterator[None]:
    task = asyncio.create_task(memory.follow(block_seconds=block_seconds, max_backoff=0.2))
    try:
        await async_wait_until(
            lambda: asyncio.sleep(0, memory.following), timeout=10, what="the follower"
        )
        yield
    finally:
        task.cancel()
        await asyncio.wait({task}, timeout=10)
        stopped = task.done()
        while not task.done():  # stop it anyway: the assertion below is the one failure
            task.cancel()
            await asyncio.wait({task}, timeout=1)
        assert stopped, "the follower did not stop when cancelled"


def stream_reads(url: str) -> int:
    """XRANGE and XREAD calls Redis has served so far."""
    with redis.Redis.from_url(url) as admin:
        stats = admin.info("commandstats")
    return sum(stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in ("xrange", "xread"))


async def test_a_follower_applies_changes_as_they_come_and_searches_read_no_log(
    client: Redis, redis_url: str
) -> None:
    writer, reader = replica(client), replica(client)
    async with following(reader, block_seconds=5):
        added = [await writer.add("u", text, {"n": i}) for i, text in enumerate(TEXTS)]
        # No search asks: the follower applies each change by itself.
        await async_wait_until(
            lambda: asyncio.sleep(0, reader.index_size("u") == len(TEXTS)),
            timeout=10,
            what="the follower applying the adds",
        )
        before = stream_reads(redis_url)
        for _ in range(20):
            hits = await reader.search("u", "what is the dog's name", k=1)
            assert hits[0].episode.id == added[3].id
        assert await reader.search("nobody", "anything") == []
        # The follower is blocked in one XREAD (5 s) that started before the searches.
        assert stream_reads(redis_url) - before <= 1

        assert await writer.delete("u", added[3].id)
        await async_wait_until(
            lambda: asyncio.sleep(0, reader.index_size("u") == len(TEXTS) - 1),
            timeout=10,
            what="the follower applying the delete",
        )
        hits = await reader.search("u", "what is the dog's name", k=5)
        assert added[3].id not in {h.episode.id for h in hits}


async def test_a_followed_replica_reads_its_own_writes_at_once(client: Redis) -> None:
    memory = replica(client)
    async with following(memory):
        for i in range(30):
            text = f"note {i}: the courier comes on day {i} of the month"
            episode = await memory.add("u", text, key=f"note-{i}")
            # Asked before the follower can have seen the add: the search syncs itself.
            hits = await memory.search("u", text, k=1)
            assert hits[0].episode.id == episode.id, i
            assert await memory.forget_key("u", f"note-{i}")
            hits = await memory.search("u", text, k=30)
            assert episode.id not in {h.episode.id for h in hits}, i


async def test_a_follower_that_loses_redis_stops_vouching_and_catches_up(
    redis_server: RedisServer, redis_url: str
) -> None:
    made = create_redis(RedisSettings(url=redis_url))
    reader = replica(made)
    try:
        async with following(reader):
            redis_server.stop(kill=True)
            await async_wait_until(
                lambda: asyncio.sleep(0, not reader.following),
                timeout=10,
                what="the follower noticing",
            )
            # No stale answer from the local index: the search syncs, and Redis is gone.
            with pytest.raises(StoreUnavailableError):
                await reader.search("u", "anything")
            redis_server.start()
            writer_client = create_redis(RedisSettings(url=redis_url))
            try:
                # Written while the follower is still backing off: found by its catch-up.
                await replica(writer_client).add("u", TEXTS[3])
            finally:
                await writer_client.aclose()
            await async_wait_until(
                lambda: asyncio.sleep(0, reader.following and reader.index_size("u") == 1),
                timeout=20,
                what="the follower catching up",
            )
    finally:
        await made.aclose()
