"""Conversation state in Redis: an event log per conversation, snapshots, replay.

- `ConversationStore` keeps each conversation as a Redis Stream of typed events whose
  stream ids are the versions (`<version>-0`). Appends are optimistic: a Lua script
  checks the expected version and XADDs atomically, or refuses with `ConflictError`,
  so two replicas can never interleave into an impossible history.
- Every `snapshotEvery` events the new state is written as a snapshot in the same
  script; loading is the latest snapshot plus a replay of the events after it.
- Retention trims events older than the configured count/age, but never an event
  newer than the latest snapshot, so the current state can always be rebuilt.

Durability is Redis's: an append is acknowledged once Redis has applied it. With
`appendonly yes` a crash of the redis-server process loses nothing acknowledged (the
AOF is written before replies are sent); losing the machine can cost up to the last
second with `appendfsync everysec` (use `always`, or WAITAOF on Redis >= 7.2, to close
that window).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from redis.asyncio import Redis

from agent_runtime.config.identity import PoolIdentity
from agent_runtime.config.memory import MemoryConfig, RetentionSettings
from agent_runtime.conversation.state import (
    ConversationState,
    CorruptHistoryError,
    Event,
    apply,
    check_conversation_id,
    decode_event,
    decode_snapshot,
    encode_event,
    encode_snapshot,
    fold,
    new_state,
)
from agent_runtime.memory.errors import AgentMemoryError, InvalidMemoryError
from agent_runtime.memory.health import RedisHealth
from agent_runtime.memory.keys import KeySpace


class ConflictError(AgentMemoryError):
    """The conversation moved on since it was loaded: reload and retry."""

    def __init__(self, conversation_id: str, expected: int, actual: int) -> None:
        super().__init__(
            f"conversation {conversation_id!r} is at version {actual}, not the expected "
            f"{expected}: another writer appended first; reload and retry"
        )
        self.conversation_id = conversation_id
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True, slots=True)
class FirstWrite:
    """What the first append of a conversation nobody has read yet also does, in the
    same round trip: make `owner` the owner (refused if another tenant is), and with a
    `lease_key`, take the writer lease for `token` (refused if another holds it)."""

    owner_key: str
    owner: str
    lease_key: str | None = None
    token: bytes = b""
    lease_ms: int = 0


class FirstWriteRefusedError(AgentMemoryError):
    """A `FirstWrite` found the conversation another tenant's, or its lease held."""

    def __init__(self, conversation_id: str, reason: Literal["owner", "lease"]) -> None:
        super().__init__(f"conversation {conversation_id!r}: {reason} taken")
        self.conversation_id = conversation_id
        self.reason = reason


class HistoryUnavailableError(AgentMemoryError):
    """The events needed for a replay were trimmed by retention."""


def _event_payload(fields: Any) -> bytes:
    # redis-py parses XRANGE into a dict; the same reply from a Lua script is a flat list.
    if isinstance(fields, dict):
        payload: bytes = fields[b"e"]
        return payload
    pairs = dict(zip(fields[::2], fields[1::2], strict=True))
    return bytes(pairs[b"e"])


# KEYS: events stream, version counter, snapshot hash.
# ARGV: expected version, event count n, n encoded events, snapshot version or '',
#       snapshot payload. Returns {1, new version}, {2, new version} when exactly these
#       events are already there (a retry whose first reply was lost), or
#       {0, current version} on a conflict.
_APPEND = """
local current = tonumber(redis.call('GET', KEYS[2]) or '0')
local expected = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
if current ~= expected then
  if current >= expected + n then
    local found = redis.call('XRANGE', KEYS[1], (expected + 1) .. '-0', (expected + n) .. '-0')
    local same = #found == n
    for i = 1, #found do
      if not same or found[i][2][2] ~= ARGV[2 + i] then same = false end
    end
    if same then return {2, expected + n} end
  end
  return {0, current}
end
for i = 1, n do
  current = current + 1
  redis.call('XADD', KEYS[1], current .. '-0', 'e', ARGV[2 + i])
end
redis.call('SET', KEYS[2], current)
local snap_version = ARGV[3 + n]
if snap_version ~= '' then
  local stored = tonumber(redis.call('HGET', KEYS[3], 'version') or '0')
  if tonumber(snap_version) > stored then
    redis.call('HSET', KEYS[3], 'version', snap_version, 'state', ARGV[4 + n])
  end
end
return {1, current}
"""

