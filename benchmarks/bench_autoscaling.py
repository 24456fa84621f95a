"""Autoscaling on load, end to end: the operator's autoscaler (mode Operator) against the
real HPA controller (mode HPA, on the load the operator serves on custom.metrics.k8s.io),
both replaying the same recorded load trace at the same time, in one run.

Each mode gets its own pool (namespace) of the same spec, real agent processes (the pod
runner, hack/pod_runner), one scripted model with a think time for all of them, one
real Redis, and its own closed-loop callers (tests/support/load_generator.py) that send
/v1/chat through the pool's front port, retrying a 503 as clients are told to.

    AGENTPOOL_BENCH_AUTOSCALING=1 .venv/bin/python -m benchmarks     # with the rest
    .venv/bin/python -m benchmarks autoscaling                         # this one
    AGENTPOOL_BENCH_NOISE_SECONDS=660 .venv/bin/python -m benchmarks autoscaling
    .venv/bin/python -m benchmarks.bench_autoscaling --report <work>/timeline.json

Settings (environment): AGENTPOOL_BENCH_HPA_SYNC_SECONDS (kube-controller-manager's
--horizontal-pod-autoscaler-sync-period; default 15, the HPA's default),
AGENTPOOL_BENCH_NOISE_SECONDS (the noisy constant segment; default 150: 60 to converge,
90 counted; 660 for the 10 minutes of the README), AGENTPOOL_BENCH_THINK_SECONDS (the
model's time per answer, default 1.0), AGENTPOOL_BENCH_FORK_SERVER (default 1: pods
forked from a warm process; 0: a cold process each). It starts its own control plane
(`agentpool-bench-autoscaling<sync>`, the front proxy configured) and stops it after.

Reported per mode:

- step -> replicas written: for every change of the trace that asks for more replicas
  than the pool has (callers / 2, capped at maxReplicas), seconds from the callers'
  change to the pool's spec.replicas growing (median, p95, max);
- step -> new pods serving: to the first pod created after the step answering its
  readiness probe (the runner's `readyAt`), i.e. taking turns; and, apart, how long a
  pod's process takes to start on this machine (Running -> ready), which no autoscaler
  can shorten;
- the ratio Operator / HPA of both;
- scale events during the noisy constant segment after its first 60 s;
- turns: answered, 503s retried, cut (any other status, a broken connection, or no
  answer within 120 s): the goal is 0 cut, scale-downs included.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config

from hack.pod_runner import RunnerProcess, start_pod_runner_process
from tests.integration.crd_install import install_crds
from tests.support.cluster import Cluster, release_cluster
from tests.support.hpa_cluster import acquire_hpa_cluster, apiservice_available, metrics_api_env
from tests.support.load_generator import LoadGenerator
from tests.support.operator_process import start_operator, stop_operator
from tests.support.redis_server import RedisServer, free_port
from tests.support.scripted_model import scripted_model_process
from tests.support.served_pool import GROUP, PLURAL, TOKEN, VERSION, create_served_pool
from tests.support.wait import wait_until

HPA_SYNC_SECONDS = int(os.environ.get("AGENTPOOL_BENCH_HPA_SYNC_SECONDS", "15"))
NOISE_SECONDS = int(os.environ.get("AGENTPOOL_BENCH_NOISE_SECONDS", "150"))
THINK_SECONDS = float(os.environ.get("AGENTPOOL_BENCH_THINK_SECONDS", "1.0"))
FORK_SERVER = os.environ.get("AGENTPOOL_BENCH_FORK_SERVER", "1") != "0"
"""The pod runner forks each pod's process from one that imported the runtime once
(`--fork-server`): a pod starts in seconds, not in the 10-20 s a cold Python start
takes on this machine, which no autoscaler could shorten. 0: a cold process per pod."""
SETTLE_SECONDS = 60
"""The first seconds of the noisy segment, left to converge; scale events after count."""
POOL = "support"
CONCURRENCY = 4
"""Turns per replica. At the 50 % target a replica carries 2 callers."""
MAX_REPLICAS = 6
DOWN_WINDOW_SECONDS = 30
"""How long a lower load must last before either mode shrinks the pool: the operator's
scaleDownWindowSeconds, the HPA's scaleDown stabilizationWindowSeconds."""

