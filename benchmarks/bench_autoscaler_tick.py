"""The autoscaler's tick at 500 pools: wall time, the operator's CPU and Redis's own CPU
per tick, against the same reads made one pool at a time (the baseline: what a timer per
pool, each reading its own pool, would cost in round trips). Needs redis-server.

Each pool has 5 replicas whose samples are in Redis as the runtime writes them; the API
server is replaced by a recorder (the tick's writes are the rare part: on a steady load
there are none, which the bench checks).

    .venv/bin/python -m benchmarks autoscaler_tick
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Mapping
from typing import Any

import redis

from agent_runtime.config.identity import PoolIdentity
from agent_runtime.config.load import LoadSample, encode_sample, load_key
from agent_runtime.logging_config import configure_logging
from agentpool_operator.autoscaler.board import LoadBoard
from agentpool_operator.autoscaler.loop import Autoscaler
from agentpool_operator.autoscaler.reader import LoadReader, Target
from agentpool_operator.render.references import ObjectVersion
from tests.support.redis_server import RedisServer

POOLS = int(os.environ.get("BENCH_POOLS", "500"))
REPLICAS = 5
TICKS = int(os.environ.get("BENCH_TICKS", "60"))
NAMESPACE = "bench"


class _View:
    def __init__(self, bodies: dict[tuple[str, str], dict[str, Any]]) -> None:
        self._bodies = bodies
        self._deployment = {"Deployment": {"status": {"readyReplicas": REPLICAS}}}

    def pool_keys(self, namespace: str | None = None) -> list[tuple[str, str]]:
        return list(self._bodies)

    def pool(self, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self._bodies.get((namespace or "", name))

    def children(self, namespace: str | None, pool: str) -> Mapping[str, dict[str, Any]]:
        return self._deployment

    def objects(self, namespace: str) -> Mapping[tuple[str, str], ObjectVersion]:
        return {}


class _Recorder:
    """Stands in for the API server and the watch: counts what the tick writes, and puts
    a written status where the next tick reads it (as the operator's index would)."""

    def __init__(self, bodies: dict[tuple[str, str], dict[str, Any]]) -> None:
        self.writes = 0
        self._bodies = bodies

    async def _write(self, *_: Any, **__: Any) -> dict[str, Any]:
        self.writes += 1
        return {}

    scale = event = annotate_pod = _write

    async def apply_status(
        self, kind: str, namespace: str, name: str, status: Mapping[str, Any], **_: Any
    ) -> dict[str, Any]:
        self.writes += 1
        self._bodies[(namespace, name)]["status"] = dict(status)
        return {}

    async def get_pod(self, *_: Any) -> None:
        return None


def _body(index: int, url: str) -> dict[str, Any]:
    return {
        "apiVersion": "agentpool.dev/v1alpha1",
        "kind": "AgentPool",
        "metadata": {
            "name": f"p{index}",
            "namespace": NAMESPACE,
            "uid": f"u{index}",
            "resourceVersion": "1",
            "generation": 1,
        },
        "spec": {
            "instructions": "Help.",
            "model": {"baseUrl": "http://m/v1", "name": "m"},
            "replicas": REPLICAS,
            "concurrencyPerReplica": 8,
            "memory": {"redis": {"url": url}},
        },
        "status": {},
    }


def _publish(conn: redis.Redis, now: float) -> None:
    pipe = conn.pipeline(transaction=False)
    for index in range(POOLS):
        key = load_key("agentpool", PoolIdentity(namespace=NAMESPACE, name=f"p{index}"))
        samples = {
            f"p{index}-{r}": encode_sample(
                LoadSample(active_turns=4, capacity=8, queued_tasks=0, at=now)
            )
            for r in range(REPLICAS)
        }
        pipe.hset(key, mapping=samples)  # type: ignore[arg-type]
    pipe.execute()


def _redis_cpu_usec(conn: redis.Redis) -> float:
    info: dict[str, Any] = conn.info("cpu")  # type: ignore[assignment]
    return (float(info["used_cpu_sys"]) + float(info["used_cpu_user"])) * 1e6


async def _ticks(url: str, conn: redis.Redis) -> tuple[list[float], float, float, int]:
    """(tick wall times, operator CPU per tick, Redis CPU per tick, writes)."""
    bodies = {(NAMESPACE, f"p{i}"): _body(i, url) for i in range(POOLS)}
    recorder = _Recorder(bodies)
    autoscaler = Autoscaler(
        _View(bodies),
        recorder,  # type: ignore[arg-type]
        board=LoadBoard(),
        default_redis_url=None,
    )
    now = time.time()
    _publish(conn, now)
    await autoscaler.tick(now)  # parse caches, connections, first status writes
    writes_before = recorder.writes
    walls: list[float] = []
    cpu, redis_cpu = time.process_time(), _redis_cpu_usec(conn)
    publishing_cpu, publishing_redis = 0.0, 0.0
    for _ in range(TICKS):
        now = time.time()
        # The replicas' part (every sample is new each second), not the tick's: measured
        # apart and taken out of the tick's CPU figures.
        before, before_redis = time.process_time(), _redis_cpu_usec(conn)
        _publish(conn, now)
        publishing_cpu += time.process_time() - before
        publishing_redis += _redis_cpu_usec(conn) - before_redis
        started = time.perf_counter()
        await autoscaler.tick(now)
        walls.append(time.perf_counter() - started)
    cpu_per_tick = (time.process_time() - cpu - publishing_cpu) / TICKS
    redis_per_tick = (_redis_cpu_usec(conn) - redis_cpu - publishing_redis) / TICKS / 1e6
    return walls, cpu_per_tick, redis_per_tick, recorder.writes - writes_before


async def _one_at_a_time(url: str, conn: redis.Redis) -> tuple[list[float], float]:
    """The baseline: the same reads, one round trip per pool."""
    reader = LoadReader()
    targets = [
        Target(
            key=f"{NAMESPACE}/p{i}",
            url=url,
            load_key=load_key("agentpool", PoolIdentity(namespace=NAMESPACE, name=f"p{i}")),
            drain_key="unused",
            queue_keys=None,
        )
        for i in range(POOLS)
    ]
    await reader.read(targets[:1])
    walls: list[float] = []
    redis_cpu = _redis_cpu_usec(conn)
    for _ in range(TICKS):
        started = time.perf_counter()
        for target in targets:
            await reader.read([target])
        walls.append(time.perf_counter() - started)
    await reader.close()
    return walls, (_redis_cpu_usec(conn) - redis_cpu) / TICKS / 1e6


def _summary(walls: list[float]) -> str:
    ordered = sorted(walls)
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    return (
        f"median {statistics.median(walls) * 1e3:7.2f} ms, p95 {p95 * 1e3:7.2f} ms, "
        f"spread {min(walls) * 1e3:.2f}-{max(walls) * 1e3:.2f} ms"
    )


def main() -> None:
    configure_logging("WARNING")
    server = RedisServer()
    server.start()
    try:
        with redis.Redis.from_url(server.url) as conn:
            walls, cpu, redis_cpu, writes = asyncio.run(_ticks(server.url, conn))
            base_walls, base_redis = asyncio.run(_one_at_a_time(server.url, conn))
    finally:
        server.cleanup()
    print(f"{POOLS} pools x {REPLICAS} replicas, {TICKS} ticks, steady load (50 % of capacity)")
    print(f"  tick (read all, decide, status):   {_summary(walls)}")
    print(f"    operator CPU per tick:           {cpu * 1e3:7.2f} ms")
    print(f"    Redis CPU per tick:              {redis_cpu * 1e3:7.2f} ms")
    print(f"    API writes on steady load:       {writes}")
    print(f"  baseline (one read per pool):      {_summary(base_walls)}")
    print(f"    Redis CPU per tick:              {base_redis * 1e3:7.2f} ms")
    ratio = statistics.median(base_walls) / statistics.median(walls)
    print(f"  baseline reads alone / whole tick: {ratio:.1f}x")
