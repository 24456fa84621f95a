"""The scaling policy's cost per tick: `decide()` for 500 pools, as the autoscaler loop
calls it every second (goal: the whole tick under 50 ms, so decide well under 50 us a
pool).

Each pool has 5 ready replicas of capacity 4 publishing samples, a history already full
(points for its longest window, a few scale events within the step periods), and one of
four specs (the defaults; short windows; Min/Percent policies with an up stabilization
window; minReplicas 0 with a fallback). Load is noise inside the band plus, for one pool
in ten, a step that scales it, so the scale paths and the reasons are measured too.

Baseline, in the same run and interleaved round by round: the trivial proportional rule
(`ceil(demand / (capacity x target))`, clamped) over the same samples: what a policy with
no windows, no hysteresis and no behavior costs. A third row passes a new spec object
each tick (the identity memo misses): what it costs if the loop re-parses pools.

    .venv/bin/python -m benchmarks autoscaler
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from functools import partial

from agent_runtime.config.load import LoadSample
from agentpool_operator import api
from agentpool_operator.autoscaler.scaling import Current, History, Observation, decide

POOLS = 500
REPLICAS = 5
CAPACITY = 4
ROUNDS = 61
WARM_TICKS = 200


def _specs() -> list[api.ScalingSpec]:
    policy = api.ScalingPolicy
    return [
        api.ScalingSpec(min_replicas=1, max_replicas=20),
        api.ScalingSpec(
            min_replicas=2,
            max_replicas=50,
            operator=api.OperatorScaling(
                scale_down_window_seconds=30,
                behavior=api.ScalingBehavior(
                    scale_down=api.ScalingRules(
                        stabilization_window_seconds=30,
                        policies=[policy(type="Pods", value=2, period_seconds=15)],
                    )
                ),
            ),
        ),
        api.ScalingSpec(
            min_replicas=1,
            max_replicas=100,
            operator=api.OperatorScaling(
                behavior=api.ScalingBehavior(
                    scale_up=api.ScalingRules(
                        stabilization_window_seconds=10,
                        select_policy="Min",
                        policies=[
                            policy(type="Percent", value=50, period_seconds=5),
                            policy(type="Pods", value=3, period_seconds=5),
                        ],
                    )
                )
            ),
        ),
        api.ScalingSpec(
            min_replicas=0,
            max_replicas=10,
            operator=api.OperatorScaling(
                cooldown_period_seconds=120,
                fallback=api.ScalingFallback(failure_threshold=3, replicas=2),
            ),
        ),
    ]


class Pools:
    """500 pools' state across ticks: spec, replicas, history."""

    def __init__(self, rng: random.Random) -> None:
        specs = _specs()
        self.rng = rng
        self.specs = [specs[i % len(specs)] for i in range(POOLS)]
        self.replicas = [REPLICAS] * POOLS
        self.histories = [History(started_at=0.0) for _ in range(POOLS)]
        self.now = 0.0

    def observations(self) -> list[Observation]:
        """This tick's samples for every pool (built outside the timed part: decoding is
        the reader's cost, not the policy's)."""
        out = []
        step = int(self.now) // 30 % 2 == 1
        for i, replicas in enumerate(self.replicas):
            busy = 0.5 + self.rng.uniform(-0.08, 0.08)  # inside the 40-70% band
            if step and i % 10 == 0:
                busy = 1.0  # a step for one pool in ten, every other 30 s
            samples = tuple(
                LoadSample(
                    active_turns=round(CAPACITY * busy),
                    capacity=CAPACITY,
                    queued_tasks=0,
                    draining=False,
                    at=self.now - self.rng.uniform(0, 1),
                )
                for _ in range(replicas)
            )
            out.append(Observation(samples=samples, queued_tasks=0, stale_after=5.0))
        return out

    def tick(
        self, observations: list[Observation], specs: list[api.ScalingSpec] | None = None
    ) -> None:
        now = self.now
        specs = specs if specs is not None else self.specs
        for i, observation in enumerate(observations):
            spec = specs[i]
            replicas = self.replicas[i]
            decision = decide(
                spec, CAPACITY, Current(replicas, replicas), observation, self.histories[i], now
            )
            self.histories[i] = decision.history
            self.replicas[i] = decision.replicas


def proportional(spec: api.ScalingSpec, observation: Observation, now: float) -> int:
    """The baseline: demand over capacity at the target, clamped; nothing remembered."""
    samples = observation.samples or ()
    demand = sum(s.active_turns for s in samples if now - s.at <= observation.stale_after)
    demand += observation.queued_tasks
    target = spec.operator_settings.target_load_percent
    wanted = -(-demand * 100 // (CAPACITY * target))
    return min(max(wanted, spec.min_replicas), spec.max_replicas)


def baseline(specs: list[api.ScalingSpec], observations: list[Observation], now: float) -> None:
    for spec, observation in zip(specs, observations, strict=True):
        proportional(spec, observation, now)


def _timed(run: Callable[[], None]) -> tuple[float, float]:
    """(wall, CPU) seconds: on a shared box the CPU time is the steadier figure."""
    wall, cpu = time.perf_counter(), time.thread_time()
    run()
    return time.perf_counter() - wall, time.thread_time() - cpu


def _row(name: str, times: list[tuple[float, float]], base: float | None) -> str:
    walls = sorted(w for w, _ in times)
    p10, p90 = walls[len(walls) // 10], walls[len(walls) * 9 // 10]
    median = statistics.median(walls)
    cpu = statistics.median(c for _, c in times)
    ratio = f"{median / base:5.1f}x" if base else "     "
    return (
        f"  {name:<35} {median * 1e3:6.2f} ms/tick ({p10 * 1e3:.2f}-{p90 * 1e3:.2f}), "
        f"CPU {cpu * 1e3:6.2f} ms  {median / POOLS * 1e6:6.2f} us/pool  {ratio}"
    )


def main() -> None:
    rng = random.Random(13)
    pools = Pools(rng)
    for _ in range(WARM_TICKS):  # fill every history to its longest window
        pools.now += 1.0
        pools.tick(pools.observations())
    points = statistics.median(len(h.points) for h in pools.histories)
    base_times: list[tuple[float, float]] = []
    decide_times: list[tuple[float, float]] = []
    fresh_times: list[tuple[float, float]] = []
    changes = 0
    for _ in range(ROUNDS):
        pools.now += 1.0
        observations = pools.observations()
        now = pools.now

        before = list(pools.replicas)
        base_times.append(_timed(partial(baseline, pools.specs, observations, now)))
        saved = (list(pools.replicas), list(pools.histories))
        decide_times.append(_timed(partial(pools.tick, observations)))
        changes += sum(a != b for a, b in zip(before, pools.replicas, strict=True))
        # The same tick again from the same state, with new spec objects (the memo misses).
        after = (pools.replicas, pools.histories)
        pools.replicas, pools.histories = saved
        copies = [spec.model_copy() for spec in pools.specs]
        fresh_times.append(_timed(partial(pools.tick, observations, copies)))
        pools.replicas, pools.histories = after
    base = statistics.median(w for w, _ in base_times)
    print(
        f"{POOLS} pools x {REPLICAS} replicas, histories of {points:.0f} points, "
        f"{ROUNDS} ticks; {changes} scale changes measured; wall median (p10-p90), CPU median"
    )
    print(_row("proportional rule (baseline)", base_times, None))
    print(_row("decide()", decide_times, base))
    print(_row("decide(), a new spec object a tick", fresh_times, base))


if __name__ == "__main__":
    main()
