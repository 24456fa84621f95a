"""The operator's autoscaler on the real control plane and a real Redis, with replicas
that publish load through the runtime's own publisher (tests/support/replicas.py): a
step scales up, an idle pool returns to its minimum after its windows and drains the
replicas it removes first, busy replicas are not the ones removed, Redis stopped holds
the pool, pause and pin work, zero and back, and a restarted operator waits a full
window before it scales down."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from kubernetes import client

from agent_runtime.config.identity import PoolIdentity
from agent_runtime.config.load import task_queue_keys, wake_key
from agent_runtime.tools.wake import WakeRequests
from tests.integration.crd_install import install_crds
from tests.support.cluster import Cluster
from tests.support.operator_process import OperatorProcess, operator_running
from tests.support.redis_server import RedisServer
from tests.support.replicas import SimulatedReplicas
from tests.support.served_pool import short_windows
from tests.support.wait import async_wait_until

GROUP, VERSION = "agentpool.dev", "v1alpha1"
CAPACITY = 2


@pytest.fixture
def operator(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    install_crds(cluster)
    with operator_running(cluster, [namespace], tmp_path / "operator.log") as handle:
        yield handle


def _pool_spec(redis_url: str, *, min_replicas: int = 1, **operator: Any) -> dict[str, Any]:
    return {
        "domain": "support",
        "instructions": "Help.",
        "model": {
            "baseUrl": "http://llm.example.com/v1",
            "name": "m",
            "apiKeySecretRef": {"name": "llm", "key": "api-key"},
        },
        "concurrencyPerReplica": CAPACITY,
        "memory": {"redis": {"url": redis_url}},
        # The API's default signal: queued tasks count (the zero-and-back test needs it).
        "scaling": short_windows(
            min_replicas=min_replicas, max_replicas=5, signal=None, **operator
        ),
    }


class Pools:
    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.ns = namespace
        self.custom = client.CustomObjectsApi(api)
        core = client.CoreV1Api(api)
        key = base64.b64encode(b"k").decode()
        core.create_namespaced_secret(
            namespace,
            client.V1Secret(metadata=client.V1ObjectMeta(name="llm"), data={"api-key": key}),
        )

    def create(self, name: str, spec: dict[str, Any]) -> None:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "AgentPool",
            "metadata": {"name": name},
            "spec": spec,
        }
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.ns, "agentpools", body)

    def get(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.ns, "agentpools", name
        )
        return found

    def annotate(self, name: str, annotations: dict[str, str | None]) -> None:
        body = {"metadata": {"annotations": annotations}}
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.ns, "agentpools", name, body
        )

    async def replicas(self, name: str) -> int | None:
        pool = await asyncio.to_thread(self.get, name)
        value = pool["spec"].get("replicas")
        return value if isinstance(value, int) else None

    async def condition(self, name: str, type_: str) -> tuple[str, str] | None:
        pool = await asyncio.to_thread(self.get, name)
        for c in (pool.get("status") or {}).get("conditions", []):
            if c["type"] == type_:
                return c["status"], c["reason"]
        return None


async def _replicas_become(pools: Pools, name: str, value: int, within: float) -> None:
    async def probe() -> bool:
        return await pools.replicas(name) == value

    await async_wait_until(probe, timeout=within, interval=0.2, what=f"replicas {value}")


async def _running(replicas: SimulatedReplicas, count: int, within: float = 30) -> None:
    async def probe() -> bool:
        return len(replicas.replicas) == count

    await async_wait_until(probe, timeout=within, interval=0.2, what=f"{count} running replicas")


async def test_a_step_scales_up_then_idle_returns_to_min_draining_the_idle_replicas(
    operator: OperatorProcess, kube_api: client.ApiClient, namespace: str, redis_url: str
) -> None:
    pools = Pools(kube_api, namespace)
    pools.create("step", _pool_spec(redis_url))
    await _replicas_become(pools, "step", 1, within=30)
    async with SimulatedReplicas(kube_api, redis_url, namespace, "step", CAPACITY) as sim:
        await _running(sim, 1)
        # The step: 2 turns running and 4 queued on one replica of 2 slots: load 300 %
        # of capacity, 6 turns' worth at a 50 % target asks for 6 replicas: max 5.
        sim.replicas[next(iter(sim.replicas))].hold_turns(2)
        sim.queued = 4
        await _replicas_become(pools, "step", 5, within=15)

        async def limited() -> bool:
            found = await pools.condition("step", "ScalingLimited")
            return found == ("True", "TooManyReplicas")

        # The status is written beside the scale, not before it: wait for it too.
        await async_wait_until(limited, timeout=10, what="ScalingLimited True")
        await _running(sim, 5)
        busy = next(r for r in sim.replicas.values() if r.turns)
        # The load falls to the busy replica's 2 turns: 1 replica at 2/2 is 100 %, above
        # the target: the pool goes to 2 (4 slots, 50 %), and the busy one stays.
        sim.queued = 0
        await _replicas_become(pools, "step", 2, within=40)
        await _running(sim, 2)
        assert busy.pod in sim.replicas, "the replica running turns was removed"
        assert sim.removed, "no replica was removed"
        assert all(r.drained_before_removal for r in sim.removed), [
            (r.pod, r.drained_before_removal) for r in sim.removed
        ]
        busy.release_turns()
        await _replicas_become(pools, "step", 1, within=40)
    status = (await asyncio.to_thread(pools.get, "step"))["status"]
    assert "->" in status["lastScaleReason"]
    assert status["loadPercent"] == 0
    reasons = _event_reasons(kube_api, namespace)
    assert {"ScaledUp", "ScaledDown"} <= reasons


def _event_reasons(api: client.ApiClient, namespace: str) -> set[str]:
    events = client.CoreV1Api(api).list_namespaced_event(namespace).items
    return {e.reason for e in events}


async def test_redis_stopped_holds_the_pool_and_it_recovers(
    operator: OperatorProcess,
    kube_api: client.ApiClient,
    namespace: str,
    redis_url: str,
    redis_server: RedisServer,
) -> None:
    pools = Pools(kube_api, namespace)
    pools.create("held", _pool_spec(redis_url))
    await _replicas_become(pools, "held", 1, within=30)
    async with SimulatedReplicas(kube_api, redis_url, namespace, "held", CAPACITY) as sim:
        await _running(sim, 1)
        sim.queued = 3  # 3 turns' worth at a 50 % target of 2 slots: 3 replicas
        await _replicas_become(pools, "held", 3, within=15)

        async def active_is(status: str, reason: str) -> bool:
            return await pools.condition("held", "ScalingActive") == (status, reason)

        await async_wait_until(lambda: active_is("True", "LoadRead"), timeout=10)
        redis_server.stop()
        try:
            await async_wait_until(
                lambda: active_is("False", "LoadUnavailable"), timeout=15, what="LoadUnavailable"
            )
            # Held: no replica removed while the load cannot be read.
            assert await pools.replicas("held") == 3
        finally:
            redis_server.start()
        await async_wait_until(lambda: active_is("True", "LoadRead"), timeout=20, what="recovery")
        assert "LoadUnavailable" in _event_reasons(kube_api, namespace)


async def test_pause_holds_and_pin_sets_the_size(
    operator: OperatorProcess, kube_api: client.ApiClient, namespace: str, redis_url: str
) -> None:
    pools = Pools(kube_api, namespace)
    pools.create("pinned", _pool_spec(redis_url))
    await _replicas_become(pools, "pinned", 1, within=30)
    async with SimulatedReplicas(kube_api, redis_url, namespace, "pinned", CAPACITY) as sim:
        await _running(sim, 1)
        pools.annotate("pinned", {"agentpool.dev/paused": "true"})

        async def paused() -> bool:
            return await pools.condition("pinned", "ScalingActive") == ("False", "Paused")

        await async_wait_until(paused, timeout=10, what="ScalingActive False Paused")
        sim.queued = 6
        # Paused: a load that would scale it leaves it alone for several ticks.
        await _stays(pools, "pinned", 1, seconds=4)
        pools.annotate(
            "pinned", {"agentpool.dev/paused": None, "agentpool.dev/paused-replicas": "2"}
        )
        await _replicas_become(pools, "pinned", 2, within=10)
        await _stays(pools, "pinned", 2, seconds=3)
        pools.annotate("pinned", {"agentpool.dev/paused-replicas": None})
        await _replicas_become(pools, "pinned", 5, within=15)


async def _stays(pools: Pools, name: str, value: int, *, seconds: float) -> None:
    """The pool keeps `value` replicas for `seconds` (checked every 200 ms)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        assert await pools.replicas(name) == value
        await _tick()


