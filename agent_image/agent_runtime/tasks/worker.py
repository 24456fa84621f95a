"""The task worker of one replica: takes tasks from the pool's stream and runs a handler.

The handler is `async (Task) -> result` (any JSON value), given by whoever assembles
the runtime (the agent turn). It runs with at most `concurrency` tasks at once. What it
returns is stored and acknowledged in one step; `TaskFailedError` fails the task for
good; `TaskDeferredError` puts it back after a pause without counting the delivery; any
other exception is a failed delivery (queued again, dead-lettered after
`maxDeliveries`). A task may be delivered more than once (its worker died, or lost its
lease while cut off from Redis), so handlers must be safe to run again.

Two loops: the reader blocks on the stream for new tasks while slots are free; the lease
loop, every third of the lease, renews the leases of the tasks running here (cancelling
any this worker lost), takes over tasks whose lease ran out, and refreshes the queue's
depth and lag gauges. `stop()` stops reading, lets running tasks finish until its
deadline, then cancels the rest and hands them back to the queue (not counted as a
delivery), so a drain never loses a task and never waits for a lease to run out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog
from pydantic import JsonValue

from agent_runtime.cancellation import stop_if_cancelled
from agent_runtime.memory.errors import StoreUnavailableError
from agent_runtime.tasks import metrics
from agent_runtime.tasks.errors import TaskDeferredError, TaskFailedError
from agent_runtime.tasks.model import Task, encode_input
from agent_runtime.tasks.queue import Delivery, TaskQueue, new_consumer_name

log = structlog.get_logger(__name__)

TaskHandler = Callable[[Task], Awaitable[JsonValue]]
"""Runs one task and returns its result (JSON)."""

_RECLAIM_PAGES = 10
"""Pages of the pending list one look for expired leases may scan."""

_IDLE_CONSUMER_SECONDS = 3600.0
"""Consumers (past workers) holding nothing are forgotten after this long."""


@dataclass
class _Running:
    delivery: Delivery
    task: Task
    job: asyncio.Task[None] | None = None
    lost: bool = False


@dataclass
class TaskWorker:
    """One replica's consumer of the pool's task stream."""

    queue: TaskQueue
    handler: TaskHandler
    concurrency: int = 4
    consumer: str = field(default_factory=new_consumer_name)
    retry_backoff_seconds: float = 0.2
    _running: dict[str, _Running] = field(default_factory=dict, init=False)
    _loops: list[asyncio.Task[None]] = field(default_factory=list, init=False)
    _slot_freed: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _stopping: bool = field(default=False, init=False)
    _cursor: str = field(default="0-0", init=False)

    def __post_init__(self) -> None:
        labels = self.queue.metric_labels
        self._gauge = metrics.TASKS_RUNNING.labels(**labels)
        self._finished_ok = metrics.TASKS_FINISHED.labels(**labels, status="succeeded")
        self._finished_failed = metrics.TASKS_FINISHED.labels(**labels, status="failed")
        self._retried = metrics.TASKS_RETRIES.labels(**labels, reason="error")
        self._reclaimed = metrics.TASKS_RETRIES.labels(**labels, reason="reclaimed")

    @property
    def running(self) -> int:
        """Tasks running on this replica now."""
        return len(self._running)

    @property
    def free(self) -> int:
        return max(0, self.concurrency - len(self._running))

    def start(self) -> None:
        """Start the reader and the lease loop (call once, inside a running event loop)."""
        self._loops = [
            asyncio.create_task(self._read_loop(), name=f"tasks-read-{self.consumer}"),
            asyncio.create_task(self._lease_loop(), name=f"tasks-lease-{self.consumer}"),
        ]
        log.info("task worker started", consumer=self.consumer, concurrency=self.concurrency)

    async def stop(self, *, timeout: float = 30.0) -> int:  # noqa: ASYNC109 - a drain deadline
        """Stop taking tasks, let running ones finish within `timeout`, hand back the
        rest; return how many were handed back."""
        self._stopping = True
        reader, lease = self._loops if self._loops else (None, None)
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        jobs = [r.job for r in self._running.values() if r.job is not None]
        if jobs:
            await asyncio.wait(jobs, timeout=timeout)
        unfinished = list(self._running.values())
        for running in unfinished:
            if running.job is not None:
                running.job.cancel()
        for running in unfinished:
            if running.job is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await running.job
        handed_back = 0
        for running in unfinished:
            try:
                outcome = await self.queue.requeue(
                    self.consumer, running.delivery, error=None, counted=False
                )
            except StoreUnavailableError:
                outcome = "lost"  # its lease will run out and another replica takes it
            handed_back += outcome == "queued"
            self._forget(running.delivery.entry)
        if lease is not None:
            lease.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lease
        log.info("task worker stopped", consumer=self.consumer, handed_back=handed_back)
        return handed_back

    # -- the loops ----------------------------------------------------------------------

    async def _read_loop(self) -> None:
        backoff = self.retry_backoff_seconds
        poll = self.queue.settings.poll_seconds
        while not self._stopping:
            stop_if_cancelled()  # first, so that every path below comes back to it
            if self.free == 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            try:
                deliveries = await self.queue.read(self.consumer, self.free, block_seconds=poll)
            except StoreUnavailableError:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, poll * 4)
                continue
            except Exception:
                log.exception("task read failed", consumer=self.consumer)
                await asyncio.sleep(backoff)
                continue
            backoff = self.retry_backoff_seconds
            for delivery in deliveries:
                try:
                    await self._begin(delivery, reclaimed=False)
                except Exception:  # never let one task stop the reader; its lease runs out
                    log.exception("task start failed", task=delivery.task_id)

    async def _lease_loop(self) -> None:
        interval = self.queue.settings.lease_seconds / 3
        beats = 0
        while True:
            stop_if_cancelled()  # first: the `continue` below skips the loop's end
            await asyncio.sleep(interval)
            beats += 1
            try:
                await self._renew()
                if not self._stopping and self.free:
                    await self._reclaim()
                await self.queue.depth()
                if beats % 100 == 0:
                    await self.queue.forget_idle_consumers(idle_seconds=_IDLE_CONSUMER_SECONDS)
            except StoreUnavailableError:
                continue  # the health gate logged it; leases renew again once Redis is back
            except Exception:
                log.exception("task lease loop failed", consumer=self.consumer)

    async def _reclaim(self) -> None:
        """Take over expired leases, scanning the whole pending list a few pages at a
        time (XAUTOCLAIM looks at about ten entries per one it may take)."""
        for _ in range(_RECLAIM_PAGES):
            self._cursor, deliveries = await self.queue.reclaim(
                self.consumer, self.free, cursor=self._cursor
            )
            for delivery in deliveries:
                await self._begin(delivery, reclaimed=True)
            if self._cursor == "0-0" or not self.free:
                return

    async def _renew(self) -> None:
        entries = list(self._running)
        held = await self.queue.renew(self.consumer, entries)
        for entry in entries:
            running = self._running.get(entry)
            if entry in held or running is None:
                continue
            # Another replica took it over (this one was cut off longer than the lease):
            # stop working on it; its new holder stores the result.
            log.warning("task lease lost", task=running.task.id, consumer=self.consumer)
            running.lost = True
            if running.job is not None:
                running.job.cancel()

    # -- one task -----------------------------------------------------------------------

    async def _begin(self, delivery: Delivery, *, reclaimed: bool) -> None:
        try:
            started = await self.queue.start(self.consumer, delivery)
        except StoreUnavailableError:
            return  # still pending for this consumer: taken over when the lease runs out
        if started.outcome != "run" or started.task is None:
            if started.outcome == "dead":
                log.warning("task dead-lettered", task=delivery.task_id, reason=started.detail)
            return
        if reclaimed:
            self._reclaimed.inc()
            log.info("task reclaimed", task=delivery.task_id, consumer=self.consumer)
        running = _Running(delivery=delivery, task=started.task)
        self._running[delivery.entry] = running
        self._gauge.set(len(self._running))
        running.job = asyncio.create_task(self._execute(running), name=f"task-{delivery.task_id}")

    async def _execute(self, running: _Running) -> None:
        task = running.task
        bound = log.bind(task=task.id, tenant=task.tenant, conversation=task.conversation_id)
        try:
            result = await self.handler(task)
        except asyncio.CancelledError:
            # stop() hands it back; a lost lease leaves it to its new holder.
            if running.lost:
                self._forget(running.delivery.entry)
            return
        except TaskFailedError as exc:
            await self._settle(running, error=str(exc) or type(exc).__name__)
        except TaskDeferredError as exc:
            # Wait here (the lease stays renewed) so a task that keeps deferring does not
            # spin through the queue; then hand it back without counting the delivery.
            await asyncio.sleep(max(0.0, exc.retry_after))
            await self._retry(running, f"deferred: {exc}", counted=False)
        except Exception as exc:
            bound.warning("task handler raised", error=f"{type(exc).__name__}: {exc}")
            await self._retry(running, f"{type(exc).__name__}: {exc}", counted=True)
        else:
            try:
                encode_input(result)
            except (TypeError, ValueError) as exc:  # a bug in the handler: retrying won't help
                await self._settle(running, error=f"the handler's result is not JSON: {exc}")
            else:
                await self._settle(running, result=result)
        self._forget(running.delivery.entry)

    async def _settle(
        self, running: _Running, *, result: JsonValue = None, error: str | None = None
    ) -> None:
        """Store the outcome; while Redis is away keep trying (the lease loop keeps the
        lease) until stored, or until the lease is lost to another replica."""
        backoff = self.retry_backoff_seconds
        while not running.lost:
            try:
                stored = await self.queue.finish(
                    self.consumer, running.delivery, result=result, error=error
                )
            except StoreUnavailableError:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.queue.settings.lease_seconds / 3)
                continue
            except Exception:  # e.g. its group was deleted: the lease runs out, it runs again
                log.exception("task result not stored", task=running.task.id)
                return
            if stored:
                (self._finished_ok if error is None else self._finished_failed).inc()
            else:
                log.warning("task result not stored: lease lost", task=running.task.id)
            return

    async def _retry(self, running: _Running, error: str, *, counted: bool) -> None:
        backoff = self.retry_backoff_seconds
        while not running.lost:
            try:
                outcome = await self.queue.requeue(
                    self.consumer, running.delivery, error=error, counted=counted
                )
            except StoreUnavailableError:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.queue.settings.lease_seconds / 3)
                continue
            except Exception:
                log.exception("task not requeued", task=running.task.id)
                return
            if outcome == "queued" and counted:
                self._retried.inc()
            return

    def _forget(self, entry: str) -> None:
        if self._running.pop(entry, None) is not None:
            self._gauge.set(len(self._running))
            self._slot_freed.set()
