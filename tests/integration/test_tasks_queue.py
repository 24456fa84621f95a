"""The durable task queue against a real redis-server: delivery, leases, reclaim,
idempotency, dead letters, trimming, one task per conversation, a Redis restart."""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any

import pytest
import redis

from agent_runtime.tasks import (
    IdempotencyConflictError,
    InvalidTaskError,
    Task,
    TaskDeferredError,
    TaskFailedError,
    TaskNotFoundError,
    TaskQueue,
    TaskStatus,
    TaskWorker,
)
from tests.support.redis_server import RedisServer
from tests.support.tasks import start_worker_process, task_queue
from tests.support.wait import async_wait_until


async def wait_for_status(
    queue: TaskQueue,
    task_id: str,
    status: TaskStatus,
    *,
    timeout: float = 15,  # noqa: ASYNC109 - a polling deadline
    tenant: str = "t",
) -> Any:
    async def probe() -> Any:
        record = await queue.get(task_id, tenant=tenant)
        return record if record.status == status else None

    return await async_wait_until(probe, timeout=timeout, what=f"task {task_id} {status}")


async def echo(task: Task) -> Any:
    return {"echo": task.input}


async def test_a_task_runs_and_its_result_is_stored_then_its_entry_is_gone(redis_url: str) -> None:
    async with task_queue(redis_url) as queue:
        worker = TaskWorker(queue, echo)
        worker.start()
        try:
            made = await queue.enqueue("t", {"message": "hi"})
            assert made.created
            assert made.status == TaskStatus.QUEUED
            record = await wait_for_status(queue, made.id, TaskStatus.SUCCEEDED)
            assert record.result == {"echo": {"message": "hi"}}
            assert record.task.deliveries == 1
            assert record.started_at is not None
            assert record.finished_at is not None
        finally:
            await worker.stop()
        with redis.Redis.from_url(redis_url) as admin:
            assert admin.xlen(queue.keys.task_stream) == 0  # acknowledged and deleted
            ttl = admin.ttl(queue.keys.task(made.id))
            assert 0 < ttl <= queue.settings.result_retention_seconds
        assert (await queue.depth()).queued == 0


async def test_another_tenants_task_is_not_found(redis_url: str) -> None:
    async with task_queue(redis_url) as queue:
        made = await queue.enqueue("acme", "x")
        assert (await queue.get(made.id, tenant="acme")).task.input == "x"
        with pytest.raises(TaskNotFoundError):
            await queue.get(made.id, tenant="globex")
        with pytest.raises(TaskNotFoundError):
            await queue.get("not-a-task-id", tenant="acme")


async def test_idempotency_keys_answer_the_same_task(redis_url: str) -> None:
    runs = collections.Counter[str]()

    async def count(task: Task) -> Any:
        runs[task.id] += 1
        return "done"

    async with task_queue(redis_url) as queue:
        first = await queue.enqueue("acme", {"a": 1, "b": 2}, idempotency_key="k1")
        again = await queue.enqueue("acme", {"b": 2, "a": 1}, idempotency_key="k1")
        assert again.id == first.id
        assert not again.created
        with pytest.raises(IdempotencyConflictError):
            await queue.enqueue("acme", {"a": 2}, idempotency_key="k1")
        other_tenant = await queue.enqueue("globex", {"a": 1, "b": 2}, idempotency_key="k1")
        assert other_tenant.id != first.id
        worker = TaskWorker(queue, count)
        worker.start()
        try:
            await wait_for_status(queue, first.id, TaskStatus.SUCCEEDED, tenant="acme")
            after = await queue.enqueue("acme", {"a": 1, "b": 2}, idempotency_key="k1")
            assert after.id == first.id
            assert after.status == TaskStatus.SUCCEEDED
        finally:
            await worker.stop()
        assert runs[first.id] == 1


async def test_bad_tasks_are_refused_before_anything_is_written(redis_url: str) -> None:
    async with task_queue(redis_url, max_input_bytes=100) as queue:
        for bad in (
            lambda: queue.enqueue("t", "x" * 200),
            lambda: queue.enqueue("bad tenant", "x"),
            lambda: queue.enqueue("t", "x", idempotency_key="k" * 300),
            lambda: queue.enqueue("t", "x", conversation_id=""),
        ):
            with pytest.raises(InvalidTaskError):
                await bad()
        assert (await queue.depth()).queued == 0


