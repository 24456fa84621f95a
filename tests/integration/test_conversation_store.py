"""The conversation store against a real Redis: appends, snapshots, replay, conflicts, retention."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from agent_runtime.config.memory import MemoryConfig, RedisSettings, RetentionSettings
from agent_runtime.conversation.state import (
    Event,
    InputReceived,
    InvalidEventError,
    ResponseGenerated,
    ToolResultReceived,
    fold,
    new_state,
)
from agent_runtime.conversation.store import (
    ConflictError,
    ConversationStore,
    HistoryUnavailableError,
)
from agent_runtime.memory import KeySpace, RedisHealth, create_redis
from tests.support.identity import identity
from tests.unit.test_conversation_state import histories

KEYS = KeySpace("agentpool", identity("state-pool"))


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis]:
    made = create_redis(RedisSettings(url=redis_url))
    yield made
    await made.aclose()


def store(client: Redis, **options: object) -> ConversationStore:
    return ConversationStore(client, KEYS, RedisHealth(identity("state-pool")), **options)  # type: ignore[arg-type]


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events=histories(max_events=30), data=st.data())
async def test_load_and_replay_match_live_application(
    client: Redis, events: list[Event], data: st.DataObject
) -> None:
    conversation = f"c-{uuid.uuid4().hex}"
    every = data.draw(st.integers(1, 8))
    writer = store(client, snapshot_every=every)
    live = new_state(conversation)
    position = 0
    while position < len(events):
        size = data.draw(st.integers(1, 4))
        chunk = events[position : position + size]
        live = await writer.append(live, *chunk)
        position += size
    assert live == fold(new_state(conversation), events)

    reader = store(client, snapshot_every=every)
    assert await reader.load(conversation) == live
    assert await reader.replay(conversation, use_snapshot=False) == live
    point = data.draw(st.integers(0, len(events)))
    expected = fold(new_state(conversation), events[:point])
    assert await reader.replay(conversation, to_version=point) == expected
    assert await reader.replay(conversation, to_version=point, use_snapshot=False) == expected


async def test_snapshots_are_written_every_n_events(client: Redis) -> None:
    writer = store(client, snapshot_every=5)
    state = new_state("c")
    for i in range(12):
        state = await writer.append(state, InputReceived(at=i, content=f"m{i}"))
    assert await client.hget(KEYS.conversation_snapshot("c"), "version") == b"10"
    assert (await writer.load("c")).version == 12


async def test_a_stale_writer_gets_a_conflict_and_nothing_is_written(client: Redis) -> None:
    first, second = store(client), store(client)
    a = await first.load("c")
    b = await second.load("c")
    await first.append(a, InputReceived(at=1, content="from a"))
    with pytest.raises(ConflictError, match="at version 1, not the expected 0") as caught:
        await second.append(b, InputReceived(at=2, content="from b"))
    assert (caught.value.expected, caught.value.actual) == (0, 1)
    fresh = await second.load("c")
    after = await second.append(fresh, InputReceived(at=3, content="from b, retried"))
    assert [m.content for m in after.messages] == ["from a", "from b, retried"]


async def test_retrying_an_append_that_landed_does_not_duplicate_it(client: Redis) -> None:
    writer = store(client)
    state = await writer.append(new_state("c"), InputReceived(at=1, content="hi"))
    events = (ResponseGenerated(at=2, content="hello"), InputReceived(at=3, content="?"))
    first = await writer.append(state, *events)
    again = await writer.append(state, *events)  # as if the first reply had been lost
    assert again == first
    assert [v for v, _ in await writer.events("c")] == [1, 2, 3]
    with pytest.raises(ConflictError):
        await writer.append(state, ResponseGenerated(at=2, content="something else"))


async def test_invalid_events_are_refused_before_anything_is_written(client: Redis) -> None:
    writer = store(client)
    with pytest.raises(InvalidEventError):
        await writer.append(new_state("c"), ToolResultReceived(at=1, call_id="nope"))
    assert await client.exists(KEYS.conversation_events("c")) == 0


WRITER = """
import asyncio, sys
from agent_runtime.config.memory import RedisSettings
from agent_runtime.memory import KeySpace, RedisHealth, create_redis
from agent_runtime.config import PoolIdentity
from agent_runtime.conversation.store import ConflictError, ConversationStore
from agent_runtime.conversation.state import InputReceived

