"""The durable task queue of one pool: a Redis Stream consumed by every replica.

Why not a library: pydocket needs Python 3.12; taskiq-redis (and arq, through its job
timeout) re-deliver a task that runs longer than a fixed idle time; streaq renews by
re-claiming too but brings its own Redis client (coredis) and registers functions
rather than running one handler, with neither per-conversation exclusion nor a
dead-letter stream; saq is built on lists with its own key layout. None fits Python 3.11,
redis-py's client with our `RedisHealth` gate, our pool's `KeySpace` names, tenant-scoped
idempotency keys and one running task per conversation, so this is built on redis-py
(asyncio) with a few Lua scripts (`scripts.py`), the same way as the conversation store.

Semantics:
- At-least-once: a task's stream entry is acknowledged only in the script that stores
  its result (or its failure, or its dead letter). A worker that dies before that leaves
  the entry pending; after its lease runs out another replica takes it over.
- Leases, not idle timeouts: a live worker renews its running tasks' leases every third
  of `leaseSeconds`, so a long task is never re-delivered while its worker lives; only a
  lease that ran out (worker dead, or cut off from Redis) is taken over.
- Idempotency: (tenant, key) -> task id; the same key with the same work answers the same
  id, with different work `IdempotencyConflictError`. Kept until the retention runs out.
- Dead letters: a task delivered `maxDeliveries` times without finishing goes to the
  dead-letter stream (capped) with its last error, and its status becomes `dead`.
- Trimming: the script that acknowledges an entry also deletes it, so the stream holds
  only tasks not yet finished; finished records expire after `resultRetentionSeconds`.
- One task per conversation: a conversation's second task waits in a list behind the
  first and enters the stream, in order, when the first finishes.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import structlog
from pydantic import JsonValue
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from agent_runtime.cancellation import stop_if_cancelled
from agent_runtime.config.identity import PoolIdentity
from agent_runtime.config.tasks import TasksSettings
from agent_runtime.conversation.state import check_conversation_id
from agent_runtime.memory.errors import InvalidMemoryError, StoreUnavailableError
from agent_runtime.memory.health import RedisHealth
from agent_runtime.memory.keys import KeySpace, check_idempotency_key, check_tenant
from agent_runtime.resilience.clock import WallClock, wall_clock
from agent_runtime.tasks import metrics, scripts
from agent_runtime.tasks.errors import (
    IdempotencyConflictError,
    InvalidTaskError,
    TaskNotFoundError,
    TaskTooLargeError,
)
from agent_runtime.tasks.model import (
    Task,
    TaskRecord,
    TaskStatus,
    decode_record,
    encode_input,
    encode_new,
)

log = structlog.get_logger(__name__)

GROUP = "workers"
"""The one consumer group every replica of the pool reads through."""

T = TypeVar("T")


def new_consumer_name() -> str:
    """A name no other worker has: host, process and a random part."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _new_task_id() -> str:
    return uuid.uuid4().hex


def _is_task_id(value: str) -> bool:
    return len(value) == 32 and all(c in "0123456789abcdef" for c in value)


@dataclass(frozen=True)
class Enqueued:
    """The answer to an enqueue: the task's id, its status, and whether it is new."""

    id: str
    status: TaskStatus
    created: bool


@dataclass(frozen=True)
class Depth:
    """The pool's queue at one instant."""

    queued: int
    """Tasks not yet taken by a worker (in the stream, or behind their conversation)."""
    running: int
    """Tasks delivered to a worker and not finished (running, or a dead worker's)."""
    oldest_queued_age: float
    """Seconds since the oldest task in the stream not yet taken was put there."""


@dataclass(frozen=True)
class Delivery:
    """A stream entry given to this worker: which task, under which entry id."""

    entry: str
    task_id: str


@dataclass(frozen=True)
class Started:
    """What `start` decided: run `task`, or not (dead-lettered or nothing to do)."""

    outcome: Literal["run", "dead", "skip"]
    task: Task | None = None
    detail: str = ""


