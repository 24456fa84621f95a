"""Assembles one pod's runtime from its config: Redis, memory, the tool registry.

`Runtime.start` connects and builds; `Runtime.stop` closes. Redis being down at start-up
does not stop the pod: memory starts degraded and recovers by itself. Without Redis in
the config, the pod has working memory only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from redis.asyncio import Redis

from agent_runtime.config import RuntimeConfig
from agent_runtime.memory.connection import create_health, create_redis
from agent_runtime.memory.health import MemoryStatus, RedisHealth
from agent_runtime.memory.hierarchy import MemoryHierarchy
from agent_runtime.memory.keys import KeySpace
from agent_runtime.tasks.queue import TaskQueue
from agent_runtime.tasks.worker import TaskHandler, TaskWorker
from agent_runtime.tools.build import build_registry
from agent_runtime.tools.memory_tools import register_memory_tools
from agent_runtime.tools.registry import ToolRegistry

log = structlog.get_logger(__name__)


@dataclass
class Runtime:
    """The live parts of one agent pod."""

    config: RuntimeConfig
    registry: ToolRegistry
    memory: MemoryHierarchy
    redis: Redis | None = None
    health: RedisHealth | None = None
    tasks: TaskQueue | None = None
    task_worker: TaskWorker | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def start(
        cls,
        config: RuntimeConfig,
        *,
        environ: Mapping[str, str] | None = None,
        task_handler: TaskHandler | None = None,
    ) -> Runtime:
        """Assemble the pod. With `tasks.enabled`, the task queue is built; with a
        `task_handler` too, this replica also runs a worker that feeds tasks to it."""
        redis: Redis | None = None
        health: RedisHealth | None = None
        keys: KeySpace | None = None
        if config.memory.redis is not None:
            keys = KeySpace(config.memory.key_prefix, config.pool)
            redis = create_redis(config.memory.redis, environ)
            health = create_health(config.pool, redis, config.memory.redis)
            memory = MemoryHierarchy.from_config(
                config.memory, config.pool, redis, health, environ=environ
            )
        else:
            memory = MemoryHierarchy.working_only(config.memory)
        registry = await build_registry(config.tools, redis=redis, keys=keys, environ=environ)
        register_memory_tools(registry, memory)
        runtime = cls(config=config, registry=registry, memory=memory, redis=redis, health=health)
        if config.tasks.enabled and redis is not None and health is not None and keys is not None:
            runtime.tasks = TaskQueue(redis, keys, health, config.tasks)
            if task_handler is not None:
                runtime.task_worker = TaskWorker(
                    runtime.tasks, task_handler, concurrency=config.tasks.concurrency
                )
                runtime.task_worker.start()
            else:
                log.warning("tasks enabled without a handler: this replica only enqueues")
        if health is not None:
            await health.probe()  # an honest status from the first request on
            runtime._tasks = [
                asyncio.create_task(health.watch(), name="redis-health"),
                asyncio.create_task(memory.watch_invalidations(), name="memory-invalidations"),
            ]
            if runtime.tasks is not None:  # the load signal reads it: tasks.last_queued()
                interval = config.load.publish_interval_seconds
                watch = runtime.tasks.watch_depth(interval=interval)
                runtime._tasks.append(asyncio.create_task(watch, name="task-queue-depth"))
        log.info("runtime started", pool=str(config.pool), tools=registry.names)
        return runtime

    def memory_status(self) -> MemoryStatus:
        """The memory backend's state, for readiness."""
        return self.memory.status()

    def tasks_status(self) -> dict[str, Any] | None:
        """What readiness reports about tasks, without a Redis call (the depth last read,
        at most `load.publishIntervalSeconds` old); None when tasks are off."""
        if self.tasks is None:
            return None
        depth = self.tasks.last_depth
        return {
            "worker": self.task_worker.consumer if self.task_worker is not None else None,
            "running": self.task_worker.running if self.task_worker is not None else 0,
            "queued": depth.queued if depth is not None else None,
            "oldestQueuedSeconds": depth.oldest_queued_age if depth is not None else None,
        }

    async def stop(self, *, drain_seconds: float = 10.0) -> None:
        """Close everything; running tasks get `drain_seconds` to finish, the rest are
        handed back to the queue for another replica."""
        if self.task_worker is not None:
            await self.task_worker.stop(timeout=drain_seconds)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.registry.aclose()
        if self.redis is not None:
            await self.redis.aclose()