async def main(url, conversation, name, count):
    client = create_redis(RedisSettings(url=url))
    pool = PoolIdentity(namespace="tests", name="state-pool")
    keys = KeySpace("agentpool", pool)
    health = RedisHealth(pool)
    store = ConversationStore(client, keys, health, snapshot_every=7)
    conflicts = 0
    for i in range(count):
        while True:
            state = await store.load(conversation)
            try:
                await store.append(state, InputReceived(at=i, content=f"{name}:{i}"))
                break
            except ConflictError:
                conflicts += 1
    print(conflicts)
    await client.aclose()

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
"""


async def test_two_processes_appending_keep_a_valid_history(client: Redis, redis_url: str) -> None:
    count = 150
    writers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WRITER,
            redis_url,
            "shared",
            name,
            str(count),
            stdout=asyncio.subprocess.PIPE,
        )
        for name in ("p1", "p2")
    ]
    outputs = await asyncio.wait_for(asyncio.gather(*(w.communicate() for w in writers)), 120)
    assert [w.returncode for w in writers] == [0, 0], outputs

    reader = store(client)
    events = await reader.events("shared")
    assert [version for version, _ in events] == list(range(1, 2 * count + 1))
    contents = [e.content for _, e in events if isinstance(e, InputReceived)]
    for name in ("p1", "p2"):
        mine = [c for c in contents if c.startswith(f"{name}:")]
        assert mine == [f"{name}:{i}" for i in range(count)]  # each once, in order
    state = await reader.load("shared")
    assert state == fold(new_state("shared"), [e for _, e in events])


async def test_retention_trims_only_behind_the_latest_snapshot(client: Redis) -> None:
    writer = store(client, snapshot_every=10, retention=RetentionSettings(max_events=5))
    state = new_state("c")
    for i in range(37):
        state = await writer.append(state, InputReceived(at=i, content=f"m{i}"))
    # Trimming runs with each snapshot: at 30 it kept the last five (26..30).
    assert [version for version, _ in await writer.events("c")] == list(range(26, 38))
    # Now the last five are 33..37, but 31 and 32 are newer than the snapshot: kept.
    assert await writer.trim("c") == 5
    assert [version for version, _ in await writer.events("c")] == list(range(31, 38))
    assert await writer.load("c") == state
    with pytest.raises(HistoryUnavailableError, match="trimmed"):
        await writer.replay("c", use_snapshot=False)
    with pytest.raises(HistoryUnavailableError):
        await writer.replay("c", to_version=12)
    assert (await writer.replay("c", to_version=30)).version == 30
    state = await writer.append(state, ResponseGenerated(at=40, content="done"))
    assert (await writer.load("c")).messages[-1].content == "done"


async def test_age_retention_uses_event_time(client: Redis) -> None:
    now = 10_000.0
    writer = store(
        client,
        snapshot_every=4,
        retention=RetentionSettings(max_age_seconds=100),
        clock=lambda: now,
    )
    state = new_state("c")
    for at in (1, 2, 3, 9_950, 9_960, 9_970, 9_980, 9_990):
        state = await writer.append(state, InputReceived(at=at, content=str(at)))
    kept = [version for version, _ in await writer.events("c")]
    assert kept == [4, 5, 6, 7, 8]  # 1..3 are older than 100 s; 4+ are young
    assert await writer.trim("c") == 0
    assert await writer.load("c") == state


async def test_store_is_built_from_config(client: Redis, redis_url: str) -> None:
    config = MemoryConfig.model_validate(
        {"redis": {"url": redis_url}, "state": {"snapshotEvery": 3}}
    )
    built = ConversationStore.from_config(
        config, identity("state-pool"), client, RedisHealth(identity("state-pool"))
    )
    assert built.snapshot_every == 3
    state = await built.append(new_state("cfg"), InputReceived(at=1, content="hi"))
    assert (await store(client).load("cfg")) == state