async def test_a_killed_workers_task_is_taken_over_after_its_lease_and_done_once(
    redis_url: str,
) -> None:
    lease = 1.0
    marks = redis.Redis.from_url(redis_url)
    process = start_worker_process(redis_url, lease_seconds=lease)
    try:
        async with task_queue(redis_url, lease_seconds=lease, poll_seconds=0.2) as queue:
            made = await queue.enqueue("t", "work")
            await async_wait_until(
                lambda: asyncio.to_thread(marks.get, f"test:started-by:{made.id}"),
                timeout=15,
                what="the process worker to start the task",
            )
            process.kill()  # SIGKILL: no hand-back, no goodbye
            process.wait(timeout=10)
            killed_at = time.monotonic()
            took_over_at: list[float] = []

            async def finish(task: Task) -> Any:
                took_over_at.append(time.monotonic())
                marks.incr(f"test:runs:{task.id}")
                return "finished by the survivor"

            survivor = TaskWorker(queue, finish)
            survivor.start()
            try:
                record = await wait_for_status(queue, made.id, TaskStatus.SUCCEEDED)
            finally:
                await survivor.stop()
            assert record.result == "finished by the survivor"
            assert record.task.deliveries == 2
            assert int(marks.get(f"test:runs:{made.id}") or 0) == 2  # started twice, ...
            assert len(took_over_at) == 1  # ... finished once
            # Not before the dead worker's lease (last renewed at most a third of it
            # before the kill) had run out.
            assert took_over_at[0] - killed_at >= lease * 2 / 3 - 0.05
    finally:
        process.kill()
        marks.close()


async def test_a_long_task_whose_worker_lives_is_not_delivered_again(redis_url: str) -> None:
    lease = 2.0  # generous: a box starved for CPU can delay a renewal by a second
    runs = collections.Counter[str]()

    async def slow(task: Task) -> Any:
        runs[task.id] += 1
        for _ in range(5):  # the work itself: two and a half leases long
            await asyncio.sleep(lease / 2)
        return "slow but done"

    async with task_queue(redis_url, lease_seconds=lease, poll_seconds=0.2) as queue:
        workers = [TaskWorker(queue, slow, concurrency=2) for _ in range(2)]
        for w in workers:
            w.start()
        try:
            made = await queue.enqueue("t", "long")
            record = await wait_for_status(queue, made.id, TaskStatus.SUCCEEDED)
        finally:
            for w in workers:
                await w.stop()
    assert runs[made.id] == 1
    assert record.task.deliveries == 1


async def test_a_task_that_keeps_failing_is_dead_lettered_after_n_deliveries(
    redis_url: str,
) -> None:
    runs = collections.Counter[str]()

    async def broken(task: Task) -> Any:
        runs[task.id] += 1
        if task.input == "fatal":
            raise TaskFailedError("input makes no sense")
        raise RuntimeError(f"boom {runs[task.id]}")

    async with task_queue(redis_url, max_deliveries=3) as queue:
        worker = TaskWorker(queue, broken)
        worker.start()
        try:
            made = await queue.enqueue("t", "retry me")
            fatal = await queue.enqueue("t", "fatal")
            dead = await wait_for_status(queue, made.id, TaskStatus.DEAD)
            failed = await wait_for_status(queue, fatal.id, TaskStatus.FAILED)
        finally:
            await worker.stop()
        assert runs[made.id] == 3
        assert dead.task.deliveries == 3
        assert dead.error is not None
        assert "boom 3" in dead.error
        assert runs[fatal.id] == 1
        assert failed.error == "input makes no sense"
        letters = await queue.dead_letters()
        assert [letter["task"] for letter in letters] == [made.id]
        assert "boom 3" in letters[0]["error"]
        assert letters[0]["deliveries"] == "3"


async def test_finished_entries_do_not_pile_up(redis_url: str) -> None:
    async with task_queue(redis_url, result_retention_seconds=60) as queue:
        worker = TaskWorker(queue, echo, concurrency=8)
        worker.start()
        try:
            made = [await queue.enqueue("t", i) for i in range(200)]
            for task in made:
                await wait_for_status(queue, task.id, TaskStatus.SUCCEEDED)
        finally:
            await worker.stop()
        with redis.Redis.from_url(redis_url) as admin:
            assert admin.xlen(queue.keys.task_stream) == 0
            assert admin.xpending(queue.keys.task_stream, "workers")["pending"] == 0
            assert all(0 < admin.ttl(queue.keys.task(t.id)) <= 60 for t in made)


