"""Replicas that publish load, one per Running pod of a pool, in the test's process.

Kwok's pods run nothing. For the autoscaler's tests that need exact control of the load
(which pod runs how many turns), each Running pod of a pool gets the runtime's own load
publisher (`agent_runtime.agent.load.LoadPublisher`) with its own `Admission`, writing to
the real Redis exactly as a pod would; it stops (and withdraws its sample) when the pod
goes. The end-to-end tests use the pod runner's real agent processes instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from kubernetes import client

from agent_runtime.agent.admission import Admission
from agent_runtime.agent.load import LoadPublisher
from agent_runtime.config.identity import PoolIdentity
from agent_runtime.config.load import drain_key, load_key


@dataclass
class Replica:
    pod: str
    admission: Admission
    publisher: LoadPublisher
    task: asyncio.Task[None]
    drained_before_removal: bool = False
    turns: list[contextlib.ExitStack] = field(default_factory=list)

    def hold_turns(self, count: int) -> None:
        """Start `count` turns that run until `release_turns`."""
        for _ in range(count):
            stack = contextlib.ExitStack()
            stack.enter_context(self.admission.turn())
            self.turns.append(stack)

    def release_turns(self) -> None:
        for stack in self.turns:
            stack.close()
        self.turns.clear()


class SimulatedReplicas:
    """Follows the pool's Running pods; `queued` is the queue depth every replica reports."""

    def __init__(
        self, api: client.ApiClient, redis_url: str, namespace: str, pool: str, capacity: int
    ) -> None:
        self._core = client.CoreV1Api(api)
        self._redis = aioredis.Redis.from_url(redis_url)
        self._identity = PoolIdentity(namespace=namespace, name=pool)
        self._namespace = namespace
        self._pool = pool
        self._capacity = capacity
        self.queued = 0
        self.replicas: dict[str, Replica] = {}
        self.removed: list[Replica] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SimulatedReplicas:
        self._task = asyncio.create_task(self._follow())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for replica in list(self.replicas.values()):
            await self._stop(replica)
        await self._redis.aclose()

    def _running_pods(self) -> set[str]:
        selector = f"agentpool.dev/pool={self._pool}"
        pods = self._core.list_namespaced_pod(self._namespace, label_selector=selector).items
        return {
            p.metadata.name
            for p in pods
            if p.status.phase == "Running" and p.metadata.deletion_timestamp is None
        }

    async def _follow(self) -> None:
        while True:
            running = await asyncio.to_thread(self._running_pods)
            for pod in running - set(self.replicas):
                self._start(pod)
            for pod in set(self.replicas) - running:
                await self._stop(self.replicas[pod])
            await asyncio.sleep(0.2)

    def _start(self, pod: str) -> None:
        admission = Admission(self._capacity)
        publisher = LoadPublisher(
            self._redis,
            load_key("agentpool", self._identity),
            drain_key("agentpool", self._identity),
            pod,
            admission,
            interval=1.0,
            queued_tasks=lambda: self.queued,
        )
        task = asyncio.create_task(publisher.run(), name=f"replica-{pod}")
        self.replicas[pod] = Replica(pod, admission, publisher, task)

    async def _stop(self, replica: Replica) -> None:
        replica.drained_before_removal = replica.admission.draining
        replica.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await replica.task
        await replica.publisher.withdraw()
        self.replicas.pop(replica.pod, None)
        self.removed.append(replica)