async def _tick() -> None:
    # Yields to the publishers for 200 ms without a bare sleep: waiting on an event that
    # nobody sets, with a deadline, is how this suite passes time it must let pass.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.Event().wait(), 0.2)


async def test_scale_to_zero_and_wake_on_a_queued_task(
    operator: OperatorProcess, kube_api: client.ApiClient, namespace: str, redis_url: str
) -> None:
    pools = Pools(kube_api, namespace)
    pools.create("zero", _pool_spec(redis_url, min_replicas=0))
    async with SimulatedReplicas(kube_api, redis_url, namespace, "zero", CAPACITY) as sim:
        await _replicas_become(pools, "zero", 0, within=40)
        await _running(sim, 0)
        # No replica publishes now: a task put on the pool's queue wakes it.
        stream, _ = task_queue_keys("agentpool", PoolIdentity(namespace=namespace, name="zero"))
        with redis.Redis.from_url(redis_url) as conn:
            conn.xadd(stream, {"task": "t-1"})
        await _replicas_become(pools, "zero", 1, within=10)


async def test_a_waiting_caller_wakes_a_pool_at_zero_and_an_expired_request_does_not(
    operator: OperatorProcess, kube_api: client.ApiClient, namespace: str, redis_url: str
) -> None:
    """A pool-as-tool caller that found the pool with no ready replica asks for it to be
    woken in its OWN Redis (here another database: another URL to the operator, as
    another pool's Redis would be); the operator reads it there."""
    pools = Pools(kube_api, namespace)
    caller_url = redis_url.removesuffix("/0") + "/1"
    pools.create("sleeper", _pool_spec(redis_url, min_replicas=0))
    pools.create("caller", _pool_spec(caller_url))  # the operator reads its Redis too
    sleeper = PoolIdentity(namespace=namespace, name="sleeper")
    async with SimulatedReplicas(kube_api, redis_url, namespace, "sleeper", CAPACITY) as sim:
        await _replicas_become(pools, "sleeper", 0, within=40)
        await _running(sim, 0)
        conn = aioredis.Redis.from_url(caller_url)
        try:
            # A request whose caller stopped waiting a second ago (and never withdrew it).
            await conn.zadd(wake_key("agentpool", sleeper), {"gone": time.time() - 1})
            await _stays(pools, "sleeper", 0, seconds=3)
            member = await WakeRequests(conn, "agentpool").register(sleeper, 30.0)
            assert member is not None
            await _replicas_become(pools, "sleeper", 1, within=10)
        finally:
            await conn.aclose()


async def test_a_restarted_operator_waits_a_full_window_before_scaling_down(
    cluster: Cluster,
    kube_api: client.ApiClient,
    namespace: str,
    redis_url: str,
    tmp_path: Path,
) -> None:
    install_crds(cluster)
    pools = Pools(kube_api, namespace)
    window = 8
    pools.create("restart", _pool_spec(redis_url, scaleDownWindowSeconds=window))
    async with SimulatedReplicas(kube_api, redis_url, namespace, "restart", CAPACITY) as sim:
        with operator_running(cluster, [namespace], tmp_path / "op1.log"):
            await _replicas_become(pools, "restart", 1, within=30)
            await _running(sim, 1)
            sim.queued = 6
            await _replicas_become(pools, "restart", 5, within=15)
            sim.queued = 0
        # Idle now, and the first operator is gone: the next one must see a full window.
        loop = asyncio.get_running_loop()
        with operator_running(cluster, [namespace], tmp_path / "op2.log"):
            started = loop.time()
            await _replicas_become(pools, "restart", 1, within=window + 30)
            waited = loop.time() - started
        assert waited >= window, f"scaled down {waited:.1f} s after a restart"