# `_APPEND` after a `FirstWrite`'s checks. KEYS: `_APPEND`'s, the owner key, and the
# lease key if one is taken. ARGV: `_APPEND`'s, then owner, token, lease ms. Returns
# `_APPEND`'s reply, {3, 0} (another owner) or {4, 0} (the lease held by another token;
# the same token again is a retry whose reply was lost).
_FIRST_WRITE = """
local m = tonumber(ARGV[2])
local owner = redis.call('GET', KEYS[4])
if owner and owner ~= ARGV[5 + m] then return {3, 0} end
if #KEYS == 5 then
  local held = redis.call('GET', KEYS[5])
  if held and held ~= ARGV[6 + m] then return {4, 0} end
  redis.call('SET', KEYS[5], ARGV[6 + m], 'PX', ARGV[7 + m])
end
if not owner then redis.call('SET', KEYS[4], ARGV[5 + m]) end
"""

# KEYS: events stream, snapshot hash. ARGV: last version wanted ('+' for all), use
# snapshot ('1'/'0'). Returns {snapshot version or false, snapshot or false, events}.
_LOAD = """
local upto = ARGV[1]
local snap = {false, false}
if ARGV[2] == '1' then
  snap = redis.call('HMGET', KEYS[2], 'version', 'state')
  if snap[1] and upto ~= '+' and tonumber(snap[1]) > tonumber(upto) then
    snap = {false, false}
  end
end
local from = '-'
if snap[1] then from = '(' .. snap[1] .. '-0' end
local to = upto
if upto ~= '+' then to = upto .. '-0' end
return {snap[1], snap[2], redis.call('XRANGE', KEYS[1], from, to)}
"""


# `_APPEND`, then the release of a lease whatever the append's outcome. KEYS: `_APPEND`'s
# and the lease. ARGV: `_APPEND`'s and the lease holder's token. The lease is deleted if
# the token still holds it (redis-py's Lock releases the same way).
_APPEND_THEN_RELEASE = (
    "local function append()\n"
    + _APPEND
    + """end
local reply = append()
if redis.call('GET', KEYS[4]) == ARGV[#ARGV] then redis.call('DEL', KEYS[4]) end
return reply
"""
)

# KEYS: events stream, snapshot hash. Returns {snapshot version or false, snapshot or
# false, every retained event}: the state and the whole retained log in one read.
_LOAD_ALL = """
local snap = redis.call('HMGET', KEYS[2], 'version', 'state')
return {snap[1], snap[2], redis.call('XRANGE', KEYS[1], '-', '+')}
"""


