"""The operator's autoscaler under faults, end to end: real agent processes (the pod
runner), a real Redis, the scripted model with a think time, and callers sending
/v1/chat through the pool's front port (tests/support/load_generator.py).

- Redis stopped while callers run turns: the pool holds its size and says so (condition
  and Event), the agents answer 503 (not 500) on what needs Redis; Redis back on the same
  port: the agents publish their load again and the pool scales on it again.
- Pause holds the size under a load that would scale it; a pin sets the size, and that
  many real pods serve turns.
- minReplicas 0: the pool idles to no pod (and no agent process); a task put on its
  queue wakes it, a real agent runs it and stores the result, and the pool goes back
  to 0.
- The operator SIGKILLed mid-run and started again: no scale-down before a full
  scale-down window of samples after the restart, then a normal one.

test_autoscaler.py shows the same rules with simulated replicas (exact control of the
load); test_autoscaling_e2e.py the load step, scale-down and return to the minimum.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import redis
from kubernetes import client

from agent_runtime.config.identity import PoolIdentity
from agent_runtime.tasks import TaskStatus
from tests.integration.crd_install import install_crds
from tests.support.cluster import Cluster
from tests.support.load_generator import LoadGenerator
from tests.support.operator_process import start_operator, stop_operator
from tests.support.redis_server import RedisServer
from tests.support.served_pool import (
    TOKEN,
    ReplicaTrace,
    ServedPool,
    annotate_pool,
    event_reasons,
    load_samples,
    pool_condition,
    replicas_become,
    serve_pool,
    serving,
    short_windows,
)
from tests.support.tasks import task_queue
from tests.support.wait import async_wait_until

POOL = "faults"
THINK_SECONDS = 1.0
"""The scripted model's time to answer: what makes a turn last, as an LLM's would."""
CONCURRENCY = 4
"""Turns per replica; the target is 50 %: 2 callers per replica."""
SCALE_DOWN_WINDOW = 4.0
COOLDOWN = 3.0
"""short_windows()'s scaleDownWindowSeconds and cooldownPeriodSeconds."""
PAUSED = "agentpool.dev/paused"
PINNED = "agentpool.dev/paused-replicas"
"""The operator's annotations (operator/agentpool_operator/api/agentpool.py)."""


@contextlib.contextmanager
def pool_served(
    cluster: Cluster,
    api: client.ApiClient,
    namespace: str,
    tmp_path: Path,
    redis_url: str,
    scaling: dict[str, Any],
    *,
    operator: bool = True,
) -> Iterator[ServedPool]:
    """The pool served by real agent processes (the pod runner's), its CRDs installed."""
    install_crds(cluster)
    with serve_pool(
        cluster,
        api,
        namespace,
        POOL,
        tmp_path,
        redis_url,
        scaling=scaling,
        concurrency=CONCURRENCY,
        think_seconds=THINK_SECONDS,
        operator=operator,
    ) as pool:
        yield pool


async def condition_is(
    api: client.ApiClient, namespace: str, expected: tuple[str, str], within: float = 15
) -> None:
    """Wait until the pool's ScalingActive condition is (status, reason)."""

    async def probe() -> bool:
        found = await asyncio.to_thread(pool_condition, api, namespace, POOL, "ScalingActive")
        return found == expected

    await async_wait_until(probe, timeout=within, interval=0.2, what=f"ScalingActive {expected}")


async def redis_routes(agent_url: str) -> dict[str, tuple[int, bool]]:
    """What one agent answers on the routes that use Redis: (status, whether the body
    is the one error shape) per route."""
    task = "0" * 32
    calls = {
        "POST /v1/tasks": ("POST", "/v1/tasks", {"input": "hi"}),
        "GET /v1/tasks/{id}": ("GET", f"/v1/tasks/{task}", None),
        "POST /v1/chat": ("POST", "/v1/chat", {"message": "hi"}),
        "GET /v1/conversations/{id}": ("GET", "/v1/conversations/c-1", None),
        "PUT /v1/memory/{tenant}/{key}": ("PUT", "/v1/memory/load/k", {"value": "v"}),
        "POST /v1/memory/{tenant}/search": ("POST", "/v1/memory/load/search", {"query": "v"}),
    }
    found = {}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=agent_url, headers=headers, timeout=20) as agent:
        for name, (method, path, body) in calls.items():
            answer = await agent.request(method, path, json=body)
            shaped = answer.status_code < 400 or "type" in answer.json().get("error", {})
            found[name] = (answer.status_code, shaped)
    return found


def started_at(operator_log: Path) -> float:
    """Wall-clock time of the operator's own "starting" line (its JSON log)."""
    for line in operator_log.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if entry.get("event") == "starting" and entry.get("logger", "").endswith(".main"):
                return datetime.fromisoformat(entry["timestamp"]).timestamp()
    raise AssertionError(f"no starting line in {operator_log}")


def process_gone(pid: int) -> bool:
    """No process with this id (not even one waiting to be reaped)."""
    return not Path(f"/proc/{pid}").exists()


