"""Where turns read and write conversations: the event log, its owner, and one writer.

`RedisConversations` is the pool's real store: `ConversationStore` (version-checked
appends on Redis Streams) plus two small keys per conversation, the tenant that owns it
(set once, so one tenant never reads or continues another's conversation) and the writer
lease (a redis-py `Lock` with a timeout, renewed while the turn runs). A second turn on a
conversation that has a writer, on this replica or another, is refused at once with
`ConversationBusyError` (409); if a lease is ever lost (a paused process), the store's
version check still refuses the stale writer's append. A crashed writer's lease expires
after `lease_seconds`, and the next turn resumes the conversation.

A turn opens with `turn()`: the owner claim (or check), the writer lease and the read of
the state and events go to Redis in one pipelined round trip instead of four; on a
loaded machine each round trip is a wake-up of two processes, the largest part of a
turn's overhead (benchmarks/README.md). A turn on a conversation whose id it made up
(`fresh`: random, told to no one before the turn's first write) reads nothing: the
conversation is new by construction, and its owner claim (and lease, if the turn writes
again after) go to Redis with its first append, in one round trip.

`MemoryConversations` keeps the same contract in one process, for a runtime without
Redis and for unit tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from redis.asyncio import Redis
from redis.exceptions import LockError, RedisError

from agent_runtime.agent.context import Versioned
from agent_runtime.conversation.state import (
    ConversationState,
    Event,
    check_conversation_id,
    fold,
    new_state,
)
from agent_runtime.conversation.store import (
    ConflictError,
    ConversationStore,
    FirstWrite,
    FirstWriteRefusedError,
)
from agent_runtime.memory.errors import AgentMemoryError
from agent_runtime.memory.health import RedisHealth
from agent_runtime.memory.keys import KeySpace

log = structlog.get_logger(__name__)

DEFAULT_LEASE_SECONDS = 15.0
"""How long a crashed writer keeps a conversation; a live one renews every third of it."""


class ConversationBusyError(AgentMemoryError):
    """Another turn is writing this conversation now (HTTP 409)."""

    def __init__(self, conversation_id: str) -> None:
        self.conversation_id = conversation_id
        super().__init__(
            f"conversation {conversation_id!r} has a turn in progress; "
            "wait for it to end and send again"
        )


class ConversationNotFoundError(AgentMemoryError, LookupError):
    """No conversation by that id for this tenant (HTTP 404)."""

    def __init__(self, conversation_id: str) -> None:
        super().__init__(f"no conversation {conversation_id!r} for this tenant")


class Conversations(Protocol):
    """The contract a turn needs from the conversation store."""

    async def load(self, conversation_id: str) -> tuple[ConversationState, list[Versioned]]:
        """The current state and the retained events."""
        ...

    async def append(
        self, state: ConversationState, *events: Event, last: bool = False
    ) -> ConversationState:
        """Version-checked append (`ConflictError` when `state` is not the latest).

        `last`: the turn writes nothing after this; its writer lease may end with it."""
        ...

    async def claim(self, conversation_id: str, tenant: str) -> None:
        """Make `tenant` the owner of a new conversation, or check it owns this one."""
        ...

    async def check_owner(self, conversation_id: str, tenant: str) -> None:
        """`ConversationNotFoundError` unless `tenant` owns the conversation."""
        ...

    def writer(self, conversation_id: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold the conversation's one writer slot (`ConversationBusyError` if taken)."""
        ...

    def turn(
        self, conversation_id: str, tenant: str, *, start: bool, fresh: bool = False
    ) -> contextlib.AbstractAsyncContextManager[tuple[ConversationState, list[Versioned]]]:
        """`claim` (`start`) or `check_owner`, then `writer`, then `load`: what a turn does
        before its first step, with the same errors, in one step.

        `fresh` (with `start`): the caller made the id up for this turn (random) and has
        told no one yet, so the conversation is empty; a store may then claim it with
        the turn's first append instead of before."""
        ...


@dataclass
class _Unclaimed:
    """A fresh conversation's turn before its first append (which claims it)."""

    tenant: str
    lock: Any
    token: bytes
    stack: contextlib.AsyncExitStack