async def test_one_task_per_conversation_runs_at_a_time_in_order(redis_url: str) -> None:
    active: collections.Counter[str | None] = collections.Counter()
    most: collections.Counter[str | None] = collections.Counter()
    order: dict[str | None, list[Any]] = collections.defaultdict(list)
    overall = [0, 0]

    async def turn(task: Task) -> Any:
        conversation = task.conversation_id
        active[conversation] += 1
        overall[0] += 1
        most[conversation] = max(most[conversation], active[conversation])
        overall[1] = max(overall[1], overall[0])
        order[conversation].append(task.input)
        await asyncio.sleep(0.02)  # the work
        active[conversation] -= 1
        overall[0] -= 1
        return task.input

    async with task_queue(redis_url) as queue:
        made = []
        for i in range(6):
            made.append(await queue.enqueue("t", i, conversation_id="c1"))
            made.append(await queue.enqueue("t", i, conversation_id=f"other-{i}"))
        assert [m.status for m in made[:4:2]] == [TaskStatus.QUEUED, TaskStatus.WAITING]
        assert (await queue.depth()).queued == 12
        workers = [TaskWorker(queue, turn, concurrency=4) for _ in range(2)]
        for w in workers:
            w.start()
        try:
            for task in made:
                await wait_for_status(queue, task.id, TaskStatus.SUCCEEDED)
        finally:
            for w in workers:
                await w.stop()
    assert most["c1"] == 1
    assert order["c1"] == list(range(6))
    assert overall[1] > 1  # other conversations ran beside it
    with redis.Redis.from_url(redis_url) as admin:
        assert not admin.exists(queue.keys.task_conversation_holder("c1"))
        assert int(admin.get(queue.keys.task_waiting_count) or 0) == 0


async def test_a_drained_worker_hands_its_unfinished_task_back(redis_url: str) -> None:
    started = asyncio.Event()

    async def hang(task: Task) -> Any:
        started.set()
        await asyncio.Event().wait()

    async with task_queue(redis_url, lease_seconds=30) as queue:
        draining = TaskWorker(queue, hang)
        draining.start()
        made = await queue.enqueue("t", "x", conversation_id="c")
        await asyncio.wait_for(started.wait(), timeout=15)
        assert await draining.stop(timeout=0.1) == 1
        record = await queue.get(made.id, tenant="t")
        assert record.status == TaskStatus.QUEUED
        assert record.task.deliveries == 0
        taker = TaskWorker(queue, echo)
        taker.start()
        try:  # at once, not after the 30 s lease
            done = await wait_for_status(queue, made.id, TaskStatus.SUCCEEDED, timeout=5)
        finally:
            await taker.stop()
        assert done.task.deliveries == 1


async def test_a_redis_restart_mid_run_loses_no_acknowledged_result(
    redis_server: RedisServer, redis_url: str
) -> None:
    runs = collections.Counter[str]()

    async def work(task: Task) -> Any:
        runs[task.id] += 1
        await asyncio.sleep(0.03)
        return {"n": task.input}

    async with task_queue(redis_url, lease_seconds=3, poll_seconds=0.2) as queue:
        made = [await queue.enqueue("t", i) for i in range(80)]
        worker = TaskWorker(queue, work, concurrency=2)
        worker.start()
        try:

            async def some_done() -> list[str] | None:
                done = []
                for task in made:
                    if (await queue.get(task.id, tenant="t")).status == TaskStatus.SUCCEEDED:
                        done.append(task.id)
                return done if len(done) >= 10 else None

            acknowledged = await async_wait_until(some_done, timeout=30, what="10 results")
            redis_server.stop()  # SIGTERM: redis-server writes its append-only file and exits
            redis_server.start()
            for task in made:
                record = await wait_for_status(queue, task.id, TaskStatus.SUCCEEDED, timeout=60)
                assert record.result == {"n": record.task.input}
        finally:
            await worker.stop()
    assert 10 <= len(acknowledged) < len(made)  # the restart came mid-run
    assert all(runs[task_id] == 1 for task_id in acknowledged)  # kept, not redone


async def test_a_task_whose_workers_keep_dying_is_dead_lettered(redis_url: str) -> None:
    marks = redis.Redis.from_url(redis_url)
    process = start_worker_process(redis_url, lease_seconds=0.5)
    try:
        async with task_queue(
            redis_url, lease_seconds=0.5, poll_seconds=0.2, max_deliveries=1
        ) as queue:
            made = await queue.enqueue("t", "poison")
            await async_wait_until(
                lambda: asyncio.to_thread(marks.get, f"test:started-by:{made.id}"),
                timeout=15,
                what="the process worker to start the task",
            )
            process.kill()
            survivor = TaskWorker(queue, echo)
            survivor.start()
            try:
                record = await wait_for_status(queue, made.id, TaskStatus.DEAD)
            finally:
                await survivor.stop()
            assert record.error is not None
            assert "stopped without finishing" in record.error
            assert [letter["task"] for letter in await queue.dead_letters()] == [made.id]
    finally:
        process.kill()
        marks.close()