class ConversationStore:
    """Event log, snapshots and replay of a pool's conversations in Redis."""

    def __init__(
        self,
        client: Redis,
        keys: KeySpace,
        health: RedisHealth,
        *,
        snapshot_every: int = 50,
        retention: RetentionSettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if snapshot_every < 1:
            raise ValueError("snapshot_every must be at least 1")
        self._client = client
        self._keys = keys
        self._health = health
        self.snapshot_every = snapshot_every
        self.retention = retention or RetentionSettings()
        self._clock = clock
        self._append = client.register_script(_APPEND)
        self._first_write = client.register_script(_FIRST_WRITE + _APPEND)
        self._append_then_release = client.register_script(_APPEND_THEN_RELEASE)
        self._load = client.register_script(_LOAD)

    @classmethod
    def from_config(
        cls, config: MemoryConfig, pool: PoolIdentity, client: Redis, health: RedisHealth
    ) -> ConversationStore:
        """The store the pool's config describes, on an existing client."""
        return cls(
            client,
            KeySpace(config.key_prefix, pool),
            health,
            snapshot_every=config.state.snapshot_every,
            retention=config.state.retention,
        )

    def _names(self, conversation_id: str) -> list[str]:
        check_conversation_id(conversation_id)
        return [
            self._keys.conversation_events(conversation_id),
            self._keys.conversation_version(conversation_id),
            self._keys.conversation_snapshot(conversation_id),
        ]

    async def append(
        self,
        state: ConversationState,
        *events: Event,
        then_release: tuple[str, bytes] | None = None,
        first: FirstWrite | None = None,
    ) -> ConversationState:
        """Append `events` after `state` (which must be the latest); return the new state.

        Raises `InvalidEventError` (nothing written) if the events cannot follow
        `state`, `ConflictError` if another writer appended since `state` was loaded,
        `StoreUnavailableError` if Redis is unreachable (not acknowledged: the append
        may or may not have landed). Retrying the same append is safe: when exactly
        these events already follow `state`, it succeeds without writing them twice.

        `then_release=(key, token)`: in the same round trip, after the append, delete
        `key` if it still holds `token` (a writer's last append ends its lease).

        `first`: the conversation's owner (and lease) are set by this append, after
        their checks (`FirstWriteRefusedError`, nothing written).
        """
        if not events:
            return state
        after = fold(state, events)
        names = self._names(state.conversation_id)
        snapshot: list[bytes | str] = ["", ""]
        if after.version // self.snapshot_every > state.version // self.snapshot_every:
            snapshot = [str(after.version), encode_snapshot(after)]
        args: list[bytes | str | int] = [
            state.version,
            len(events),
            *(encode_event(e) for e in events),
            *snapshot,
        ]

        async def write() -> Any:
            if first is not None:
                keys = [*names, first.owner_key]
                if first.lease_key is not None:
                    keys.append(first.lease_key)
                claim: list[bytes | str | int] = [first.owner, first.token, first.lease_ms]
                return await self._first_write(keys=keys, args=[*args, *claim])
            if then_release is None:
                return await self._append(keys=names, args=args)
            key, token = then_release
            return await self._append_then_release(keys=[*names, key], args=[*args, token])

        done, version = await self._health.call(
            write, what=f"append to conversation {state.conversation_id!r}"
        )
        if int(done) in (3, 4):
            reason: Literal["owner", "lease"] = "owner" if int(done) == 3 else "lease"
            raise FirstWriteRefusedError(state.conversation_id, reason)
        if not int(done):
            raise ConflictError(state.conversation_id, state.version, int(version))
        if (
            int(done) == 1
            and snapshot[0]
            and (self.retention.max_events or self.retention.max_age_seconds)
        ):
            await self.trim(state.conversation_id)
        return after

    async def load(self, conversation_id: str) -> ConversationState:
        """The current state: latest snapshot plus the events after it."""
        return await self.replay(conversation_id)

    async def replay(
        self,
        conversation_id: str,
        *,
        to_version: int | None = None,
        use_snapshot: bool = True,
    ) -> ConversationState:
        """The state as it was at `to_version` (default: now).

        `use_snapshot=False` folds every event from the first one, which needs the
        whole history (raises `HistoryUnavailableError` if retention trimmed it).
        """
        names = self._names(conversation_id)
        if to_version is not None and to_version < 0:
            raise InvalidMemoryError(f"cannot replay to negative version {to_version}")
        upto = "+" if to_version is None else str(to_version)
        if to_version == 0:
            return new_state(conversation_id)

        async def read() -> Any:
            return await self._load(
                keys=[names[0], names[2]], args=[upto, "1" if use_snapshot else "0"]
            )

        snap_version, snap_payload, entries = await self._health.call(
            read, what=f"load of conversation {conversation_id!r}"
        )
        state, _ = self._fold_entries(
            conversation_id, snap_version, snap_payload, entries, use_snapshot=use_snapshot
        )
        if to_version is not None and state.version != to_version:
            await self._explain_missing(conversation_id, to_version)
        return state

    def queue_load_all(self, pipe: Any, conversation_id: str) -> None:
        """Queue on `pipe` (a redis-py pipeline) the read `decode_load_all` decodes: the
        latest snapshot and every retained event, so a caller can batch it with its own
        commands. EVAL, not a registered script: a pipeline would first ask Redis whether
        the script is loaded, a round trip of its own; Redis caches the compiled script."""
        events, _, snapshot = self._names(conversation_id)
        pipe.eval(_LOAD_ALL, 2, events, snapshot)

    def decode_load_all(
        self, conversation_id: str, reply: Any
    ) -> tuple[ConversationState, list[tuple[int, Event]]]:
        """The current state and the retained events, from what `queue_load_all` read
        (each event decoded once)."""
        if isinstance(reply, Exception):
            raise reply
        snap_version, snap_payload, entries = reply
        return self._fold_entries(conversation_id, snap_version, snap_payload, entries)

    def _fold_entries(
        self,
        conversation_id: str,
        snap_version: Any,
        snap_payload: Any,
        entries: Any,
        *,
        use_snapshot: bool = True,
    ) -> tuple[ConversationState, list[tuple[int, Event]]]:
        """Fold the events after the snapshot onto it; every entry decoded, in order."""
        state = new_state(conversation_id)
        if snap_version is not None and snap_payload is not None:
            state = decode_snapshot(snap_payload)
            if state.version != int(snap_version) or state.conversation_id != conversation_id:
                raise CorruptHistoryError(f"snapshot of {conversation_id!r} does not match")
        decoded: list[tuple[int, Event]] = []
        for entry_id, fields in entries:
            version = int(entry_id.split(b"-")[0])
            event = decode_event(_event_payload(fields))
            decoded.append((version, event))
            if version <= state.version:
                continue  # covered by the snapshot
            if version != state.version + 1:
                if state.version == 0 or not use_snapshot:
                    raise HistoryUnavailableError(
                        f"conversation {conversation_id!r}: events before version {version} "
                        "were trimmed by retention; replay from the snapshot instead"
                    )
                raise CorruptHistoryError(
                    f"conversation {conversation_id!r} has a gap: expected version "
                    f"{state.version + 1}, found {version}"
                )
            state = apply(state, event)
        return state, decoded

    async def _explain_missing(self, conversation_id: str, version: int) -> None:
        name = self._keys.conversation_version(conversation_id)

        async def read() -> Any:
            return await self._client.get(name)

        current = int(await self._health.call(read, what="version check") or 0)
        if current >= version:
            raise HistoryUnavailableError(
                f"conversation {conversation_id!r}: the events up to version {version} "
                "were trimmed by retention and no snapshot covers that point"
            )
        raise InvalidMemoryError(
            f"conversation {conversation_id!r} has no version {version} (it is at {current})"
        )

    async def events(
        self, conversation_id: str, *, after: int = 0, upto: int | None = None
    ) -> list[tuple[int, Event]]:
        """The retained events with version in (after, upto], as (version, event)."""
        stream = self._names(conversation_id)[0]
        end = "+" if upto is None else f"{upto}-0"

        async def read() -> Any:
            return await self._client.xrange(stream, min=f"({after}-0", max=end)

        entries = await self._health.call(read, what=f"read of {conversation_id!r} events")
        return [
            (int(entry_id.split(b"-")[0]), decode_event(_event_payload(fields)))
            for entry_id, fields in entries
        ]

    async def trim(self, conversation_id: str) -> int:
        """Apply retention; return how many events were removed.

        Only events at or before the latest snapshot are ever removed.
        """
        stream, version_key, snapshot_key = self._names(conversation_id)

        async def positions() -> tuple[Any, Any]:
            return (
                await self._client.hget(snapshot_key, "version"),
                await self._client.get(version_key),
            )

        snap, latest = await self._health.call(positions, what="retention check")
        if snap is None:
            return 0
        protected_from = int(snap) + 1
        cutoff = 0
        if self.retention.max_events is not None:
            cutoff = max(cutoff, int(latest or 0) - self.retention.max_events + 1)
        if self.retention.max_age_seconds is not None:
            cutoff = max(cutoff, await self._first_young(stream, int(snap)))
        cutoff = min(cutoff, protected_from)
        if cutoff <= 1:
            return 0

        async def remove() -> int:
            removed: int = await self._client.xtrim(stream, minid=f"{cutoff}-0", approximate=False)
            return removed

        return await self._health.call(remove, what="retention trim")

    async def _first_young(self, stream: str, snapshot_version: int) -> int:
        """The first version (up to the snapshot) not older than max age."""
        assert self.retention.max_age_seconds is not None
        oldest_kept = self._clock() - self.retention.max_age_seconds
        start = "-"
        while True:
            read = functools.partial(
                self._client.xrange, stream, min=start, max=f"{snapshot_version}-0", count=500
            )
            entries: Any = await self._health.call(read, what="retention scan")
            for entry_id, fields in entries:
                if decode_event(_event_payload(fields)).at >= oldest_kept:
                    return int(entry_id.split(b"-")[0])
            if len(entries) < 500:
                return snapshot_version + 1
            start = "(" + entries[-1][0].decode()

    async def delete(self, conversation_id: str) -> None:
        """Remove a conversation entirely (events, version, snapshot)."""
        names = self._names(conversation_id)

        async def remove() -> Any:
            return await self._client.delete(*names)

        await self._health.call(remove, what=f"delete of {conversation_id!r}")
