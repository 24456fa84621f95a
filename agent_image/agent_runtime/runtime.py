"""Assembles one pod's runtime from its config: Redis, memory, the tool registry.

`Runtime.start` connects and builds; `Runtime.stop` closes. Redis being down at start-up
does not stop the pod: memory starts degraded and recovers by itself. Without Redis in
the config, the pod has working memory only.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from pydantic import JsonValue
from redis.asyncio import Redis

from agent_runtime.agent.admission import Admission, AtCapacityError, DrainingError
from agent_runtime.agent.approval import ApprovalPendingError, approval_rule
from agent_runtime.agent.conversations import (
    DEFAULT_LEASE_SECONDS,
    ConversationBusyError,
    Conversations,
    MemoryConversations,
    RedisConversations,
)
from agent_runtime.agent.load import LoadPublisher
from agent_runtime.agent.model import ModelClient
from agent_runtime.agent.turn import Agent, TurnRequest
from agent_runtime.config import RuntimeConfig
from agent_runtime.config.load import stale_after
from agent_runtime.conversation.store import ConversationStore
from agent_runtime.memory.connection import create_health, create_redis
from agent_runtime.memory.health import MemoryStatus, RedisHealth
from agent_runtime.memory.hierarchy import MemoryHierarchy
from agent_runtime.memory.keys import KeySpace
from agent_runtime.tasks.errors import TaskFailedError
from agent_runtime.tasks.model import Task
from agent_runtime.tasks.queue import TaskQueue
from agent_runtime.tasks.turns import turn_handler
from agent_runtime.tasks.worker import TaskHandler, TaskWorker
from agent_runtime.tools.build import build_registry
from agent_runtime.tools.memory_tools import register_memory_tools
from agent_runtime.tools.registry import ToolRegistry

log = structlog.get_logger(__name__)

STOP_TASKS_SECONDS = 5.0
"""How long `stop` waits for the cancelled background tasks."""


@dataclass
class Runtime:
    """The live parts of one agent pod."""

    config: RuntimeConfig
    registry: ToolRegistry
    memory: MemoryHierarchy
    admission: Admission
    conversations: Conversations
    agent: Agent | None = None
    model: ModelClient | None = None
    redis: Redis | None = None
    health: RedisHealth | None = None
    load: LoadPublisher | None = None
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
        follow_block = 1.0
        if config.memory.redis is not None:
            # The episode follower's reads block at most half the socket timeout: no
            # read of its may time out.
            follow_block = min(follow_block, config.memory.redis.socket_timeout_seconds / 2)
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
        env = os.environ if environ is None else environ
        conversations: Conversations = MemoryConversations()
        if redis is not None and health is not None and keys is not None:
            store = ConversationStore.from_config(config.memory, config.pool, redis, health)
            # How soon another replica may resume a conversation whose writer crashed.
            lease = float(env.get("AGENTPOOL_WRITER_LEASE_SECONDS", DEFAULT_LEASE_SECONDS))
            conversations = RedisConversations(store, redis, keys, health, lease_seconds=lease)
        model: ModelClient | None = None
        agent: Agent | None = None
        if config.model is not None:
            model = ModelClient(config.model, environ=environ)
            endpoints = (config.model.primary, *config.model.fallbacks)
            agent = Agent(
                instructions=config.agent.read_instructions(),
                domain=config.agent.domain,
                model=model,
                registry=registry,
                conversations=conversations,
                limits=config.agent.limits,
                memory=memory,
                needs_approval=approval_rule(config.tools),
                context_window_tokens=min(e.context_window_tokens for e in endpoints),
            )
        admission = Admission(
            config.agent.concurrency,
            refusal_window=stale_after(config.load.publish_interval_seconds),
        )
        load: LoadPublisher | None = None
        if redis is not None and keys is not None:
            pod = (
                env.get("AGENTPOOL_POD_NAME")  # what the operator renders (downward API)
                or env.get("POD_NAME")
                or env.get("HOSTNAME")
                or socket.gethostname()
            )
            load = LoadPublisher(
                redis,
                keys.load,
                keys.drain,
                pod,
                admission,
                interval=config.load.publish_interval_seconds,
            )
        runtime = cls(
            config=config,
            registry=registry,
            memory=memory,
            admission=admission,
            load=load,
            conversations=conversations,
            agent=agent,
            model=model,
            redis=redis,
            health=health,
        )
        if config.tasks.enabled and redis is not None and health is not None and keys is not None:
            runtime.tasks = TaskQueue(redis, keys, health, config.tasks)
            if task_handler is None and agent is not None:
                task_handler = _turn_tasks(agent, admission, str(config.pool))
            if task_handler is not None:
                runtime.task_worker = TaskWorker(
                    runtime.tasks, task_handler, concurrency=config.tasks.concurrency
                )
                runtime.task_worker.start()
            else:
                log.warning("tasks enabled without a handler: this replica only enqueues")
        if load is not None and runtime.tasks is not None:
            load.queued_tasks = runtime.tasks.last_queued  # kept fresh by watch_depth
        if health is not None:
            await health.probe()  # an honest status from the first request on
            runtime._tasks = [
                asyncio.create_task(health.watch(), name="redis-health"),
                asyncio.create_task(memory.watch_invalidations(), name="memory-invalidations"),
                asyncio.create_task(
                    memory.follow_episodes(block_seconds=follow_block),
                    name="episode-index-follower",
                ),
            ]
            if runtime.tasks is not None:  # the load signal reads it: tasks.last_queued()
                interval = config.load.publish_interval_seconds
                watch = runtime.tasks.watch_depth(interval=interval)
                runtime._tasks.append(asyncio.create_task(watch, name="task-queue-depth"))
        if load is not None:
            runtime._tasks.append(asyncio.create_task(load.run(), name="load-publisher"))
        log.info("runtime started", pool=str(config.pool), tools=registry.names)
        return runtime

    def memory_status(self) -> MemoryStatus:
        """The memory backend's state, for readiness."""
        return self.memory.status()

    async def drain(self, timeout: float) -> bool:  # noqa: ASYNC109 - the drain deadline
        """Take no new turns; wait up to `timeout` s for the running ones; whether they ended."""
        self.admission.drain()
        drained = await self.admission.wait_idle(timeout)
        if not drained:
            log.warning("drain deadline passed with turns running", active=self.admission.active)
        return drained

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
        if self._tasks:
            # Bounded: one background task that swallows its cancellation (a client
            # library's reconnect loop) must not hold the process past its grace period.
            _, stuck = await asyncio.wait(self._tasks, timeout=STOP_TASKS_SECONDS)
            for task in stuck:
                log.warning("background task did not stop; left behind", task=task.get_name())
        if self.load is not None:
            await self.load.withdraw()
        await self.registry.aclose()
        if self.model is not None:
            await self.model.aclose()
        if self.redis is not None:
            await self.redis.aclose()


def _turn_tasks(agent: Agent, admission: Admission, pool: str) -> TaskHandler:
    """Tasks run as agent turns, each holding a turn slot like a chat request does; a task
    that finds its conversation busy, the replica full or draining comes back later. One
    whose conversation has tool calls waiting for approval fails at once, saying so: it
    cannot run before a person decides, and retrying would only spend its deliveries.
    Every log line of the turn carries the pool, tenant, conversation and task, as a chat
    request's carry its request id."""

    async def run_turn(task: Task, conversation_id: str, message: str) -> JsonValue:
        bound = structlog.contextvars.bound_contextvars(
            pool=pool, tenant=task.tenant, conversation=conversation_id, task=task.id
        )
        with bound, admission.turn(queued=True):
            try:
                turn = TurnRequest(conversation_id, task.tenant, message, input_id=task.id)
                outcome = await agent.run_turn(turn)
            except ApprovalPendingError as exc:
                raise TaskFailedError(str(exc)) from exc
        result: JsonValue = outcome.as_dict()
        return result

    return turn_handler(run_turn, busy=(ConversationBusyError, AtCapacityError, DrainingError))
