"""Episodic memory across replicas: incremental index sync, full load, deletes, recall."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest
from redis.asyncio import Redis

from agent_runtime.config.memory import IndexSettings, RedisSettings
from agent_runtime.memory import (
    EpisodicMemory,
    HashingEmbedder,
    KeySpace,
    RedisHealth,
    create_redis,
)
from tests.support.identity import identity


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