class RedisConversations:
    """Conversations in the pool's Redis (see the module docstring)."""

    def __init__(
        self,
        store: ConversationStore,
        client: Redis,
        keys: KeySpace,
        health: RedisHealth,
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        self.store = store
        self._client = client
        self._keys = keys
        self._health = health
        self.lease_seconds = lease_seconds
        self._held: dict[str, Any] = {}
        """The lease (a redis-py Lock) of each conversation a turn here is writing."""
        self._unclaimed: dict[str, _Unclaimed] = {}
        """Fresh conversations whose turn has not written yet (see `turn`)."""

    async def load(self, conversation_id: str) -> tuple[ConversationState, list[Versioned]]:
        state = await self.store.load(conversation_id)
        events = await self.store.events(conversation_id) if state.version else []
        return state, events

    async def append(
        self, state: ConversationState, *events: Event, last: bool = False
    ) -> ConversationState:
        pending = self._unclaimed.get(state.conversation_id) if state.version == 0 else None
        if pending is not None and events:
            return await self._first_append(pending, state, events, last)
        lock = self._held.get(state.conversation_id) if last else None
        token = lock.local.token if lock is not None else None
        if lock is None or token is None:
            return await self.store.append(state, *events)
        # The turn's last write ends its lease in the same round trip; `_holding` then
        # has nothing left to release.
        after = await self.store.append(state, *events, then_release=(lock.name, token))
        lock.local.token = None
        return after

    async def _first_append(
        self, pending: _Unclaimed, state: ConversationState, events: tuple[Event, ...], last: bool
    ) -> ConversationState:
        """Claim the fresh conversation (and its lease, unless nothing follows) with the
        append; once it is written, the turn goes on as one that claimed it first."""
        conversation_id = state.conversation_id
        lock = pending.lock
        first = FirstWrite(
            owner_key=self._keys.conversation_tenant(conversation_id),
            owner=pending.tenant,
            lease_key=None if last else lock.name,
            token=pending.token,
            lease_ms=int(self.lease_seconds * 1000),
        )
        try:
            after = await self.store.append(state, *events, first=first)
        except FirstWriteRefusedError as exc:
            del self._unclaimed[conversation_id]
            if exc.reason == "owner":
                raise ConversationNotFoundError(conversation_id) from None
            raise ConversationBusyError(conversation_id) from None
        except ConflictError:
            # Written by someone else after all: the lease this append took is ours.
            del self._unclaimed[conversation_id]
            if not last:
                lock.local.token = pending.token
                with contextlib.suppress(LockError, RedisError, OSError):
                    await lock.release()
            raise
        # (Redis unreachable: still unclaimed, so a retry of this append claims again.)
        del self._unclaimed[conversation_id]
        if not last:
            lock.local.token = pending.token
            await pending.stack.enter_async_context(self._holding(lock, conversation_id))
        return after

    async def claim(self, conversation_id: str, tenant: str) -> None:
        name = self._keys.conversation_tenant(check_conversation_id(conversation_id))

        async def claim() -> Any:
            return await self._client.set(name, tenant, nx=True, get=True)

        owner = await self._health.call(claim, what=f"claim of {conversation_id!r}")
        if owner is not None and owner.decode() != tenant:
            raise ConversationNotFoundError(conversation_id)

    async def check_owner(self, conversation_id: str, tenant: str) -> None:
        name = self._keys.conversation_tenant(check_conversation_id(conversation_id))

        async def read() -> Any:
            return await self._client.get(name)

        owner = await self._health.call(read, what=f"owner of {conversation_id!r}")
        if owner is None or owner.decode() != tenant:
            raise ConversationNotFoundError(conversation_id)

    def _lock(self, conversation_id: str) -> Any:
        return self._client.lock(
            self._keys.conversation_writer(check_conversation_id(conversation_id)),
            timeout=self.lease_seconds,
            blocking=False,
            thread_local=False,
        )

    @contextlib.asynccontextmanager
    async def writer(self, conversation_id: str) -> AsyncIterator[None]:
        lock = self._lock(conversation_id)

        async def acquire() -> bool:
            return bool(await lock.acquire())

        if not await self._health.call(acquire, what=f"writer lease of {conversation_id!r}"):
            raise ConversationBusyError(conversation_id)
        async with self._holding(lock, conversation_id):
            yield

    @contextlib.asynccontextmanager
    async def turn(
        self, conversation_id: str, tenant: str, *, start: bool, fresh: bool = False
    ) -> AsyncIterator[tuple[ConversationState, list[Versioned]]]:
        if fresh and start:
            async with self._fresh_turn(conversation_id, tenant) as opened:
                yield opened
            return
        owner_key = self._keys.conversation_tenant(check_conversation_id(conversation_id))
        lock = self._lock(conversation_id)
        token = uuid.uuid4().hex.encode()

        async def begin() -> Any:
            # In order on the server: the lease is taken before the read, so the state
            # read is the one this writer appends after (the version check backs it).
            async with self._client.pipeline(transaction=False) as pipe:
                if start:
                    pipe.set(owner_key, tenant, nx=True, get=True)
                else:
                    pipe.get(owner_key)
                pipe.set(lock.name, token, nx=True, px=int(self.lease_seconds * 1000))
                self.store.queue_load_all(pipe, conversation_id)
                return await pipe.execute(raise_on_error=False)

        owner, lease, loaded = await self._health.call(
            begin, what=f"start of a turn on {conversation_id!r}"
        )
        acquired = lease is True  # SET NX: True, or None when another writer holds it
        if acquired:
            # The lease was taken with redis-py's own token scheme (SET NX PX), so its
            # Lock renews and releases it as if `acquire` had taken it.
            lock.local.token = token
        try:
            for reply in (owner, lease):
                if isinstance(reply, Exception):
                    raise reply
            if (owner is None and not start) or (owner is not None and owner.decode() != tenant):
                raise ConversationNotFoundError(conversation_id)
            if not acquired:
                raise ConversationBusyError(conversation_id)
            state, events = self.store.decode_load_all(conversation_id, loaded)
        except BaseException:
            if acquired:
                with contextlib.suppress(LockError, RedisError, OSError):
                    await lock.release()
            raise
        async with self._holding(lock, conversation_id):
            yield state, events

    @contextlib.asynccontextmanager
    async def _fresh_turn(
        self, conversation_id: str, tenant: str
    ) -> AsyncIterator[tuple[ConversationState, list[Versioned]]]:
        check_conversation_id(conversation_id)
        if conversation_id in self._unclaimed or conversation_id in self._held:
            raise ConversationBusyError(conversation_id)  # a made-up id made up twice
        async with contextlib.AsyncExitStack() as stack:
            pending = _Unclaimed(
                tenant, self._lock(conversation_id), uuid.uuid4().hex.encode(), stack
            )
            self._unclaimed[conversation_id] = pending
            try:
                yield new_state(conversation_id), []
            finally:
                if self._unclaimed.get(conversation_id) is pending:
                    del self._unclaimed[conversation_id]

    @contextlib.asynccontextmanager
    async def _holding(self, lock: Any, conversation_id: str) -> AsyncIterator[None]:
        """Renew the held lease while the body runs; release it after (unless the last
        append already did)."""
        # A turn whose last append ended its lease may still be finishing here when the
        # next turn on the conversation starts: that one then keeps its lease to the end
        # (released by its own token), never using another turn's lock.
        mine = self._held.setdefault(conversation_id, lock) is lock
        renew = asyncio.create_task(self._renew(lock, conversation_id))
        try:
            yield
        finally:
            if mine:
                del self._held[conversation_id]
            renew.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renew
            if lock.local.token is not None:
                with contextlib.suppress(LockError, RedisError, OSError):
                    await lock.release()

    async def _renew(self, lock: Any, conversation_id: str) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            if lock.local.token is None:
                return  # ended by the turn's last append
            try:
                await lock.reacquire()
            except (LockError, RedisError, OSError) as exc:
                # The version check still guards the log; say so once and keep trying.
                log.warning(
                    "writer lease not renewed", conversation=conversation_id, error=str(exc)
                )


class MemoryConversations:
    """Conversations in this process only (no Redis): the same contract, for one replica."""

    def __init__(self) -> None:
        self._events: dict[str, list[Versioned]] = {}
        self._owners: dict[str, str] = {}
        self._writers: set[str] = set()

    async def load(self, conversation_id: str) -> tuple[ConversationState, list[Versioned]]:
        events = list(self._events.get(check_conversation_id(conversation_id), []))
        return fold(new_state(conversation_id), (e for _, e in events)), events

    async def append(
        self, state: ConversationState, *events: Event, last: bool = False
    ) -> ConversationState:
        log_ = self._events.setdefault(state.conversation_id, [])
        current = log_[-1][0] if log_ else 0
        if current != state.version:
            raise ConflictError(state.conversation_id, state.version, current)
        after = fold(state, events)
        log_.extend(zip(range(state.version + 1, after.version + 1), events, strict=True))
        return after

    async def claim(self, conversation_id: str, tenant: str) -> None:
        owner = self._owners.setdefault(check_conversation_id(conversation_id), tenant)
        if owner != tenant:
            raise ConversationNotFoundError(conversation_id)

    async def check_owner(self, conversation_id: str, tenant: str) -> None:
        if self._owners.get(conversation_id) != tenant:
            raise ConversationNotFoundError(conversation_id)

    @contextlib.asynccontextmanager
    async def turn(
        self, conversation_id: str, tenant: str, *, start: bool, fresh: bool = False
    ) -> AsyncIterator[tuple[ConversationState, list[Versioned]]]:
        if start:  # (`fresh` changes nothing here: a claim costs no round trip)
            await self.claim(conversation_id, tenant)
        else:
            await self.check_owner(conversation_id, tenant)
        async with self.writer(conversation_id):
            yield await self.load(conversation_id)

    @contextlib.asynccontextmanager
    async def writer(self, conversation_id: str) -> AsyncIterator[None]:
        if conversation_id in self._writers:
            raise ConversationBusyError(conversation_id)
        self._writers.add(conversation_id)
        try:
            yield
        finally:
            self._writers.discard(conversation_id)