# ------------------------------------------------------------------------ the trace
#
# Recorded once and stored here, so that both modes (and every run) replay the same:
# (label, seconds, callers). A caller keeps one turn in flight at a time, so callers =
# turns wanted; at the 50 % target of 4 slots that is callers / 2 replicas.
TRACE: tuple[tuple[str, int, int], ...] = (
    ("idle", 20, 2),
    ("step", 50, 8),
    ("down", 50, 2),
    ("ramp", 12, 4),
    ("ramp", 12, 6),
    ("ramp", 12, 8),
    ("ramp", 12, 10),
    ("spike", 20, 12),
    ("calm", 45, 4),
)
NOISE: tuple[int, ...] = (
    6, 7, 6, 5, 6, 8, 6, 6, 5, 7, 6, 6, 7, 5, 6, 6, 8, 7, 6, 5,
    6, 6, 7, 6, 5, 5, 6, 7, 8, 6, 6, 5, 6, 7, 6, 6, 5, 6, 7, 6,
)  # fmt: skip
"""The noisy constant segment: callers per 3 s, around 6 (3 replicas at the target),
recorded from a noisy steady load and repeated for as long as the segment lasts."""
NOISE_STEP_SECONDS = 3


def schedule(noise_seconds: int) -> list[tuple[float, str, int]]:
    """(start offset, label, callers) of every change of the trace."""
    out: list[tuple[float, str, int]] = []
    at = 0.0
    for label, seconds, callers in TRACE:
        out.append((at, label, callers))
        at += seconds
    for i in range(math.ceil(noise_seconds / NOISE_STEP_SECONDS)):
        out.append((at, "noise", NOISE[i % len(NOISE)]))
        at += NOISE_STEP_SECONDS
    out.append((at, "end", 0))
    return out


def operator_scaling() -> dict[str, Any]:
    return {
        "mode": "Operator",
        "minReplicas": 1,
        "maxReplicas": MAX_REPLICAS,
        "operator": {
            "signal": "ActiveTurns",
            "targetLoadPercent": 50,
            "scaleDownLoadPercent": 30,
            "scaleUpWindowSeconds": 2,
            "scaleDownWindowSeconds": DOWN_WINDOW_SECONDS,
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}},
        },
    }


def hpa_scaling() -> dict[str, Any]:
    return {
        "mode": "HPA",
        "minReplicas": 1,
        "maxReplicas": MAX_REPLICAS,
        "hpa": {
            "metric": "Load",
            "targetPercent": 50,
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": DOWN_WINDOW_SECONDS}},
        },
    }


# ------------------------------------------------------------------------ one mode


@dataclass
class ModeRun:
    mode: str
    namespace: str
    replicas: list[tuple[float, int]] = field(default_factory=list)
    """(wall clock, spec.replicas) at every change seen."""
    pods_ready: dict[str, tuple[float, float | None]] = field(default_factory=dict)
    """pod -> (seen Running, ready) wall clock, from the pod runner."""
    changes: list[tuple[float, str, int]] = field(default_factory=list)
    """(wall clock, label, callers) as replayed."""
    status: list[tuple[Any, ...]] = field(default_factory=list)
    """(wall clock, readyReplicas, demand, loadPercent) of the pool's status, every 0.5 s."""
    ok: int = 0
    refused: int = 0
    cut: list[str] = field(default_factory=list)


def _pool(api: client.ApiClient, namespace: str) -> dict[str, Any]:
    found = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, POOL
    )
    assert isinstance(found, dict)
    return found


async def _observe(api: client.ApiClient, runner: RunnerProcess, run: ModeRun) -> None:
    # spec.replicas is polled every 0.1 s (its time is when it was seen); the pods' times
    # are the runner's own records, so reading them once a second loses nothing.
    ticks = 0
    while True:
        pool = await asyncio.to_thread(_pool, api, run.namespace)
        now = time.time()
        replicas = pool["spec"].get("replicas")
        if isinstance(replicas, int) and (not run.replicas or run.replicas[-1][1] != replicas):
            run.replicas.append((now, replicas))
        if ticks % 5 == 0:  # what the autoscaler saw, for reading the timeline afterwards
            reported = pool.get("status") or {}
            seen = [reported.get(k) for k in ("readyReplicas", "demand", "loadPercent")]
            run.status.append((now, *seen))
        if ticks % 10 == 0:
            status = await asyncio.to_thread(runner.pool, run.namespace, POOL)
            for pod in status.pods:
                run.pods_ready[pod.pod] = (pod.seen_running_at, pod.ready_at)
        ticks += 1
        await asyncio.sleep(0.1)


