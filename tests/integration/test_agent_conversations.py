"""The conversations a turn opens against a real Redis: owner, writer lease and the read
in one round trip (`RedisConversations.turn`), with the errors of the separate steps."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, given, settings
from redis.asyncio import Redis

from agent_runtime.agent.conversations import (
    ConversationBusyError,
    ConversationNotFoundError,
    RedisConversations,
)
from agent_runtime.config.memory import RedisSettings, RetentionSettings
from agent_runtime.conversation.state import (
    Event,
    InputReceived,
    ResponseGenerated,
    fold,
    new_state,
)
from agent_runtime.conversation.store import ConversationStore, FirstWrite
from agent_runtime.memory import KeySpace, RedisHealth, create_redis
from tests.support.identity import identity
from tests.unit.test_conversation_state import histories

KEYS = KeySpace("agentpool", identity("turn-pool"))


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis]:
    made = create_redis(RedisSettings(url=redis_url))
    yield made
    await made.aclose()


def conversations(client: Redis, **store_options: object) -> RedisConversations:
    health = RedisHealth(identity("turn-pool"))
    store = ConversationStore(client, KEYS, health, **store_options)  # type: ignore[arg-type]
    return RedisConversations(store, client, KEYS, health, lease_seconds=5)


async def commands(client: Redis) -> int:
    info = await client.info("stats")
    return int(info["total_commands_processed"])


async def test_a_turn_opens_in_one_round_trip_and_holds_the_writer(client: Redis) -> None:
    convs = conversations(client)
    before = await commands(client)
    async with convs.turn("c1", "alice", start=True) as (state, events):
        # The INFO before, then one pipeline: SET owner, SET lease, EVAL (HMGET and XRANGE
        # inside it); no SCRIPT EXISTS, no separate lock or load.
        assert await commands(client) - before == 6
        assert (state.version, events) == (0, [])
        with pytest.raises(ConversationBusyError):
            async with convs.turn("c1", "alice", start=True):
                pass
        assert await client.get(KEYS.conversation_tenant("c1")) == b"alice"
    # Released at the end: the next turn opens at once.
    async with convs.turn("c1", "alice", start=False) as (state, _):
        assert state.version == 0


async def test_another_tenant_is_refused_and_leaves_no_lease_behind(client: Redis) -> None:
    convs = conversations(client)
    async with convs.turn("c1", "alice", start=True):
        pass
    with pytest.raises(ConversationNotFoundError):
        async with convs.turn("c1", "mallory", start=True):
            pass
    with pytest.raises(ConversationNotFoundError):
        async with convs.turn("nope", "alice", start=False):
            pass
    assert await client.get(KEYS.conversation_tenant("nope")) is None
    async with convs.turn("c1", "alice", start=False):  # mallory's attempt took no lease
        pass


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events=histories(max_events=25))
async def test_the_read_matches_the_store_with_snapshots_and_retention(
    client: Redis, events: list[Event]
) -> None:
    conversation = f"c-{uuid.uuid4().hex}"
    convs = conversations(client, snapshot_every=4, retention=RetentionSettings(max_events=6))
    state = new_state(conversation)
    for event in events:
        state = await convs.store.append(state, event)
    async with convs.turn(conversation, "alice", start=True) as (read, retained):
        assert read == state == fold(new_state(conversation), events)
        assert retained == await convs.store.events(conversation)


async def test_the_last_append_ends_the_lease_in_the_same_round_trip(client: Redis) -> None:
    convs = conversations(client)
    async with convs.turn("warm", "alice", start=True) as (state, _):
        # (loads the script into Redis: its first EVALSHA is NOSCRIPT, then SCRIPT LOAD)
        await convs.append(state, InputReceived(at=1, content="hi"), last=True)
    lease = KEYS.conversation_writer("c1")
    async with convs.turn("c1", "alice", start=True) as (state, _):
        state = await convs.append(state, InputReceived(at=1, content="hi"))
        assert await client.exists(lease)
        before = await commands(client)
        await convs.append(state, ResponseGenerated(at=2, content="hello"), last=True)
        # The INFO, then one EVALSHA: the append (GET, XADD, SET) and the release (GET,
        # DEL).
        assert await commands(client) - before == 7
        assert not await client.exists(lease)
        # The next turn may start while this one is still finishing; this one's end
        # leaves the next one's lease alone.
        async with convs.turn("c1", "alice", start=False) as (state, _):
            assert state.status == "responded"
            assert await client.exists(lease)
            await convs.append(state, InputReceived(at=3, content="more"), last=False)
        assert not await client.exists(lease)
    async with convs.turn("c1", "alice", start=False) as (state, _):
        assert state.version == 3


async def test_a_fresh_conversation_is_read_from_nowhere_and_claimed_by_its_one_write(
    client: Redis,
) -> None:
    convs = conversations(client)
    async with convs.turn(uuid.uuid4().hex, "alice", start=True, fresh=True) as (state, _):
        await convs.append(state, InputReceived(at=1, content="warm"), last=True)  # loads
        # the script into Redis (its first EVALSHA is NOSCRIPT, then SCRIPT LOAD)
    conversation = uuid.uuid4().hex
    owner, lease = KEYS.conversation_tenant(conversation), KEYS.conversation_writer(conversation)
    before = await commands(client)
    async with convs.turn(conversation, "alice", start=True, fresh=True) as (state, events):
        assert await commands(client) - before == 1  # the INFO only: nothing was read
        assert (state.version, events) == (0, [])
        await convs.append(
            state,
            InputReceived(at=1, content="hi"),
            ResponseGenerated(at=2, content="hello"),
            last=True,
        )
        # Two INFOs, then one EVALSHA: GET owner, SET owner, GET version, 2 XADD, SET.
        assert await commands(client) - before == 2 + 1 + 6
        assert await client.get(owner) == b"alice"
        assert not await client.exists(lease)  # a turn that wrote once needs no lease
    with pytest.raises(ConversationNotFoundError):
        async with convs.turn(conversation, "mallory", start=False):
            pass
    async with convs.turn(conversation, "alice", start=False) as (state, _):
        assert (state.version, state.status) == (2, "responded")


async def test_a_fresh_turn_that_writes_again_holds_the_lease_from_its_first_write(
    client: Redis,
) -> None:
    convs = conversations(client)
    conversation = uuid.uuid4().hex
    lease = KEYS.conversation_writer(conversation)
    async with convs.turn(conversation, "alice", start=True, fresh=True) as (state, _):
        state = await convs.append(state, InputReceived(at=1, content="hi"))
        assert await client.exists(lease)
        with pytest.raises(ConversationBusyError):  # a second writer, e.g. another replica
            async with convs.turn(conversation, "alice", start=False):
                pass
        state = await convs.append(state, ResponseGenerated(at=2, content="hello"), last=True)
        assert not await client.exists(lease)
    async with convs.turn(conversation, "alice", start=False) as (state, _):
        assert state.version == 2


async def test_a_fresh_turn_that_ends_without_its_last_write_leaves_no_lease(
    client: Redis,
) -> None:
    convs = conversations(client)
    conversation = uuid.uuid4().hex

    async def turn_that_fails() -> None:
        async with convs.turn(conversation, "alice", start=True, fresh=True) as (state, _):
            await convs.append(state, InputReceived(at=1, content="hi"))
            raise RuntimeError("the model failed")

    with pytest.raises(RuntimeError):
        await turn_that_fails()
    assert not await client.exists(KEYS.conversation_writer(conversation))
    async with convs.turn(conversation, "alice", start=False) as (state, _):
        assert state.version == 1


@pytest.mark.parametrize("taken", ["owner", "lease"])
async def test_a_fresh_write_that_finds_its_id_taken_writes_nothing(
    client: Redis, taken: str
) -> None:
    convs = conversations(client)
    conversation = uuid.uuid4().hex
    if taken == "owner":
        await client.set(KEYS.conversation_tenant(conversation), "mallory")
    else:
        await client.set(KEYS.conversation_writer(conversation), "another-writer")
    expected = ConversationNotFoundError if taken == "owner" else ConversationBusyError
    with pytest.raises(expected):
        async with convs.turn(conversation, "alice", start=True, fresh=True) as (state, _):
            await convs.append(state, InputReceived(at=1, content="hi"))
    assert await client.xlen(KEYS.conversation_events(conversation)) == 0
    if taken == "lease":
        assert await client.get(KEYS.conversation_writer(conversation)) == b"another-writer"
        assert await client.get(KEYS.conversation_tenant(conversation)) is None


async def test_a_fresh_write_sent_again_after_a_lost_reply_is_written_once(
    client: Redis,
) -> None:
    convs = conversations(client)
    conversation = uuid.uuid4().hex
    async with convs.turn(conversation, "alice", start=True, fresh=True) as (state, _):
        pending = convs._unclaimed[conversation]
        first = FirstWrite(
            owner_key=KEYS.conversation_tenant(conversation),
            owner="alice",
            lease_key=KEYS.conversation_writer(conversation),
            token=pending.token,
            lease_ms=5000,
        )
        event = InputReceived(at=1, content="hi")
        # The first try landed but its reply was lost (StoreUnavailableError): the turn
        # is still unclaimed and sends the same write again.
        await convs.store.append(state, event, first=first)
        after = await convs.append(state, event)
        assert after.version == 1
        assert await client.xlen(KEYS.conversation_events(conversation)) == 1
        assert await client.exists(KEYS.conversation_writer(conversation))
    assert not await client.exists(KEYS.conversation_writer(conversation))