class TaskQueue:
    """Enqueue, look up and move the tasks of one pool (the worker's and the API's side)."""

    def __init__(
        self,
        client: Redis,
        keys: KeySpace,
        health: RedisHealth,
        settings: TasksSettings,
        *,
        clock: WallClock = wall_clock,
        new_id: Callable[[], str] = _new_task_id,
    ) -> None:
        self._client = client
        self.keys = keys
        self._health = health
        self.settings = settings
        self._clock = clock
        self._new_id = new_id
        self._group_ready = False
        self.last_depth: Depth | None = None
        """The depth last read (by the worker's lease loop or the load signal)."""
        self._enqueue = client.register_script(scripts.ENQUEUE)
        self._start = client.register_script(scripts.START)
        self._finish = client.register_script(scripts.FINISH)
        self._requeue = client.register_script(scripts.REQUEUE)
        self._renew = client.register_script(scripts.RENEW)
        self._depth = client.register_script(scripts.DEPTH)
        labels = {"namespace": keys.pool.namespace, "pool": keys.pool.name}
        self._labels = labels
        self._enqueued = metrics.TASKS_ENQUEUED.labels(**labels)
        self._queued = metrics.TASKS_QUEUED.labels(**labels)
        self._lag = metrics.TASKS_LAG.labels(**labels)

    @property
    def pool(self) -> PoolIdentity:
        return self.keys.pool

    @property
    def metric_labels(self) -> dict[str, str]:
        return dict(self._labels)

    async def _call(self, operation: Callable[[], Awaitable[T]], what: str) -> T:
        return await self._health.call(operation, what=what)

    # -- the API's side -----------------------------------------------------------------

    async def enqueue(
        self,
        tenant: str,
        input: JsonValue,
        *,
        conversation_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Enqueued:
        """Create a task (or find the one `idempotency_key` already created)."""
        try:
            check_tenant(tenant)
            if conversation_id is not None:
                check_conversation_id(conversation_id)
            if idempotency_key is not None:
                check_idempotency_key(idempotency_key)
        except InvalidMemoryError as exc:
            raise InvalidTaskError(str(exc)) from exc
        task = Task(
            id=self._new_id(),
            tenant=tenant,
            input=input,
            conversation_id=conversation_id,
            idempotency_key=idempotency_key,
            deliveries=0,
            created_at=self._clock(),
        )
        fields = encode_new(task)
        size = len(fields["input"].encode())
        if size > self.settings.max_input_bytes:
            raise TaskTooLargeError(
                f"task input is {size} bytes of JSON, more than tasks.maxInputBytes "
                f"({self.settings.max_input_bytes})"
            )
        args: list[str] = [
            self.keys.task_idempotency(tenant, idempotency_key) if idempotency_key else "",
            self.keys.task_conversation_holder(conversation_id) if conversation_id else "",
            self.keys.task_conversation_waiting(conversation_id) if conversation_id else "",
            fields["fp"],
            task.id,
            self.keys.task_prefix,
        ]
        for name, value in fields.items():
            args += [name, value]
        keys = [self.keys.task_stream, self.keys.task(task.id), self.keys.task_waiting_count]

        async def write() -> Any:
            return await self._enqueue(keys=keys, args=args)

        reply = await self._call(write, "enqueue of a task")
        code, task_id = int(reply[0]), reply[1].decode()
        if code == 2:
            assert idempotency_key is not None
            raise IdempotencyConflictError(idempotency_key, task_id)
        if code == 0:
            record = await self.get(task_id, tenant=tenant)
            return Enqueued(id=task_id, status=record.status, created=False)
        self._enqueued.inc()
        return Enqueued(id=task_id, status=TaskStatus(reply[2].decode()), created=True)

    async def get(self, task_id: str, *, tenant: str) -> TaskRecord:
        """The task's record; `TaskNotFoundError` if unknown, expired or another tenant's."""
        if not _is_task_id(task_id):
            raise TaskNotFoundError(f"no task {task_id!r}")
        name = self.keys.task(task_id)

        async def read() -> Any:
            return await self._client.hgetall(name)

        fields = await self._call(read, "read of a task")
        if not fields:
            raise TaskNotFoundError(f"no task {task_id!r}")
        record = decode_record(fields)
        if record.task.tenant != tenant:  # the same answer as for no task at all
            raise TaskNotFoundError(f"no task {task_id!r}")
        return record

    async def depth(self) -> Depth:
        """The pool's queue in one round trip (also updates the depth and lag gauges)."""
        keys = [self.keys.task_stream, self.keys.task_waiting_count]

        async def read() -> Any:
            return await self._depth(keys=keys, args=[GROUP])

        length, pending, waiting, oldest = await self._call(read, "queue depth")
        age = 0.0
        if oldest:
            age = max(0.0, self._clock() - int(oldest.split(b"-")[0]) / 1000)
        found = Depth(
            queued=max(0, int(length) - int(pending)) + int(waiting),
            running=int(pending),
            oldest_queued_age=age,
        )
        self._queued.set(found.queued)
        self._lag.set(found.oldest_queued_age)
        self.last_depth = found
        return found

    async def queued_count(self) -> int:
        """Tasks waiting to start: what the load signal adds to active turns."""
        return (await self.depth()).queued

    def last_queued(self) -> int:
        """The queued count last read, without a Redis call (0 before the first read):
        for a synchronous load signal, with `watch_depth` keeping it fresh."""
        return self.last_depth.queued if self.last_depth is not None else 0

    async def watch_depth(self, *, interval: float) -> None:
        """Read the depth every `interval` seconds, forever (run as a task): keeps
        `last_depth` and the depth and lag gauges current on every replica."""
        while True:
            try:
                await self.depth()
            except StoreUnavailableError:
                pass  # the health gate logged it; the last depth stays until Redis is back
            except Exception:
                log.exception("task queue depth read failed", pool=str(self.pool))
            stop_if_cancelled()
            await asyncio.sleep(interval)

    async def dead_letters(self, count: int = 100) -> list[dict[str, str]]:
        """The newest dead letters, newest first (for operators and tests)."""

        async def read() -> Any:
            return await self._client.xrevrange(self.keys.task_dead_letters, count=count)

        entries = await self._call(read, "read of dead letters")
        return [
            {k.decode(): v.decode() for k, v in fields.items()} | {"entry": entry.decode()}
            for entry, fields in entries
        ]

    # -- the worker's side --------------------------------------------------------------

    async def ensure_group(self) -> None:
        """Create the stream and the consumer group if they do not exist."""

        async def create() -> None:
            try:
                await self._client.xgroup_create(
                    self.keys.task_stream, GROUP, id="0", mkstream=True
                )
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

        await self._call(create, "creation of the task group")
        self._group_ready = True

    async def _group_call(self, operation: Callable[[], Awaitable[T]], what: str) -> T | None:
        """Run a read of the group; None (after re-creating it) if the group is gone."""
        if not self._group_ready:
            await self.ensure_group()
        try:
            return await self._call(operation, what)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # The stream was deleted (a flushed or replaced Redis): start it again.
            await self.ensure_group()
            return None

    async def read(self, consumer: str, count: int, *, block_seconds: float) -> list[Delivery]:
        """New entries for `consumer`, waiting up to `block_seconds` for one."""

        async def read() -> Any:
            return await self._client.xreadgroup(
                GROUP,
                consumer,
                {self.keys.task_stream: ">"},
                count=count,
                block=max(1, int(block_seconds * 1000)),
            )

        reply = await self._group_call(read, "read of the task stream")
        if not reply:
            return []
        return [
            Delivery(entry=entry.decode(), task_id=fields[b"task"].decode())
            for _, entries in reply
            for entry, fields in entries
        ]

    async def reclaim(
        self, consumer: str, count: int, *, cursor: str = "0-0"
    ) -> tuple[str, list[Delivery]]:
        """Take over up to `count` entries whose worker's lease ran out, scanning the
        pending entries from `cursor`; return where the next scan starts ("0-0" when
        this one reached the end) and what was taken."""
        lease_ms = int(self.settings.lease_seconds * 1000)

        async def claim() -> Any:
            return await self._client.xautoclaim(
                self.keys.task_stream, GROUP, consumer, lease_ms, start_id=cursor, count=count
            )

        reply = await self._group_call(claim, "reclaim of expired leases")
        if not reply:
            return "0-0", []
        next_cursor = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
        return next_cursor, [
            Delivery(entry=entry.decode(), task_id=fields[b"task"].decode())
            for entry, fields in reply[1]
            if fields  # an entry deleted while pending comes back without fields
        ]

    def _keys_of(self, task_id: str, *, dead: bool) -> list[str]:
        names = [self.keys.task_stream, self.keys.task(task_id)]
        if dead:
            names.append(self.keys.task_dead_letters)
        return [*names, self.keys.task_waiting_count]

    async def start(self, consumer: str, delivery: Delivery) -> Started:
        """Mark the delivered task running for `consumer` (or dead-letter, or skip it)."""
        settings = self.settings
        args: list[str | int] = [
            GROUP,
            delivery.entry,
            consumer,
            settings.max_deliveries,
            repr(self._clock()),
            settings.result_retention_seconds,
            self.keys.task_prefix,
            settings.dead_letter_max_entries,
        ]
        keys = self._keys_of(delivery.task_id, dead=True)

        async def write() -> Any:
            return await self._start(keys=keys, args=args)

        reply = await self._call(write, "start of a task")
        outcome = reply[0].decode()
        if outcome == "run":
            pairs = reply[1:]
            fields = dict(zip(pairs[::2], pairs[1::2], strict=True))
            return Started("run", task=decode_record(fields).task)
        if outcome == "dead":
            metrics.TASKS_DEAD_LETTERS.labels(**self._labels).inc()
        return Started("dead" if outcome == "dead" else "skip", detail=reply[1].decode())

    async def renew(self, consumer: str, entries: list[str]) -> set[str]:
        """Renew the leases of `entries`; return those this worker still holds."""
        if not entries:
            return set()

        async def write() -> Any:
            return await self._renew(keys=[self.keys.task_stream], args=[GROUP, consumer, *entries])

        held = await self._call(write, "renewal of task leases")
        return {e.decode() for e in held}

    async def finish(
        self,
        consumer: str,
        delivery: Delivery,
        *,
        result: JsonValue = None,
        error: str | None = None,
    ) -> bool:
        """Store the outcome and acknowledge: succeeded with `result`, or failed with
        `error`. False if this worker no longer holds the task (nothing written)."""
        if error is None:
            status, field, value = TaskStatus.SUCCEEDED, "result", encode_input(result)
        else:
            status, field, value = TaskStatus.FAILED, "error", error
        args: list[str | int] = [
            GROUP,
            delivery.entry,
            consumer,
            status.value,
            field,
            value,
            repr(self._clock()),
            self.settings.result_retention_seconds,
            self.keys.task_prefix,
        ]
        keys = self._keys_of(delivery.task_id, dead=False)

        async def write() -> Any:
            return await self._finish(keys=keys, args=args)

        return bool(int(await self._call(write, "store of a task's result")))

    async def requeue(
        self, consumer: str, delivery: Delivery, *, error: str | None, counted: bool
    ) -> Literal["queued", "dead", "lost"]:
        """Put a running task back in the stream: after a failed delivery (`counted`,
        dead-lettered once too many) or handed back on drain (not counted)."""
        settings = self.settings
        args: list[str | int] = [
            GROUP,
            delivery.entry,
            consumer,
            "1" if counted else "0",
            error or "",
            settings.max_deliveries,
            repr(self._clock()),
            settings.result_retention_seconds,
            self.keys.task_prefix,
            settings.dead_letter_max_entries,
        ]
        keys = self._keys_of(delivery.task_id, dead=True)

        async def write() -> Any:
            return await self._requeue(keys=keys, args=args)

        outcome = (await self._call(write, "requeue of a task")).decode()
        if outcome == "dead":
            metrics.TASKS_DEAD_LETTERS.labels(**self._labels).inc()
        result: Literal["queued", "dead", "lost"] = outcome
        return result

    async def forget_idle_consumers(self, *, idle_seconds: float) -> int:
        """Remove consumers (dead workers) that hold nothing and were idle that long."""

        async def read() -> Any:
            return await self._client.xinfo_consumers(self.keys.task_stream, GROUP)

        consumers = await self._group_call(read, "list of task consumers") or []
        removed = 0
        for info in consumers:
            if int(info["pending"]) == 0 and int(info["idle"]) > idle_seconds * 1000:
                name = info["name"]

                async def delete(name: Any = name) -> Any:
                    return await self._client.xgroup_delconsumer(self.keys.task_stream, GROUP, name)

                await self._call(delete, "removal of an idle consumer")
                removed += 1
        return removed