async def _replay(front: str, plan: list[tuple[float, str, int]], run: ModeRun) -> None:
    start = time.monotonic()
    async with LoadGenerator(front, TOKEN) as load:
        for offset, label, callers in plan:
            await asyncio.sleep(max(0.0, start + offset - time.monotonic()))
            run.changes.append((time.time(), label, callers))
            load.set_users(callers)
        await load.drain()
    run.ok, run.refused = load.stats.ok, load.stats.refused
    run.cut = [f"{f.status}: {f.detail[:120]}" for f in load.stats.failed]


# ------------------------------------------------------------------------ figures


@dataclass
class Figures:
    to_replicas: list[float]
    to_serving: list[float]
    noise_events: int
    noise_minutes: float
    missed: int
    """Steps after which the pool did not grow before the load fell again."""
    pod_start: list[float]
    """Seconds from a pod seen Running to its process ready (the machine's part)."""
    steps: list[str] = field(default_factory=list)
    """One line per step: when, callers, replicas before, and both delays."""


def needed(callers: int) -> int:
    """Replicas the trace asks for at the 50 % target (what both modes aim at)."""
    return max(1, min(MAX_REPLICAS, math.ceil(callers / (CONCURRENCY * 0.5))))


def figures(run: ModeRun) -> Figures:
    """A step is a change of the trace (noise aside) that asks for more replicas than the
    pool has at that moment; it is answered by the first growth of spec.replicas before
    the load falls again, and served by the first pod created after it that is ready."""
    to_replicas: list[float] = []
    to_serving: list[float] = []
    steps: list[str] = []
    missed = 0
    for i, (at, label, callers) in enumerate(run.changes):
        before = _replicas_at(run, at)
        if label in ("noise", "end") or needed(callers) <= before:
            continue
        # Until the load falls again: a rise the pool answers late (after the next rise
        # of a ramp) still counts, with its real delay.
        until = next((t for t, _, c in run.changes[i + 1 :] if c < callers), math.inf)
        grew = next((t for t, r in run.replicas if at < t < until and r > before), None)
        start = at - run.changes[0][0]
        if grew is None:
            missed += 1
            steps.append(f"t={start:4.0f}s {label} {callers} callers, {before} replicas: none")
            continue
        to_replicas.append(grew - at)
        ready = [r for seen, r in run.pods_ready.values() if at < seen < until and r is not None]
        if ready:
            to_serving.append(min(ready) - at)
        serving = f"{min(ready) - at:.1f}s" if ready else "n/a"
        steps.append(
            f"t={start:4.0f}s {label} {callers} callers, {before} replicas: written "
            f"{grew - at:.1f}s, serving {serving}"
        )
    noise = [at for at, label, _ in run.changes if label == "noise"]
    end = next(at for at, label, _ in run.changes if label == "end")
    counted_from = noise[0] + SETTLE_SECONDS if noise else end
    events = sum(1 for t, _ in run.replicas if counted_from <= t < end)
    starts = [r - seen for seen, r in run.pods_ready.values() if r is not None and r > seen]
    return Figures(
        to_replicas, to_serving, events, max(0.0, end - counted_from) / 60, missed, starts, steps
    )


def _replicas_at(run: ModeRun, at: float) -> int:
    value = run.replicas[0][1] if run.replicas else 1
    for t, r in run.replicas:
        if t <= at:
            value = r
    return value


def _p95(values: list[float]) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


def _summary(values: list[float]) -> str:
    if not values:
        return "n/a"
    return (
        f"median {statistics.median(values):5.1f}s  p95 {_p95(values):5.1f}s  "
        f"min {min(values):4.1f}s  max {max(values):5.1f}s  (n={len(values)})"
    )


