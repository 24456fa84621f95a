"""The Lua scripts against a model: hypothesis drives random enqueues, deliveries,
results, failures, hand-backs, worker deaths and takeovers through a real redis-server,
and after every step Redis must agree with the model of `tasks/model.py`'s table.

Worker death is made deterministic: the dead consumer's entries are marked idle for
longer than the lease (`XCLAIM ... IDLE`), which is what Redis would show once its lease
ran out, and another consumer's reclaim takes them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from agent_runtime.config.memory import RedisSettings
from agent_runtime.config.tasks import TasksSettings
from agent_runtime.memory.connection import create_health, create_redis
from agent_runtime.memory.keys import KeySpace
from agent_runtime.tasks import TaskQueue, TaskStatus
from agent_runtime.tasks.queue import GROUP, Delivery
from tests.support.identity import identity

T = TypeVar("T")
MAX_DELIVERIES = 2
CONSUMERS = ("a", "b")
CONVERSATIONS = (None, "c1", "c2")


@dataclass
class ModelTask:
    conversation: str | None
    status: TaskStatus
    deliveries: int = 0
    holder: str | None = None
    delivery: Delivery | None = None


@dataclass
class Model:
    tasks: dict[str, ModelTask] = field(default_factory=dict)
    waiting: dict[str | None, list[str]] = field(default_factory=dict)
    stale: list[tuple[str, Delivery]] = field(default_factory=list)
    """Deliveries taken over from a consumer that was thought dead (it may still try)."""

    def release(self, task_id: str) -> None:
        conversation = self.tasks[task_id].conversation
        if conversation is None:
            return
        queue = self.waiting.get(conversation, [])
        if queue:
            self.tasks[queue.pop(0)].status = TaskStatus.QUEUED


class QueueMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        url = QueueMachine.url
        self.admin = redis.Redis.from_url(url)
        self.admin.flushall()
        redis_settings = RedisSettings(url=url)
        self.client = create_redis(redis_settings)
        pool = identity("model")
        self.queue = TaskQueue(
            self.client,
            KeySpace("agentpool", pool),
            create_health(pool, self.client, redis_settings),
            TasksSettings(enabled=True, max_deliveries=MAX_DELIVERIES, lease_seconds=60),
        )
        self.run(self.queue.ensure_group())
        self.model = Model()

    url = ""

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        self.run(self.client.aclose())
        self.loop.close()
        self.admin.close()

    def running_of(self, consumer: str) -> list[str]:
        return [
            i
            for i, t in self.model.tasks.items()
            if t.status == TaskStatus.RUNNING and t.holder == consumer
        ]

    # -- rules ------------------------------------------------------------------------

    @rule(conversation=st.sampled_from(CONVERSATIONS))
    def enqueue(self, conversation: str | None) -> None:
        made = self.run(self.queue.enqueue("t", "x", conversation_id=conversation))
        busy = conversation is not None and any(
            t.conversation == conversation
            and t.status not in {TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.DEAD}
            for t in self.model.tasks.values()
        )
        expected = TaskStatus.WAITING if busy else TaskStatus.QUEUED
        assert made.status == expected
        self.model.tasks[made.id] = ModelTask(conversation, expected)
        if busy:
            self.model.waiting.setdefault(conversation, []).append(made.id)

    @rule(consumer=st.sampled_from(CONSUMERS))
    def deliver(self, consumer: str) -> None:
        got = self.run(self.queue.read(consumer, 1, block_seconds=0.001))
        queued = [i for i, t in self.model.tasks.items() if t.status == TaskStatus.QUEUED]
        if not got:
            assert not queued  # nothing queued was left undelivered
            return
        (delivery,) = got
        self.begin(consumer, delivery)

    def begin(self, consumer: str, delivery: Delivery) -> None:
        task = self.model.tasks[delivery.task_id]
        assert task.status in {TaskStatus.QUEUED, TaskStatus.RUNNING}
        started = self.run(self.queue.start(consumer, delivery))
        if task.deliveries >= MAX_DELIVERIES:
            assert started.outcome == "dead"
            task.status = TaskStatus.DEAD
            self.model.release(delivery.task_id)
            return
        assert started.outcome == "run"
        assert started.task is not None
        task.deliveries += 1
        assert started.task.deliveries == task.deliveries
        task.status, task.holder, task.delivery = TaskStatus.RUNNING, consumer, delivery

    @precondition(lambda self: any(self.running_of(c) for c in CONSUMERS))
    @rule(data=st.data(), outcome=st.sampled_from(["succeed", "fail", "retry", "hand_back"]))
    def settle(self, data: st.DataObject, outcome: str) -> None:
        consumer = data.draw(st.sampled_from([c for c in CONSUMERS if self.running_of(c)]))
        task_id = data.draw(st.sampled_from(self.running_of(consumer)))
        task = self.model.tasks[task_id]
        assert task.delivery is not None
        if outcome in {"succeed", "fail"}:
            stored = self.run(
                self.queue.finish(
                    consumer,
                    task.delivery,
                    result="ok" if outcome == "succeed" else None,
                    error="no" if outcome == "fail" else None,
                )
            )
            assert stored
            task.status = TaskStatus.SUCCEEDED if outcome == "succeed" else TaskStatus.FAILED
            self.model.release(task_id)
            return
        counted = outcome == "retry"
        result = self.run(
            self.queue.requeue(consumer, task.delivery, error="boom", counted=counted)
        )
        if counted and task.deliveries >= MAX_DELIVERIES:
            assert result == "dead"
            task.status = TaskStatus.DEAD
            self.model.release(task_id)
            return
        assert result == "queued"
        if not counted:
            task.deliveries -= 1
        task.status, task.holder = TaskStatus.QUEUED, None

    @precondition(lambda self: any(self.running_of(c) for c in CONSUMERS))
    @rule(consumer=st.sampled_from(CONSUMERS))
    def die_and_be_taken_over(self, consumer: str) -> None:
        """`consumer`'s leases run out; the other consumer takes its tasks over."""
        other = next(c for c in CONSUMERS if c != consumer)
        stream = self.queue.keys.task_stream
        for task_id in self.running_of(consumer):
            entry = self.model.tasks[task_id].delivery
            assert entry is not None
            self.admin.xclaim(stream, GROUP, consumer, 0, [entry.entry], idle=120_000, justid=True)
        cursor, taken = self.run(self.queue.reclaim(other, 100))
        assert cursor == "0-0"
        assert {d.task_id for d in taken} == set(self.running_of(consumer))
        for delivery in taken:
            self.model.stale.append((consumer, delivery))
            self.begin(other, delivery)

    @precondition(lambda self: self.model.stale)
    @rule(finish=st.booleans())
    def a_worker_thought_dead_tries_to_store(self, finish: bool) -> None:
        """It was only cut off: what it sends now must change nothing."""
        consumer, delivery = self.model.stale.pop()
        now = self.model.tasks[delivery.task_id]
        if now.status == TaskStatus.RUNNING and (now.holder, now.delivery) == (consumer, delivery):
            return  # taken back by the same consumer since: not stale any more
        if finish:
            assert not self.run(self.queue.finish(consumer, delivery, result="late"))
        else:
            outcome = self.run(self.queue.requeue(consumer, delivery, error="x", counted=True))
            assert outcome == "lost"
        assert self.run(self.queue.renew(consumer, [delivery.entry])) == set()

    # -- invariants -------------------------------------------------------------------

    @invariant()
    def redis_agrees_with_the_model(self) -> None:
        for task_id, task in self.model.tasks.items():
            record = self.run(self.queue.get(task_id, tenant="t"))
            assert record.status == task.status, (task_id, record, task)
            assert record.task.deliveries == task.deliveries

    @invariant()
    def one_task_per_conversation_is_in_flight(self) -> None:
        for conversation in CONVERSATIONS[1:]:
            live = [
                t
                for t in self.model.tasks.values()
                if t.conversation == conversation
                and t.status in {TaskStatus.QUEUED, TaskStatus.RUNNING}
            ]
            assert len(live) <= 1

    @invariant()
    def the_stream_holds_exactly_the_unfinished_tasks(self) -> None:
        stream = self.queue.keys.task_stream
        in_flight = sum(
            t.status in {TaskStatus.QUEUED, TaskStatus.RUNNING} for t in self.model.tasks.values()
        )
        assert self.admin.xlen(stream) == in_flight
        waiting = sum(t.status == TaskStatus.WAITING for t in self.model.tasks.values())
        assert int(self.admin.get(self.queue.keys.task_waiting_count) or 0) == waiting
        depth = self.run(self.queue.depth())
        assert depth.queued == waiting + sum(
            t.status == TaskStatus.QUEUED for t in self.model.tasks.values()
        )


def test_the_queue_follows_its_model(redis_url: str) -> None:
    QueueMachine.url = redis_url
    run = QueueMachine.TestCase
    run.settings = settings(
        max_examples=20,
        stateful_step_count=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    run().runTest()
