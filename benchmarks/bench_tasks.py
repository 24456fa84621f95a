"""Tasks through the durable queue, against raw Redis Streams in the same run.

- Throughput: N no-op tasks enqueued, then run by 1 and by 4 workers (each its own
  consumer in this process, concurrency 8 each) until every result is stored; the
  baseline is the same number of entries through raw XADD, then XREADGROUP (COUNT 8)
  and XACK by 1 and 4 consumers. Ours adds per task: the record hash, the Lua scripts
  (enqueue, start, finish with its ack + delete) and the result write.
- Reclaim: a worker process takes a task and is SIGKILLed; the time until another
  worker has finished it, against the lease (the floor: the lease must run out first).

Starts its own loopback redis-server without persistence (no fsyncs measured).
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import time
from typing import Any

from redis.asyncio import Redis

from agent_runtime.tasks import Task, TaskStatus, TaskWorker
from tests.support.wait import async_wait_until

TASKS = 2000
ROUNDS = 5
CONCURRENCY = 8


async def _flush(url: str) -> None:
    client = Redis.from_url(url)
    await client.flushall()
    await client.aclose()


async def raw_streams(url: str, consumers: int) -> float:
    """Seconds to XADD `TASKS` entries and consume them (XREADGROUP + XACK)."""
    await _flush(url)
    client = Redis.from_url(url)
    await client.xgroup_create("raw", "g", id="0", mkstream=True)
    done = 0
    start = time.perf_counter()
    for i in range(TASKS):
        await client.xadd("raw", {"task": str(i)})

    async def consume(name: str) -> None:
        nonlocal done
        while done < TASKS:
            reply = await client.xreadgroup("g", name, {"raw": ">"}, count=CONCURRENCY, block=100)
            for _, entries in reply or []:
                for entry, _fields in entries:
                    await client.xack("raw", "g", entry)
                    done += 1

    await asyncio.gather(*(consume(f"c{i}") for i in range(consumers)))
    elapsed = time.perf_counter() - start
    await client.aclose()
    return elapsed


async def ours(url: str, workers: int) -> tuple[float, float]:
    """(seconds for everything, seconds for the enqueues alone)."""
    from tests.support.tasks import task_queue

    await _flush(url)

    async def noop(task: Task) -> Any:
        return None

    async with task_queue(url, poll_seconds=0.1) as queue:
        start = time.perf_counter()
        made = [await queue.enqueue("bench", i) for i in range(TASKS)]
        enqueued = time.perf_counter() - start
        running = [TaskWorker(queue, noop, concurrency=CONCURRENCY) for _ in range(workers)]
        for worker in running:
            worker.start()

        async def all_done() -> bool:
            depth = await queue.depth()  # one round trip every 20 ms: not the bottleneck
            return depth.queued == 0 and depth.running == 0

        await async_wait_until(all_done, timeout=600, interval=0.02)
        elapsed = time.perf_counter() - start
        for worker in running:
            await worker.stop()
        last = await queue.get(made[-1].id, tenant="bench")
        assert last.status == TaskStatus.SUCCEEDED, last
    return elapsed, enqueued


async def reclaim(url: str, lease: float) -> float:
    """Seconds from SIGKILL of a task's worker to its result stored by another."""
    from redis import Redis as SyncRedis

    from tests.support.tasks import start_worker_process, task_queue

    await _flush(url)
    marks = SyncRedis.from_url(url)
    process = start_worker_process(url, lease_seconds=lease)
    try:
        async with task_queue(url, lease_seconds=lease, poll_seconds=min(0.2, lease / 2)) as q:
            made = await q.enqueue("bench", "x")
            await async_wait_until(
                lambda: asyncio.to_thread(marks.get, f"test:started-by:{made.id}"),
                timeout=30,
                interval=0.005,
            )
            process.kill()
            killed = time.perf_counter()

            async def finish(task: Task) -> Any:
                return "done"

            survivor = TaskWorker(q, finish)
            survivor.start()

            async def finished() -> bool:
                return (await q.get(made.id, tenant="bench")).status == TaskStatus.SUCCEEDED

            await async_wait_until(finished, timeout=60, interval=0.005)
            took = time.perf_counter() - killed
            await survivor.stop()
            return took
    finally:
        process.kill()
        process.wait()
        marks.close()


def _line(what: str, samples: list[float], unit: str = "tasks/s") -> float:
    median = statistics.median(samples)
    print(f"  {what:44s} {median:9.0f} {unit} (min-max {min(samples):.0f}-{max(samples):.0f})")
    return median


async def run(url: str) -> None:
    print(f"throughput: {TASKS} no-op tasks, median of {ROUNDS} rounds (interleaved)")
    for workers in (1, 4):
        base: list[float] = []
        mine: list[float] = []
        enq: list[float] = []
        for _ in range(ROUNDS):
            base.append(TASKS / await raw_streams(url, workers))
            total, enqueued = await ours(url, workers)
            mine.append(TASKS / total)
            enq.append(TASKS / enqueued)
        b = _line(f"raw XADD+XREADGROUP+XACK, {workers} consumer(s)", base)
        m = _line(f"TaskQueue + {workers} TaskWorker(s), end to end", mine)
        _line(f"  of which enqueue alone ({workers} worker case)", enq)
        print(f"  -> ours / raw = {m / b:.2f}x ({1e6 / m - 1e6 / b:.0f} us more per task)")
    print("reclaim after SIGKILL of the worker (median of 3)")
    for lease in (1.0, 3.0):
        took = [await reclaim(url, lease) for _ in range(3)]
        median = statistics.median(took)
        print(
            f"  lease {lease:.0f} s: {median:.2f} s (min-max {min(took):.2f}-{max(took):.2f}); "
            f"bound lease + lease/3 = {lease * 4 / 3:.2f} s"
        )


def main() -> None:
    if shutil.which("redis-server") is None:
        print("SKIPPED: redis-server is not installed (hack/ensure-redis.sh)")
        return
    from tests.support.redis_server import RedisServer

    server = RedisServer(appendonly=False)
    server.start()
    try:
        asyncio.run(run(server.url))
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