def report(runs: dict[str, ModeRun]) -> None:
    found = {mode: figures(run) for mode, run in runs.items()}
    print(
        f"\nHPA sync period {HPA_SYNC_SECONDS}s, model think time {THINK_SECONDS}s, "
        f"{CONCURRENCY} turns per replica, target 50 %, down after {DOWN_WINDOW_SECONDS}s, "
        f"noise {NOISE_SECONDS}s ({SETTLE_SECONDS}s to converge), "
        f"pods {'forked (--fork-server)' if FORK_SERVER else 'cold'}, "
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    for mode, f in found.items():
        run = runs[mode]
        print(f"\n{mode}")
        for line in f.steps:
            print(f"  {line}")
        print(f"  step -> replicas written  {_summary(f.to_replicas)}")
        print(f"  step -> new pods serving  {_summary(f.to_serving)}")
        if f.missed:
            print(f"  steps with no scale-up before the load fell again: {f.missed}")
        print(f"  pod Running -> process ready  {_summary(f.pod_start)}")
        print(
            f"  scale events in {f.noise_minutes:.1f} min of noisy constant load after "
            f"convergence: {f.noise_events}"
        )
        print(f"  replicas over time: {[r for _, r in run.replicas]}")
        print(f"  turns: {run.ok} answered, {run.refused} 503s retried, {len(run.cut)} cut")
        for line in run.cut[:5]:
            print(f"    cut: {line}")
    op, hpa = found.get("Operator"), found.get("HPA")
    if op and hpa and op.to_replicas and hpa.to_replicas:
        print("\nOperator / HPA (lower is faster)")
        for what, a, b in (
            ("replicas written, median", op.to_replicas, hpa.to_replicas),
            ("new pods serving, median", op.to_serving, hpa.to_serving),
        ):
            if a and b:
                ratio = statistics.median(a) / statistics.median(b)
                print(f"  {what}: {ratio:.2f}  ({1 / ratio:.1f}x faster)")
        if op.to_replicas and hpa.to_replicas:
            print(f"  replicas written, p95: {_p95(op.to_replicas) / _p95(hpa.to_replicas):.2f}")


# ------------------------------------------------------------------------ the run


def _cluster_name() -> str:
    return "agentpool-bench-autoscaling" + ("" if HPA_SYNC_SECONDS == 15 else str(HPA_SYNC_SECONDS))


async def _run_modes(
    api: client.ApiClient, runner: RunnerProcess, fronts: dict[str, str], runs: dict[str, ModeRun]
) -> None:
    plan = schedule(NOISE_SECONDS)
    observers = [asyncio.create_task(_observe(api, runner, run)) for run in runs.values()]
    try:
        await asyncio.gather(*(_replay(fronts[m], plan, run) for m, run in runs.items()))
    finally:
        for task in observers:
            task.cancel()
        await asyncio.gather(*observers, return_exceptions=True)


def report_timeline(path: Path) -> None:
    """The figures of a finished run again, from its timeline.json."""
    raw = json.loads(path.read_text())
    report({mode: ModeRun(**fields) for mode, fields in raw.items()})


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--report":
        report_timeline(Path(sys.argv[2]))
        return
    work = Path(tempfile.mkdtemp(prefix="bench-autoscaling-"))
    total = sum(s for _, s, _ in TRACE) + NOISE_SECONDS
    print(f"trace: {total}s; logs under {work}", flush=True)
    redis_server = RedisServer(appendonly=False)
    redis_server.start()
    cluster: Cluster | None = None
    try:
        cluster = acquire_hpa_cluster(_cluster_name(), HPA_SYNC_SECONDS)
        install_crds(cluster)
        api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
        runs = {
            mode: ModeRun(mode, f"bench-{mode.lower()}-{uuid.uuid4().hex[:6]}")
            for mode in ("Operator", "HPA")
        }
        core = client.CoreV1Api(api)
        for run in runs.values():
            core.create_namespace(
                client.V1Namespace(metadata=client.V1ObjectMeta(name=run.namespace))
            )
        namespaces = [run.namespace for run in runs.values()]
        port = free_port()
        with scripted_model_process(work / "model.log", think_seconds=THINK_SECONDS) as model:
            operator = start_operator(
                cluster, namespaces, work / "operator.log", metrics_api_env(port)
            )
            runner = start_pod_runner_process(
                cluster.kubeconfig,
                namespaces,
                work / "runner",
                extra_args=["--fork-server"] if FORK_SERVER else [],
            )
            try:
                for mode, scaling in (("Operator", operator_scaling()), ("HPA", hpa_scaling())):
                    create_served_pool(
                        api, runs[mode].namespace, POOL, model, redis_server.url,
                        concurrency=CONCURRENCY, scaling=scaling,
                    )  # fmt: skip
                wait_until(lambda: apiservice_available(cluster), timeout=90, what="APIService")
                fronts = {m: runner.front_url(r.namespace, POOL) for m, r in runs.items()}
                for run in runs.values():
                    runner.wait_serving(run.namespace, POOL, 1, timeout=120)
                asyncio.run(_run_modes(api, runner, fronts, runs))
            finally:
                runner.stop()
                stop_operator(operator)
        (work / "timeline.json").write_text(
            json.dumps({m: dataclasses.asdict(r) for m, r in runs.items()}, indent=1)
        )
        report(runs)
        print(f"timeline: {work / 'timeline.json'}")
        for run in runs.values():
            core.delete_namespace(run.namespace, propagation_policy="Background")
    finally:
        if cluster is not None:
            release_cluster(cluster)
        redis_server.stop()
        redis_server.cleanup()


if __name__ == "__main__":
    main()