async def test_a_result_that_is_not_json_fails_the_task_without_retrying(redis_url: str) -> None:
    runs = collections.Counter[str]()

    async def sloppy(task: Task) -> Any:
        runs[task.id] += 1
        return {"when": object()}

    async with task_queue(redis_url, max_deliveries=3) as queue:
        worker = TaskWorker(queue, sloppy)
        worker.start()
        try:
            made = await queue.enqueue("t", "x")
            record = await wait_for_status(queue, made.id, TaskStatus.FAILED)
        finally:
            await worker.stop()
    assert runs[made.id] == 1
    assert record.error is not None
    assert "not JSON" in record.error


async def test_an_expired_lease_behind_many_live_ones_is_still_found(redis_url: str) -> None:
    lease = 1.0
    release = asyncio.Event()

    async def held(task: Task) -> Any:
        await release.wait()
        return "held"

    marks = redis.Redis.from_url(redis_url)
    async with task_queue(redis_url, lease_seconds=lease, poll_seconds=0.2) as queue:
        busy = TaskWorker(queue, held, concurrency=40)
        busy.start()
        process = None
        try:
            live = [await queue.enqueue("t", i) for i in range(40)]
            await async_wait_until(
                lambda: asyncio.sleep(0, busy.running == 40), timeout=15, what="40 running"
            )
            process = start_worker_process(redis_url, lease_seconds=lease)
            orphan = await queue.enqueue("t", "orphan")
            await async_wait_until(
                lambda: asyncio.to_thread(marks.get, f"test:started-by:{orphan.id}"),
                timeout=15,
                what="the process worker to start the orphan",
            )
            process.kill()
            survivor = TaskWorker(queue, echo, concurrency=1)  # XAUTOCLAIM pages of ~10
            survivor.start()
            try:
                record = await wait_for_status(queue, orphan.id, TaskStatus.SUCCEEDED)
            finally:
                await survivor.stop()
            assert record.task.deliveries == 2
            release.set()
            for task in live:
                assert (
                    await wait_for_status(queue, task.id, TaskStatus.SUCCEEDED)
                ).task.deliveries == 1
        finally:
            release.set()
            await busy.stop()
            if process is not None:
                process.kill()
            marks.close()


async def test_a_conversation_moves_on_after_a_failed_or_dead_task(redis_url: str) -> None:
    async def judge(task: Task) -> Any:
        if task.input == "fatal":
            raise TaskFailedError("no")
        if task.input == "crash":
            raise RuntimeError("crash")
        return task.input

    async with task_queue(redis_url, max_deliveries=2) as queue:
        fatal = await queue.enqueue("t", "fatal", conversation_id="c")
        crash = await queue.enqueue("t", "crash", conversation_id="c")
        fine = await queue.enqueue("t", "fine", conversation_id="c")
        assert [fatal.status, crash.status, fine.status] == [
            TaskStatus.QUEUED,
            TaskStatus.WAITING,
            TaskStatus.WAITING,
        ]
        worker = TaskWorker(queue, judge)
        worker.start()
        try:
            assert (await wait_for_status(queue, fine.id, TaskStatus.SUCCEEDED)).result == "fine"
        finally:
            await worker.stop()
        assert (await queue.get(fatal.id, tenant="t")).status == TaskStatus.FAILED
        assert (await queue.get(crash.id, tenant="t")).status == TaskStatus.DEAD
        assert (await queue.depth()).queued == 0


async def test_the_load_signal_reads_the_queued_count_without_a_call(redis_url: str) -> None:
    async with task_queue(redis_url) as queue:
        watch = asyncio.create_task(queue.watch_depth(interval=0.05))
        try:
            assert queue.last_queued() == 0
            for i in range(3):
                await queue.enqueue("t", i, conversation_id="c" if i else None)
            await queue.enqueue("t", "behind", conversation_id="c")  # waiting counts too

            async def four() -> bool:
                return queue.last_queued() == 4

            await async_wait_until(four, timeout=10, what="the watched depth to reach 4")
            assert await queue.queued_count() == 4
        finally:
            watch.cancel()


async def test_a_deferred_task_comes_back_without_using_a_delivery(redis_url: str) -> None:
    runs = collections.Counter[str]()

    async def busy_once(task: Task) -> Any:
        runs[task.id] += 1
        if runs[task.id] == 1:
            raise TaskDeferredError("conversation busy", retry_after=0.05)
        return "ran"

    async with task_queue(redis_url, max_deliveries=1) as queue:
        worker = TaskWorker(queue, busy_once)
        worker.start()
        try:
            made = await queue.enqueue("t", "x", conversation_id="c")
            record = await wait_for_status(queue, made.id, TaskStatus.SUCCEEDED)
        finally:
            await worker.stop()
    assert runs[made.id] == 2
    assert record.task.deliveries == 1  # with maxDeliveries 1: the deferral did not count
