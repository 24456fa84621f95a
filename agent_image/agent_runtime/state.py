"""Conversation state: immutable, event-sourced, stored in Redis, replayable.

- `ConversationState` is frozen; `apply(state, event)` is a pure fold that returns a
  new state (or raises `InvalidEventError` for an impossible transition).
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
import json
import time
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel
from redis.asyncio import Redis

from agent_runtime.config.identity import PoolIdentity
from agent_runtime.config.limits import CONVERSATION_ID_MAX_CHARS
from agent_runtime.config.memory import MemoryConfig, RetentionSettings
from agent_runtime.memory import codec
from agent_runtime.memory.errors import AgentMemoryError, CorruptRecordError, InvalidMemoryError
from agent_runtime.memory.health import RedisHealth
from agent_runtime.memory.keys import KeySpace, check_length


class InvalidEventError(AgentMemoryError, ValueError):
    """An event that cannot follow the state it is applied to."""


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


class HistoryUnavailableError(AgentMemoryError):
    """The events needed for a replay were trimmed by retention."""


class CorruptHistoryError(CorruptRecordError):
    """The stored history has a gap or an undecodable entry."""


class _Frozen(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )


# --- state ---------------------------------------------------------------------------

Role = Literal["system", "user", "assistant", "tool"]
Status = Literal["idle", "thinking", "awaitingTools", "responded", "failed"]


class Message(_Frozen):
    """One message of the conversation."""

    role: Role
    content: str
    tool_call_id: str | None = None


class ToolCall(_Frozen):
    """A tool call the model asked for, and how it ended."""

    call_id: str
    tool: str
    arguments: dict[str, JsonValue] = Field(default_factory=dict)
    status: Literal["pending", "succeeded", "failed"] = "pending"
    output: JsonValue = None


class ErrorRecord(_Frozen):
    """An error that happened during the conversation."""

    kind: str
    message: str
    at: float


class ConversationState(_Frozen):
    """Everything known about a conversation at one version. Never mutated."""

    conversation_id: str
    version: int = Field(default=0, ge=0)
    status: Status = "idle"
    messages: tuple[Message, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    model_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: tuple[ErrorRecord, ...] = ()
    updated_at: float | None = None

    @property
    def pending_tool_calls(self) -> tuple[ToolCall, ...]:
        return tuple(call for call in self.tool_calls if call.status == "pending")


# --- events --------------------------------------------------------------------------


class _Event(_Frozen):
    at: float = Field(description="Unix time the event happened.")


class InputReceived(_Event):
    """Input arrived (from the user, or a system instruction)."""

    type: Literal["inputReceived"] = "inputReceived"
    content: str
    role: Literal["user", "system"] = "user"


class ModelCalled(_Event):
    """The model was called (and answered)."""

    type: Literal["modelCalled"] = "modelCalled"
    model: str
    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    latency_ms: float = Field(default=0.0, ge=0)


class ToolCalled(_Event):
    """The model asked for a tool call."""

    type: Literal["toolCalled"] = "toolCalled"
    call_id: str = Field(min_length=1)
    tool: str = Field(min_length=1)
    arguments: dict[str, JsonValue] = Field(default_factory=dict)


class ToolResultReceived(_Event):
    """A tool call finished."""

    type: Literal["toolResult"] = "toolResult"
    call_id: str = Field(min_length=1)
    output: JsonValue = None
    is_error: bool = False


class ResponseGenerated(_Event):
    """The agent answered."""

    type: Literal["responseGenerated"] = "responseGenerated"
    content: str


class ErrorOccurred(_Event):
    """Something failed; `callId` marks a pending tool call failed, `fatal` ends the turn."""

    type: Literal["error"] = "error"
    kind: str
    message: str
    call_id: str | None = None
    fatal: bool = False


Event = Annotated[
    InputReceived
    | ModelCalled
    | ToolCalled
    | ToolResultReceived
    | ResponseGenerated
    | ErrorOccurred,
    Field(discriminator="type"),
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def encode_event(event: Event) -> bytes:
    """The JSON stored for an event."""
    return json.dumps(event.model_dump(mode="json", by_alias=True), allow_nan=False).encode()


def _event_payload(fields: Any) -> bytes:
    # redis-py parses XRANGE into a dict; the same reply from a Lua script is a flat list.
    if isinstance(fields, dict):
        payload: bytes = fields[b"e"]
        return payload
    pairs = dict(zip(fields[::2], fields[1::2], strict=True))
    return bytes(pairs[b"e"])


def decode_event(payload: bytes) -> Event:
    """The event `encode_event` wrote; `CorruptHistoryError` for anything else."""
    try:
        return EVENT_ADAPTER.validate_python(json.loads(payload))
    except (ValueError, ValidationError) as exc:
        raise CorruptHistoryError(f"stored event is not a valid event: {exc}") from exc


# --- the fold ------------------------------------------------------------------------


def new_state(conversation_id: str) -> ConversationState:
    """The state of a conversation before its first event."""
    return ConversationState(conversation_id=check_conversation_id(conversation_id))


def apply(state: ConversationState, event: Event) -> ConversationState:
    """The state after `event`: pure, total on valid histories, version + 1."""
    changes: dict[str, Any] = {"version": state.version + 1, "updated_at": event.at}
    if isinstance(event, InputReceived):
        changes["messages"] = (*state.messages, Message(role=event.role, content=event.content))
        changes["status"] = "thinking"
    elif isinstance(event, ModelCalled):
        changes["model_calls"] = state.model_calls + 1
        changes["prompt_tokens"] = state.prompt_tokens + event.prompt_tokens
        changes["completion_tokens"] = state.completion_tokens + event.completion_tokens
    elif isinstance(event, ToolCalled):
        if any(call.call_id == event.call_id for call in state.tool_calls):
            raise InvalidEventError(f"tool call {event.call_id!r} was already made")
        call = ToolCall(call_id=event.call_id, tool=event.tool, arguments=event.arguments)
        changes["tool_calls"] = (*state.tool_calls, call)
        changes["status"] = "awaitingTools"
    elif isinstance(event, ToolResultReceived):
        status: Literal["succeeded", "failed"] = "failed" if event.is_error else "succeeded"
        calls = _finish_call(state, event.call_id, status, event.output)
        content = (
            event.output if isinstance(event.output, str) else codec.canonical_text(event.output)
        )
        message = Message(role="tool", content=content, tool_call_id=event.call_id)
        changes["tool_calls"] = calls
        changes["messages"] = (*state.messages, message)
        changes["status"] = _status_after_tools(calls)
    elif isinstance(event, ResponseGenerated):
        if state.pending_tool_calls:
            pending = ", ".join(call.call_id for call in state.pending_tool_calls)
            raise InvalidEventError(f"response generated while tool calls are pending: {pending}")
        changes["messages"] = (
            *state.messages,
            Message(role="assistant", content=event.content),
        )
        changes["status"] = "responded"
    else:
        changes["errors"] = (
            *state.errors,
            ErrorRecord(kind=event.kind, message=event.message, at=event.at),
        )
        if event.call_id is not None:
            calls = _finish_call(state, event.call_id, "failed", event.message)
            changes["tool_calls"] = calls
            changes["status"] = _status_after_tools(calls)
        if event.fatal:
            changes["status"] = "failed"
    return state.model_copy(update=changes)


def _finish_call(
    state: ConversationState,
    call_id: str,
    status: Literal["succeeded", "failed"],
    output: JsonValue,
) -> tuple[ToolCall, ...]:
    for position, call in enumerate(state.tool_calls):
        if call.call_id == call_id:
            if call.status != "pending":
                raise InvalidEventError(f"tool call {call_id!r} already finished")
            done = call.model_copy(update={"status": status, "output": output})
            return (*state.tool_calls[:position], done, *state.tool_calls[position + 1 :])
    raise InvalidEventError(f"result for unknown tool call {call_id!r}")


def _status_after_tools(calls: tuple[ToolCall, ...]) -> Status:
    return "awaitingTools" if any(call.status == "pending" for call in calls) else "thinking"


def fold(state: ConversationState, events: Iterable[Event]) -> ConversationState:
    """`apply` every event in order."""
    for event in events:
        state = apply(state, event)
    return state


def check_conversation_id(conversation_id: str) -> str:
    """Return the id if usable, else raise `InvalidMemoryError`."""
    return check_length("conversation id", conversation_id, CONVERSATION_ID_MAX_CHARS)


def encode_snapshot(state: ConversationState) -> bytes:
    """The stored form of a snapshot (JSON, compressed when large)."""
    return codec.encode(state.model_dump(mode="json", by_alias=True), compress_above=4096)


def decode_snapshot(payload: bytes) -> ConversationState:
    """The state `encode_snapshot` wrote."""
    try:
        return ConversationState.model_validate(codec.decode(payload))
    except ValidationError as exc:
        raise CorruptHistoryError(f"stored snapshot is not a valid state: {exc}") from exc


# --- the store -----------------------------------------------------------------------

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
        self._load = client.register_script(_LOAD)

    @classmethod
    def from_config(
        cls, config: MemoryConfig, pool: PoolIdentity, client: Redis, health: RedisHealth
    ) -> ConversationStore:
        """The store the pool's config describes, on an existing client."""
        return cls(
            client,
            KeySpace(config.key_prefix, pool.name),
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

    async def append(self, state: ConversationState, *events: Event) -> ConversationState:
        """Append `events` after `state` (which must be the latest); return the new state.

        Raises `InvalidEventError` (nothing written) if the events cannot follow
        `state`, `ConflictError` if another writer appended since `state` was loaded,
        `StoreUnavailableError` if Redis is unreachable (not acknowledged: the append
        may or may not have landed). Retrying the same append is safe: when exactly
        these events already follow `state`, it succeeds without writing them twice.
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
            return await self._append(keys=names, args=args)

        done, version = await self._health.call(
            write, what=f"append to conversation {state.conversation_id!r}"
        )
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
        state = new_state(conversation_id)
        if snap_version is not None and snap_payload is not None:
            state = decode_snapshot(snap_payload)
            if state.version != int(snap_version) or state.conversation_id != conversation_id:
                raise CorruptHistoryError(f"snapshot of {conversation_id!r} does not match")
        for entry_id, fields in entries:
            version = int(entry_id.split(b"-")[0])
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
            state = apply(state, decode_event(_event_payload(fields)))
        if to_version is not None and state.version != to_version:
            await self._explain_missing(conversation_id, to_version)
        return state

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
