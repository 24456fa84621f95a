"""A task queue on a real Redis for tests, and a worker process that can be SIGKILLed."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from redis.asyncio import Redis

from agent_runtime.config.identity import PoolIdentity
from agent_runtime.config.memory import RedisSettings
from agent_runtime.config.tasks import TasksSettings
from agent_runtime.memory.connection import create_health, create_redis
from agent_runtime.memory.keys import KeySpace
from agent_runtime.tasks import TaskQueue
from tests.support.identity import identity

POOL = identity("tasks")


@asynccontextmanager
async def task_queue(
    redis_url: str, *, pool: PoolIdentity = POOL, **settings: Any
) -> AsyncIterator[TaskQueue]:
    """A queue of `pool` (the test pool unless named) with `settings` (enabled), on its
    own client: what a client that enqueues into a pool's Redis keys holds."""
    redis_settings = RedisSettings(url=redis_url, reconnect_backoff_max_seconds=0.3)
    client: Redis = create_redis(redis_settings)
    health = create_health(pool, client, redis_settings)
    queue = TaskQueue(
        client,
        KeySpace("agentpool", pool),
        health,
        TasksSettings(enabled=True, **settings),
    )
    await queue.ensure_group()
    try:
        yield queue
    finally:
        await client.aclose()


WORKER_PROCESS = """
import asyncio, sys
from redis.asyncio import Redis
from tests.support.tasks import task_queue
from agent_runtime.tasks import TaskWorker

async def main(url, lease):
    marks = Redis.from_url(url)
    async with task_queue(url, lease_seconds=lease, poll_seconds=min(0.2, lease / 2)) as queue:
        async def handler(task):
            await marks.incr(f"test:runs:{task.id}")
            await marks.set(f"test:started-by:{task.id}", "process")
            await asyncio.Event().wait()  # never finishes: the test kills this process

        worker = TaskWorker(queue, handler, concurrency=1)
        worker.start()
        print("ready", flush=True)
        await asyncio.Event().wait()

asyncio.run(main(sys.argv[1], float(sys.argv[2])))
"""


def start_worker_process(redis_url: str, *, lease_seconds: float) -> subprocess.Popen[str]:
    """A worker in its own process whose handler marks the task started and hangs."""
    process = subprocess.Popen(
        [sys.executable, "-c", WORKER_PROCESS, redis_url, str(lease_seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    seen = []
    for line in process.stdout:  # its log lines come first
        if line.strip() == "ready":
            return process
        seen.append(line)
    process.kill()
    raise RuntimeError(f"the worker process did not start: {''.join(seen)[-2000:]}")
