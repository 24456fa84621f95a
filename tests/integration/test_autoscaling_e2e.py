"""The operator's autoscaler end to end: real agent processes (the pod runner), a real
Redis, the scripted model with a think time, and callers sending /v1/chat through the
pool's front port (tests/support/load_generator.py).

One pool goes through: a load step scales it up and the pods that did not exist before
take turns (the runner's per-pod counts and each pod's own load sample in Redis); a
scale-down while every pod holds a turn drains the chosen pods first and cuts none of
their turns; load stops and the pool returns to minReplicas after its windows. Every
turn the callers started gets a 200: a 503 (replica full or draining) is retried by the
caller, as the runtime tells clients to, and counted apart.

HPA mode end to end (the real HPA controller) lives in test_metrics_api_hpa.py, whose
control plane has the aggregator's front proxy configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

from kubernetes import client

from tests.integration.crd_install import install_crds
from tests.support.cluster import Cluster
from tests.support.load_generator import LoadGenerator
from tests.support.served_pool import (
    TOKEN,
    PeakTurns,
    replicas_become,
    serve_pool,
    serving,
    short_windows,
)
from tests.support.wait import async_wait_until

POOL = "support"
THINK_SECONDS = 1.0
"""The scripted model's time to answer: what makes a turn last, as an LLM's would."""
CONCURRENCY = 4
"""Turns per replica; the target is 50 %: 2 callers per replica."""


def drain_events(workdir: Path) -> list[dict[str, Any]]:
    """The agents' own "draining" log lines (reason, turns running at that moment)."""
    found = []
    for log in (workdir / "logs").glob("*.log"):
        for line in log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if event.get("event") == "draining":
                    found.append({**event, "log": log.name})
    return found


async def test_load_scales_up_new_pods_serve_scale_down_cuts_no_turn_idle_returns_to_min(
    cluster: Cluster,
    kube_api: client.ApiClient,
    namespace: str,
    redis_url: str,
    tmp_path: Path,
) -> None:
    install_crds(cluster)
    with serve_pool(
        cluster,
        kube_api,
        namespace,
        POOL,
        tmp_path,
        redis_url,
        scaling=short_windows(),
        concurrency=CONCURRENCY,
        think_seconds=THINK_SECONDS,
    ) as served:
        runner = served.runner
        first = await serving(runner, namespace, POOL, 1)
        async with (
            LoadGenerator(served.front, TOKEN) as load,
            PeakTurns(redis_url, namespace, POOL).watching() as turns,
        ):
            # (a) The step: 8 callers, 1 replica of 4 slots. Demand is the turns running
            # and the callers the full replica refuses (503, retried): 8 callers at the
            # 50 % target ask 4 replicas, reached at once or (refusals not yet published)
            # by doubling.
            started = time.monotonic()
            load.set_users(8)
            first_up_seconds = await replicas_become(
                kube_api, namespace, POOL, 2, within=15, at_least=True
            )
            await replicas_become(kube_api, namespace, POOL, 4, within=60)
            now_serving = await serving(runner, namespace, POOL, 4)
            all_serving_seconds = time.monotonic() - started
            new = now_serving - first
            assert len(new) == 3, (first, now_serving)

            async def new_pods_took_turns() -> bool:
                status = await asyncio.to_thread(runner.pool, namespace, POOL)
                served = {p.pod: p.served for p in status.pods}
                return all(served.get(p, 0) >= 1 and turns.peak.get(p, 0) >= 1 for p in new)

            await async_wait_until(
                new_pods_took_turns, timeout=30, what=f"turns on the new pods {sorted(new)}"
            )

            # (c) Four long turns, one on each replica (the front picks the least busy):
            # 4 of 16 slots is 25 %, below the 30 % scale-down line: 2 replicas, and both
            # pods removed hold a turn when they are asked to drain.
            load.message = "slow 4"
            load.set_users(4)
            down_seconds = await replicas_become(kube_api, namespace, POOL, 2, within=40)
            await serving(runner, namespace, POOL, 2)

            # (b) Load stops: back to minReplicas once the scale-down window saw none.
            load.set_users(0)
            await load.drain()
            idle_seconds = await replicas_become(kube_api, namespace, POOL, 1, within=40)
            await serving(runner, namespace, POOL, 1)

        assert load.stats.failed == [], load.stats.failed
        assert load.stats.ok >= 20, load.stats
        # The agents themselves say they were asked to drain with turns running; those
        # turns are among the 200s above.
        scale_downs = [e for e in drain_events(runner.workdir) if e.get("reason") == "scale-down"]
        assert any(e["active_turns"] >= 1 for e in scale_downs), scale_downs
    print(
        f"\nstep to replicas written (first scale-up) {first_up_seconds:.1f}s, to 4 pods serving "
        f"{all_serving_seconds:.1f}s; 4 -> 2 in {down_seconds:.1f}s, 2 -> 1 in "
        f"{idle_seconds:.1f}s after the load stopped; turns: {load.stats.ok} answered, "
        f"{load.stats.refused} 503s retried, 0 cut; peak turns per pod {turns.peak}"
    )