async def test_redis_stopped_mid_run_holds_the_pool_agents_answer_503_then_it_recovers(
    cluster: Cluster, kube_api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    # The test's own Redis: stopping the session's would pull it from under other tests.
    own = RedisServer()
    own.start()
    try:
        scaling = short_windows()
        with pool_served(cluster, kube_api, namespace, tmp_path, own.url, scaling) as pool:
            runner, front = pool.runner, pool.front
            await serving(runner, namespace, POOL, 1)
            trace = ReplicaTrace(kube_api, namespace, POOL)
            # Turns refused while Redis is down are retried (503); a shorter give-up than
            # the default keeps a failing run from waiting minutes for them.
            callers = LoadGenerator(front, TOKEN, give_up_seconds=45)
            async with callers as load, trace.watching():
                # 4 callers fill one replica (100 %, twice the target): 2 replicas.
                load.set_users(4)
                await replicas_become(kube_api, namespace, POOL, 2, within=30)
                await serving(runner, namespace, POOL, 2)
                await condition_is(kube_api, namespace, ("True", "LoadRead"))
                answered_before = load.stats.ok

                own.stop()  # while the callers run turns
                await condition_is(kube_api, namespace, ("False", "LoadUnavailable"))
                pods = await asyncio.to_thread(runner.serving, namespace, POOL)
                assert len(pods) == 2, pods
                answers = {pod.pod: await redis_routes(pod.url) for pod in pods}
                for pod, found in answers.items():
                    # The task queue lives in Redis: refused, with the one error shape.
                    assert found["POST /v1/tasks"] == (503, True), (pod, found)
                    assert found["GET /v1/tasks/{id}"] == (503, True), (pod, found)
                    # The rest is answered (from working memory) or refused: never a 500.
                    assert all(status in (200, 404, 503) for status, _ in found.values()), (
                        pod,
                        found,
                    )

                # The callers stop: an autoscaler that read the load would now go to 1
                # within a scale-down window (and cooldown). Without Redis it holds 2.
                load.set_users(0)
                await trace.holds(2, seconds=SCALE_DOWN_WINDOW + COOLDOWN + 2)

                own.start()  # the same port, as a restarted Redis comes back
                names = {p.pod for p in pods}

                async def republished() -> bool:
                    with redis.Redis.from_url(own.url, decode_responses=True) as conn:
                        samples = await asyncio.to_thread(load_samples, conn, namespace, POOL)
                    return names <= set(samples)

                await async_wait_until(republished, timeout=15, what="load samples again")
                await condition_is(kube_api, namespace, ("True", "LoadRead"))
                await load.drain()
                # Scaling on load again: the idle pool goes back to its minimum.
                await replicas_become(kube_api, namespace, POOL, 1, within=30)
                await serving(runner, namespace, POOL, 1)
            assert load.stats.failed == [], load.stats.failed
            assert load.stats.ok > answered_before, load.stats
            reasons = await asyncio.to_thread(event_reasons, kube_api, namespace)
            assert {"LoadUnavailable", "ScalingResumed", "ScaledDown"} <= reasons, reasons
    finally:
        own.cleanup()
    statuses = {route: status for route, (status, _) in next(iter(answers.values())).items()}
    print(
        f"\nturns: {load.stats.ok} answered, {load.stats.refused} 503s retried, 0 failed; "
        f"an agent without Redis answered {statuses}"
    )


async def test_pause_holds_under_load_and_a_pin_sets_the_pods_that_serve(
    cluster: Cluster, kube_api: client.ApiClient, namespace: str, redis_url: str, tmp_path: Path
) -> None:
    scaling = short_windows()
    with pool_served(cluster, kube_api, namespace, tmp_path, redis_url, scaling) as pool:
        runner, front = pool.runner, pool.front
        (first,) = await serving(runner, namespace, POOL, 1)
        annotate_pool(kube_api, namespace, POOL, {PAUSED: "true"})
        await condition_is(kube_api, namespace, ("False", "Paused"))
        trace = ReplicaTrace(kube_api, namespace, POOL)
        async with LoadGenerator(front, TOKEN) as load, trace.watching():
            # 8 callers on 4 slots: unpaused, this is 4 replicas within seconds.
            load.set_users(8)

            async def full() -> bool:
                with redis.Redis.from_url(redis_url, decode_responses=True) as conn:
                    samples = await asyncio.to_thread(load_samples, conn, namespace, POOL)
                return first in samples and samples[first].active_turns == CONCURRENCY

            await async_wait_until(full, timeout=15, what="the one replica full")
            await trace.holds(1, seconds=5)

            annotate_pool(kube_api, namespace, POOL, {PAUSED: None, PINNED: "3"})
            await replicas_become(kube_api, namespace, POOL, 3, within=10)
            await condition_is(kube_api, namespace, ("False", "Pinned"))
            pods = await serving(runner, namespace, POOL, 3)
            before = {
                p.pod: p.served for p in await asyncio.to_thread(runner.serving, namespace, POOL)
            }

            async def all_take_turns() -> bool:
                now = await asyncio.to_thread(runner.serving, namespace, POOL)
                return all(p.served > before[p.pod] for p in now) and len(now) == 3

            await async_wait_until(all_take_turns, timeout=20, what=f"turns on {sorted(pods)}")
            # 8 callers ask for 4: the pin holds 3.
            await trace.holds(3, seconds=4)

            annotate_pool(kube_api, namespace, POOL, {PINNED: None})
            await replicas_become(kube_api, namespace, POOL, 4, within=15)
            await condition_is(kube_api, namespace, ("True", "LoadRead"))
            load.set_users(0)
        assert load.stats.failed == [], load.stats.failed


async def test_from_zero_a_queued_task_wakes_the_pool_a_real_agent_runs_it_and_back_to_zero(
    cluster: Cluster, kube_api: client.ApiClient, namespace: str, redis_url: str, tmp_path: Path
) -> None:
    scaling = short_windows(min_replicas=0, max_replicas=2, signal="ActiveTurnsAndQueuedTasks")
    with pool_served(cluster, kube_api, namespace, tmp_path, redis_url, scaling) as pool:
        runner = pool.runner
        # A new pool starts with one replica (it answers its first request), then idles.
        (first,) = await asyncio.to_thread(runner.wait_serving, namespace, POOL, 1, timeout=90)
        assert first.pid is not None
        await replicas_become(kube_api, namespace, POOL, 0, within=30)
        await serving(runner, namespace, POOL, 0)
        await async_wait_until(lambda: _gone(first.pid), timeout=15, what="the agent exits")

        identity = PoolIdentity(namespace=namespace, name=POOL)
        async with task_queue(redis_url, pool=identity) as queue:
            enqueued = await queue.enqueue("load", "wake up")
            woke = await replicas_become(kube_api, namespace, POOL, 1, within=15)
            (agent,) = await asyncio.to_thread(runner.wait_serving, namespace, POOL, 1, timeout=60)

            async def done() -> bool:
                record = await queue.get(enqueued.id, tenant="load")
                assert record.status not in (TaskStatus.FAILED, TaskStatus.DEAD), record
                return record.status == TaskStatus.SUCCEEDED

            await async_wait_until(done, timeout=60, interval=0.2, what="the task done")
            record = await queue.get(enqueued.id, tenant="load")
        assert isinstance(record.result, dict), record
        assert record.result["answer"] == "echo: wake up", record.result

        assert agent.pid is not None
        await replicas_become(kube_api, namespace, POOL, 0, within=30)
        await serving(runner, namespace, POOL, 0)
        await async_wait_until(lambda: _gone(agent.pid), timeout=15, what="the agent exits")
    print(f"\nwoken {woke:.1f}s after the task was queued")


async def _gone(pid: int | None) -> bool:
    assert pid is not None
    return process_gone(pid)


async def test_operator_killed_mid_run_waits_a_full_window_before_scaling_down(
    cluster: Cluster, kube_api: client.ApiClient, namespace: str, redis_url: str, tmp_path: Path
) -> None:
    window = 8.0
    scaling = short_windows(max_replicas=3, scaleDownWindowSeconds=window)
    # No operator yet: this test starts (and kills) its own.
    with pool_served(
        cluster, kube_api, namespace, tmp_path, redis_url, scaling, operator=False
    ) as pool:
        runner, front = pool.runner, pool.front
        trace = ReplicaTrace(kube_api, namespace, POOL)
        async with LoadGenerator(front, TOKEN) as load, trace.watching():
            first = await asyncio.to_thread(
                start_operator, cluster, [namespace], tmp_path / "operator-1.log"
            )
            try:
                await serving(runner, namespace, POOL, 1)
                # 6 callers: 1 replica full (100 %), then 2 at 75 %, then 3 at 50 %.
                load.set_users(6)
                up = await trace.reaches(3, within=40)
                await serving(runner, namespace, POOL, 3)
            finally:
                stop_operator(first, kill=True)  # mid-run: the callers hold turns
            assert first.proc.returncode == -9, first.proc.returncode
            # Idle while no operator runs: the next one finds 3 replicas and no load.
            await load.drain()
            log = tmp_path / "operator-2.log"
            second = await asyncio.to_thread(start_operator, cluster, [namespace], log)
            try:
                await trace.reaches(1, within=window + 30)
            finally:
                stop_operator(second)
        # From the new operator's first line: before it, it could not have seen the pool
        # (a loaded machine takes seconds to import it, which must not count as waiting).
        restarted = time.monotonic() - (time.time() - started_at(log))
        after = [(round(t, 1), v) for t, v in trace.since(restarted)]
        held = trace.first_other_than(restarted, 3)
        assert held is not None, (after, trace.errors)
        before = [(t, v) for t, v in after if t < window]
        assert held >= window, f"scaled down {held:.1f}s after the restart: {before}"
        assert before, "no replicas read in the window after the restart"
        assert load.stats.failed == [], load.stats.failed
    print(
        f"\n1 -> 3 in {up:.1f}s; 3 replicas held {held:.1f}s after the restarted "
        f"operator's first line (window {window:.0f}s), then 1"
    )
