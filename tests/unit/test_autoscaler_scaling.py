"""The scaling policy of mode Operator (pure): each rule by example, and its invariants
over any sequence of ticks with hypothesis."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from agent_runtime.config.load import LoadSample
from agentpool_operator import api
from agentpool_operator.autoscaler.scaling import (
    Current,
    Decision,
    History,
    Observation,
    ScaleEvent,
    decide,
)

CAP = 4  # concurrencyPerReplica in the examples


def scaling(
    *,
    min_replicas: int = 1,
    max_replicas: int = 20,
    up: api.ScalingRules | None = None,
    down: api.ScalingRules | None = None,
    fallback: api.ScalingFallback | None = None,
    **operator: Any,
) -> api.ScalingSpec:
    return api.ScalingSpec(
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        operator=api.OperatorScaling(
            behavior=api.ScalingBehavior(scale_up=up, scale_down=down),
            fallback=fallback,
            **operator,
        ),
    )


def quick(**kw: Any) -> api.ScalingSpec:
    """Windows short enough for examples: down window 10 s, no stabilization, no limits
    that bind in the examples."""
    kw.setdefault("scale_down_window_seconds", 10)
    kw.setdefault("down", api.ScalingRules(stabilization_window_seconds=0, policies=[pods(100, 1)]))
    kw.setdefault("up", api.ScalingRules(policies=[pods(100, 1)]))
    return scaling(**kw)


def pods(value: int, period: int) -> api.ScalingPolicy:
    return api.ScalingPolicy(type="Pods", value=value, period_seconds=period)


def percent(value: int, period: int) -> api.ScalingPolicy:
    return api.ScalingPolicy(type="Percent", value=value, period_seconds=period)


def sample(
    turns: int, at: float, *, draining: bool = False, queued: int = 0, refused: int = 0
) -> LoadSample:
    return LoadSample(
        active_turns=turns,
        capacity=CAP,
        at=at,
        draining=draining,
        queued_tasks=queued,
        refused_turns=refused,
    )


@dataclass
class Pool:
    """A simulated pool: replicas follow the decisions, and are ready at once."""

    spec: api.ScalingSpec
    replicas: int
    now: float = 0.0
    history: History = field(init=False)
    decisions: list[Decision] = field(default_factory=list)
    sizes: list[tuple[float, int]] = field(default_factory=list)
    """(time, replicas after the tick) of every tick."""

    def __post_init__(self) -> None:
        self.history = History(started_at=self.now)
        self.start = self.replicas

    def tick(
        self,
        work: int | None,
        *,
        dt: float = 1.0,
        silent: int = 0,
        ready: int | None = None,
        refused: int = 0,
    ) -> Decision:
        """One second (or `dt`) later, `work` turns wanted (None: Redis unreachable); what
        does not fit in the ready slots waits in the queue; `silent` ready replicas stop
        reporting; the last replica refused `refused` callers."""
        self.now += dt
        ready = self.replicas if ready is None else ready
        observation = self.observation(work, ready, silent, refused)
        decision = decide(
            self.spec, CAP, Current(self.replicas, ready), observation, self.history, self.now
        )
        self.history = decision.history
        self.replicas = decision.replicas
        self.decisions.append(decision)
        self.sizes.append((self.now, self.replicas))
        return decision

    def observation(self, work: int | None, ready: int, silent: int, refused: int) -> Observation:
        if work is None:
            return Observation(samples=None)
        turns = min(work, ready * CAP)
        per, extra = divmod(turns, ready) if ready else (0, 0)
        samples = tuple(
            sample(
                per + (1 if i < extra else 0),
                self.now - (60 if i < silent else 0),
                refused=refused if i == ready - 1 else 0,
            )
            for i in range(ready)
        )
        return Observation(samples=samples, queued_tasks=work - turns)

    def run(self, work: int | None, seconds: int) -> Decision:
        decision = None
        for _ in range(seconds):
            decision = self.tick(work)
        assert decision is not None
        return decision

    def settle(self, work: int, *, quiet: int = 100, budget: int = 5000) -> None:
        """Tick at a constant `work` until the size has not changed for `quiet` seconds
        (longer than any window, stabilization window or period the strategies draw)."""
        still = 0
        for _ in range(budget):
            before = self.replicas
            self.tick(work)
            still = still + 1 if self.replicas == before else 0
            if still >= quiet:
                return
        raise AssertionError(f"no size held {quiet} s at work {work}")

    def changes_by_tick(self) -> list[ScaleEvent | None]:
        """Each tick's change, or None."""
        out: list[ScaleEvent | None] = []
        before = self.start
        for at, size in self.sizes:
            out.append(ScaleEvent(at, before, size) if size != before else None)
            before = size
        return out

    def changes(self) -> list[ScaleEvent]:
        return [c for c in self.changes_by_tick() if c is not None]


# ----------------------------------------------------------------------------- the signal


def test_demand_counts_fresh_turns_draining_included_and_the_queue_once() -> None:
    spec = quick()
    now = 100.0
    samples = (
        sample(3, now),
        sample(2, now - 1, draining=True, queued=50),  # its turns still run; queuedTasks ignored
        sample(4, now - 30),  # stale: a replica that stopped reporting
    )
    history = History(started_at=0.0)
    d = decide(spec, CAP, Current(3, 3), Observation(samples, queued_tasks=6), history, now)
    assert d.demand == 3 + 2 + 6
    assert d.load_percent == 11 * 100 // 12
    point = d.history.points[-1]
    # One non-draining fresh sample reports; 2 of 3 ready replicas are silent.
    assert point.up == math.ceil(11 / (CAP * 0.7))  # silent replicas empty
    assert point.full_demand == 11 + 2 * CAP  # silent replicas full
    assert point.down == math.ceil(19 / (CAP * 0.7))


def test_refused_callers_count_as_demand_from_fresh_samples_only() -> None:
    now = 100.0
    samples = (
        sample(4, now, refused=3),
        sample(2, now, draining=True, refused=1),  # refused before it began draining
        sample(4, now - 30, refused=9),  # stale
    )
    observation = Observation(samples, queued_tasks=2)
    d = decide(quick(), CAP, Current(3, 3), observation, History(started_at=0.0), now)
    assert d.demand == 4 + 2 + 3 + 1 + 2


def test_every_slot_busy_with_callers_refused_scales_at_once_to_their_size() -> None:
    pool = Pool(quick(), replicas=2)
    pool.run(2, 5)
    d = pool.tick(8, refused=12)  # 8 slots busy, nothing queued, 12 callers refused
    assert d.replicas == math.ceil(20 / (CAP * 0.7)) == 8
    assert d.reason == "every slot busy (8 turns for 8) and 0 queued, 12 refused: 2 -> 8"
    # Without them, the same full pool asks for one step: what it could see of the load.
    capped = Pool(quick(), replicas=2)
    capped.run(2, 5)
    capped.tick(8)
    assert capped.tick(8).replicas == math.ceil(8 / (CAP * 0.7)) == 3


def test_no_ready_replica_means_no_load_percent() -> None:
    d = decide(quick(), CAP, Current(0, 0), Observation((), 0), History(started_at=0.0), 1.0)
    assert d.load_percent is None
    assert d.demand == 0


# ----------------------------------------------------------------------------- scale up


def test_a_step_moves_the_pool_on_its_second_reading_and_a_spike_not_at_all() -> None:
    pool = Pool(quick(), replicas=2)
    pool.run(4, 5)
    # 8 turns fill the 8 slots (nothing queued): 3 replicas at 70%.
    assert pool.tick(8).replicas == 2  # one reading: a spike, perhaps
    assert pool.tick(4).replicas == 2  # it was
    assert pool.tick(8).replicas == 2
    d = pool.tick(8)  # second reading of the step
    assert d.replicas == math.ceil(8 / (CAP * 0.7)) == 3
    assert d.reason == "load 142% of target over 2 s: 2 -> 3"
    assert d.history.events[-1] == ScaleEvent(pool.now, 2, 3)


def test_one_second_windows_still_read_two_readings() -> None:
    spec = quick(
        scale_up_window_seconds=1,
        scale_down_window_seconds=1,
        up=api.ScalingRules(stabilization_window_seconds=0, policies=[pods(100, 1)]),
        down=api.ScalingRules(stabilization_window_seconds=0, policies=[pods(100, 1)]),
    )
    pool = Pool(spec, replicas=2)
    pool.run(4, 5)
    assert pool.tick(8).replicas == 2
    assert pool.tick(8).replicas == 3
    for dt in (2.5, 2.5):  # slower ticks than every window: still the last two readings
        pool.tick(12, dt=dt)
    assert pool.replicas == math.ceil(12 / (CAP * 0.7)) == 5


def test_every_slot_busy_with_work_queued_scales_at_once() -> None:
    pool = Pool(quick(), replicas=2)
    pool.run(2, 5)
    d = pool.tick(8 + 6)  # 8 slots busy, 6 queued
    assert d.replicas == math.ceil(14 / (CAP * 0.7)) == 5
    assert "every slot busy" in d.reason
    assert d.reason.endswith("2 -> 5")


def test_a_fresh_operator_waits_for_two_readings_unless_every_slot_is_busy() -> None:
    assert Pool(quick(), replicas=2).tick(8).replicas == 2  # full, nothing queued
    assert Pool(quick(), replicas=2).tick(9).replicas == 4  # full and 1 queued


# ----------------------------------------------------------------------------- scale down


def test_the_band_holds_and_a_low_window_shrinks_to_the_target_size() -> None:
    spec = quick(scale_down_window_seconds=10)
    pool = Pool(spec, replicas=10)
    # 10 replicas x 4 slots: 20 turns = 50%, inside the 40-70% band.
    pool.run(20, 30)
    assert pool.replicas == 10
    assert "within 40-70%" in pool.decisions[-1].reason
    # 12 turns = 30%: below 40% for the whole window, then to the target size.
    for _ in range(9):
        assert pool.tick(12).replicas == 10
    d = pool.tick(12)
    assert d.replicas == math.ceil(12 / (CAP * 0.7)) == 5
    assert d.reason == "load at most 30% (below 40%) for 10 s: 10 -> 5"
    # At the new size the same load is inside the band: nothing moves any more.
    pool.run(12, 60)
    assert pool.replicas == 5


def test_one_busy_reading_in_the_window_holds_the_scale_down() -> None:
    pool = Pool(quick(scale_down_window_seconds=10), replicas=10)
    pool.run(20, 30)
    for i in range(25):
        pool.tick(30 if i == 5 else 8)  # 75% once, then 20%
    changes = pool.changes()
    assert len(changes) == 1
    assert changes[0].at == 30 + 6 + 10  # a full window after the busy reading
    assert changes[0].after == math.ceil(8 / (CAP * 0.7))


def test_silent_replicas_count_full_for_scale_down() -> None:
    pool = Pool(quick(), replicas=10)
    pool.run(20, 30)
    for _ in range(30):
        pool.tick(4, silent=6)  # 4 turns on 4 reporting replicas; 6 silent
    # Down-need counts the silent 6 full: (4 + 24) turns at 70% of 4 -> 10: no shrink.
    assert pool.replicas == 10


def test_the_default_scale_down_is_window_plus_stabilization_in_halves() -> None:
    pool = Pool(scaling(), replicas=8)  # defaults: 60 s window, 120 s stabilization, 50%/10 s
    pool.run(16, 200)
    # The load falls at 201: low for a whole window at 260, low recommendations for a
    # whole stabilization window at 379.
    pool.run(2, 178)
    assert pool.replicas == 8
    pool.run(2, 1)
    assert pool.now == 379
    assert pool.replicas == 4  # 50% per 10 s
    pool.run(2, 9)
    assert pool.replicas == 4
    pool.run(2, 1)
    assert pool.replicas == 2
    pool.run(2, 10)
    assert pool.replicas == 1


# ----------------------------------------------------------------------------- behavior


def test_default_scale_up_limit_is_the_larger_of_double_and_four_pods_per_second() -> None:
    pool = Pool(scaling(max_replicas=100), replicas=2)
    pool.run(4, 3)
    d = pool.tick(200)  # every slot busy, work queued: at once
    assert d.replicas == 6  # max(2 x 2, 2 + 4)
    assert d.reason.endswith("2 -> 6 (step limit; asks 72)")
    assert d.up_blocked_until == pool.now + 1
    pool.tick(200)
    assert pool.replicas == 12  # then doubling wins
    pool.tick(200)
    assert pool.replicas == 24


def test_select_policy_min_takes_the_smaller_step() -> None:
    up = api.ScalingRules(select_policy="Min", policies=[percent(100, 1), pods(4, 1)])
    pool = Pool(scaling(max_replicas=100, up=up), replicas=10)
    pool.run(20, 3)
    assert pool.tick(400).replicas == 14  # min(20, 14)


def test_a_pods_limit_counts_the_period_not_the_tick() -> None:
    up = api.ScalingRules(policies=[pods(2, 10)])
    pool = Pool(scaling(max_replicas=100, up=up), replicas=1)
    pool.run(2, 3)
    sizes = [pool.tick(100).replicas for _ in range(25)]
    assert sizes[0] == 3
    assert sizes[1:10] == [3] * 9
    assert sizes[10] == 5  # 10 s after the first step
    d = pool.decisions[-1]
    assert d.up_blocked_until is not None
    assert d.up_blocked_until > pool.now


def test_disabled_direction_never_moves() -> None:
    spec = quick(up=api.ScalingRules(select_policy="Disabled"))
    pool = Pool(spec, replicas=2)
    pool.run(100, 20)
    assert pool.replicas == 2
    assert "scale-up disabled" in pool.decisions[-1].reason


def test_up_stabilization_takes_the_least_recommendation_of_its_window() -> None:
    up = api.ScalingRules(stabilization_window_seconds=5, policies=[pods(100, 1)])
    pool = Pool(quick(up=up), replicas=2)
    pool.run(4, 10)
    sizes = [pool.tick(20).replicas for _ in range(8)]
    # Every slot busy and work queued: the load asks for 8 at once (t=11), but the
    # window still holds recommendations of 2 until t=10 + 5.
    assert sizes == [2, 2, 2, 2, 8, 8, 8, 8]
    assert pool.decisions[-8].up_blocked_until == 15.0
    assert "stabilization window" in pool.decisions[-8].reason


def test_down_stabilization_reports_its_deadline() -> None:
    down = api.ScalingRules(stabilization_window_seconds=30, policies=[pods(100, 1)])
    pool = Pool(quick(down=down, scale_down_window_seconds=5), replicas=6)
    pool.run(12, 60)
    pool.run(2, 10)
    d = pool.decisions[-1]
    assert d.replicas == 6
    assert "stabilization window" in d.reason
    last_hold = 60 + 4  # the last tick that recommended 6 (the 5 s window was low at 65)
    assert d.down_blocked_until == last_hold + 30
    pool.run(2, int(last_hold + 30 - pool.now) - 1)
    assert pool.replicas == 6
    pool.tick(2)
    assert pool.replicas == 1


# ----------------------------------------------------------------------------- range


def test_the_range_clamps_and_says_limited() -> None:
    pool = Pool(quick(max_replicas=5), replicas=4)
    pool.run(8, 3)
    d = pool.run(100, 2)
    assert d.replicas == 5
    assert d.limited
    assert "maxReplicas 5" in d.reason
    pool.run(14, 30)  # 70% of 5: inside
    assert not pool.decisions[-1].limited


def test_a_size_outside_a_changed_range_is_corrected_at_once() -> None:
    history = History(started_at=0.0)
    spec = quick(min_replicas=3, max_replicas=6)
    obs = Observation((sample(1, 1.0),) * 9, 0)
    assert decide(spec, CAP, Current(9, 9), obs, history, 1.0).replicas == 6
    assert decide(spec, CAP, Current(1, 1), obs, history, 1.0).replicas == 3


def test_an_idle_pool_at_its_minimum_is_not_limited() -> None:
    pool = Pool(quick(min_replicas=1), replicas=1)
    d = pool.run(0, 60)
    assert d.replicas == 1
    assert not d.limited
    pool = Pool(quick(min_replicas=3), replicas=3)
    d = pool.run(0, 60)
    assert d.replicas == 3
    assert d.limited


# ----------------------------------------------------------------------------- zero


def test_scale_to_zero_after_the_cooldown_and_back_at_once() -> None:
    spec = quick(min_replicas=0, cooldown_period_seconds=100)
    pool = Pool(spec, replicas=3)
    pool.run(6, 20)
    pool.run(0, 99)
    assert pool.replicas == 1  # shrunk on load, kept at one until the cooldown
    d = pool.tick(0)
    assert d.replicas == 0
    assert d.reason == "no demand for 100 s: 1 -> 0"
    pool.run(0, 100)
    assert pool.replicas == 0
    d = pool.tick(1)  # a task queued: wakes at once
    assert d.replicas == 1
    assert d.reason.startswith("demand 1 (1 queued) and no replica ready")
    pool.replicas = 0
    assert Pool(spec, replicas=0).tick(10).replicas == 4  # ceil(10 / 2.8), within 4 pods


def test_the_cooldown_ignores_scale_down_stabilization() -> None:
    spec = quick(
        min_replicas=0,
        cooldown_period_seconds=30,
        down=api.ScalingRules(stabilization_window_seconds=600, policies=[pods(100, 1)]),
    )
    pool = Pool(spec, replicas=1)
    pool.run(1, 700)
    pool.run(0, 29)
    assert pool.replicas == 1
    pool.tick(0)
    assert pool.replicas == 0


def test_a_silent_replica_keeps_the_pool_from_zero() -> None:
    pool = Pool(quick(min_replicas=0, cooldown_period_seconds=10), replicas=1)
    pool.run(0, 5)
    for _ in range(100):
        pool.tick(0, silent=1)
    assert pool.replicas == 1


# ----------------------------------------------------------------------------- restart


def test_a_new_operator_does_not_scale_down_before_a_full_window() -> None:
    spec = quick(scale_down_window_seconds=30)
    pool = Pool(spec, replicas=10)
    d = pool.tick(0)  # the first reading, at t=1
    assert d.down_blocked_until == 31.0
    assert "no scale-down for 30 s" in d.reason
    pool.run(0, 29)
    assert pool.replicas == 10
    pool.tick(0)
    assert pool.now == 31
    assert pool.replicas == 1
    # Scale-up is not held: a new operator reacts on its second reading.
    fresh = Pool(spec, replicas=2)
    fresh.tick(20)
    assert fresh.tick(20).replicas == 8


def test_a_restart_delays_a_scale_down_by_the_guard_not_by_guard_and_window() -> None:
    # Defaults: 60 s window, 120 s stabilization: the guard is 120 s from the first
    # reading; the recommendations made meanwhile fill the stabilization window.
    pool = Pool(scaling(), replicas=8)
    pool.run(2, 119)
    assert pool.replicas == 8
    assert pool.decisions[-1].down_blocked_until == 121.0
    pool.tick(2)
    assert pool.now == 120
    assert pool.replicas == 8
    pool.tick(2)
    assert pool.replicas == 4


def test_the_guard_covers_the_scale_down_stabilization_too() -> None:
    down = api.ScalingRules(stabilization_window_seconds=90, policies=[pods(100, 1)])
    pool = Pool(quick(down=down, scale_down_window_seconds=30), replicas=10)
    assert pool.tick(0).down_blocked_until == 91.0


# ----------------------------------------------------------------------------- unknown load


def test_unknown_load_holds_and_says_so() -> None:
    pool = Pool(quick(), replicas=4)
    pool.run(8, 5)
    for n in range(1, 6):
        d = pool.tick(None)
        assert d.replicas == 4
        assert not d.load_known
        assert d.demand is None
        assert not d.fallback
        assert d.history.failures == n
    assert d.reason == "load unknown (Redis unreachable) for 5 ticks: holding 4"
    assert pool.tick(8).history.failures == 0


def test_fallback_applies_from_the_threshold_through_the_step_limits() -> None:
    spec = quick(
        fallback=api.ScalingFallback(failure_threshold=3, replicas=2),
        down=api.ScalingRules(stabilization_window_seconds=0, policies=[pods(1, 1)]),
    )
    pool = Pool(spec, replicas=5)
    pool.run(8, 5)
    assert [pool.tick(None).replicas for _ in range(6)] == [5, 5, 4, 3, 2, 2]
    d = pool.decisions[-1]
    assert d.fallback
    assert not d.load_known
    d = pool.decisions[-4]
    assert (
        d.reason
        == "fallback: load unknown (Redis unreachable) for 3 ticks: 5 -> 4 (step limit; asks 2)"
    )
    # Load back: the guard starts again, so no scale-down for a full window; up at once.
    back = pool.tick(0)
    assert back.load_known
    assert not back.fallback
    assert back.down_blocked_until == pool.now + 10
    pool.tick(40)
    assert pool.tick(40).replicas > 2


def test_a_short_blip_does_not_restart_the_guard() -> None:
    pool = Pool(quick(scale_down_window_seconds=10), replicas=10)
    pool.run(20, 30)
    pool.tick(None)
    d = pool.tick(20)
    assert d.down_blocked_until is None


# ----------------------------------------------------------------------------- events


def test_an_event_only_when_the_size_changes() -> None:
    pool = Pool(quick(), replicas=3)
    pool.run(6, 20)
    assert pool.history.events == ()
    d = pool.tick(20)
    assert d.history.events == (ScaleEvent(21.0, 3, 8),)
    # Kept for the step limits' periods only (1 s here).
    assert pool.tick(20).history.events == ()


def test_history_is_bounded_by_the_longest_window() -> None:
    pool = Pool(scaling(), replicas=3)
    pool.run(6, 1000)
    assert len(pool.history.points) == 120  # the default scale-down stabilization


# ============================================================================= invariants

# Built through lambdas: st.builds would also fill the models' camelCase aliases.
policy_strategy = st.builds(
    lambda kind, value, period: api.ScalingPolicy(type=kind, value=value, period_seconds=period),
    st.sampled_from(["Pods", "Percent"]),
    st.integers(1, 200),
    st.integers(1, 30),
)
rules_strategy = st.builds(
    lambda window, select, policies: api.ScalingRules(
        stabilization_window_seconds=window, select_policy=select, policies=policies
    ),
    st.one_of(st.none(), st.integers(0, 40), st.integers(0, 10)),
    st.sampled_from(["Max", "Min", "Max", "Min", "Disabled"]),
    st.lists(policy_strategy, max_size=3),
)


single_rules = st.builds(
    lambda window, select, policy: api.ScalingRules(
        stabilization_window_seconds=window, select_policy=select, policies=[policy]
    ),
    st.one_of(st.none(), st.integers(0, 40)),
    st.sampled_from(["Max", "Min"]),
    policy_strategy,
)


@st.composite
def specs(
    draw: st.DrawFn,
    *,
    min_replicas: st.SearchStrategy[int] | None = None,
    rules: st.SearchStrategy[api.ScalingRules | None] | None = None,
) -> api.ScalingSpec:
    low = draw(min_replicas if min_replicas is not None else st.integers(0, 4))
    high = draw(st.integers(max(1, low), 30))
    target = draw(st.integers(10, 100))
    rules = rules if rules is not None else st.one_of(st.none(), rules_strategy, rules_strategy)
    return scaling(
        min_replicas=low,
        max_replicas=high,
        target_load_percent=target,
        scale_down_load_percent=draw(st.integers(0, target - 1)),
        scale_up_window_seconds=draw(st.integers(1, 5)),
        scale_down_window_seconds=draw(st.integers(1, 40)),
        cooldown_period_seconds=draw(st.integers(0, 60)),
        up=draw(rules),
        down=draw(rules),
        fallback=draw(
            st.one_of(
                st.none(),
                st.builds(
                    lambda threshold, replicas: api.ScalingFallback(
                        failure_threshold=threshold, replicas=replicas
                    ),
                    st.integers(1, 5),
                    st.one_of(st.none(), st.integers(0, 40)),
                ),
            )
        ),
    )


Tick = tuple[int | None, float, int]
"""(work or None for Redis unreachable, seconds since the last tick, silent replicas)"""

# Load comes in plateaus (steps, dips, outages), each a few ticks to a minute long, with
# jitter in the tick rate: plateaus are what let every window fill and every rule fire.
phases = st.lists(
    st.tuples(
        st.one_of(st.integers(0, 150), st.integers(0, 20), st.integers(0, 150), st.none()),
        st.integers(1, 60),
        st.sampled_from([0.5, 1.0, 1.0, 1.0, 1.5, 3.0]),
        st.sampled_from([0, 0, 0, 1, 2]),
    ),
    max_size=12,
)
ticks = phases.map(
    lambda ps: [(work, dt, silent) for work, n, dt, silent in ps for _ in range(n)][:400]
)

# A busy plateau, then a long noisy quiet one: what makes a pool shrink.
falls = st.builds(
    lambda high, n, lows: [(high, 1.0, 0)] * n + [(w, 1.0, 0) for w in lows],
    st.integers(0, 150),
    st.integers(0, 60),
    st.lists(st.integers(0, 6), min_size=200, max_size=300),
)


def simulate(spec: api.ScalingSpec, start: int, trace: list[Tick]) -> Pool:
    pool = Pool(spec, replicas=start)
    for work, dt, silent in trace:
        pool.tick(work, dt=dt, silent=silent)
    return pool


def start_in(spec: api.ScalingSpec) -> st.SearchStrategy[int]:
    return st.integers(spec.min_replicas, spec.max_replicas)


@given(st.data(), specs(), ticks)
def test_always_within_the_range(data: st.DataObject, spec: api.ScalingSpec, trace: Any) -> None:
    pool = simulate(spec, data.draw(start_in(spec)), trace)
    assert all(spec.min_replicas <= size <= spec.max_replicas for _, size in pool.sizes)


def _size_at(pool: Pool, start: int, at: float) -> int:
    """Replicas after every tick up to and including `at`."""
    size = start
    for t, s in pool.sizes:
        if t > at:
            break
        size = s
    return size


@given(st.data(), specs(rules=single_rules), ticks)
def test_step_limits_hold_over_any_sequence(
    data: st.DataObject, spec: api.ScalingSpec, trace: Any
) -> None:
    # One policy per direction: the limit is that policy's (several: see the examples).
    behavior = spec.operator_settings.behavior
    up, down = behavior.scale_up, behavior.scale_down
    assert up is not None
    assert down is not None
    start = data.draw(start_in(spec))
    pool = simulate(spec, start, trace)
    # As the HPA counts: a change may take the pool at most one step from its size at the
    # start of the period (changes within the period in the other direction give back).
    for change in pool.changes():
        sign = 1 if change.after > change.before else -1
        policy = (up if sign > 0 else down).policies[0]
        before = _size_at(pool, start, change.at - policy.period_seconds)
        if policy.type == "Pods":
            bound = before + sign * policy.value
        elif sign > 0:
            bound = math.ceil(before * (1 + policy.value / 100))
        else:
            bound = math.floor(before * (1 - policy.value / 100))
        if sign > 0:
            assert change.after <= max(bound, 1), (change, before)  # from zero: one at least
        else:
            assert change.after >= bound, (change, before)


@given(st.data(), specs(), ticks)
def test_a_disabled_direction_never_moves(
    data: st.DataObject, spec: api.ScalingSpec, trace: Any
) -> None:
    pool = simulate(spec, data.draw(start_in(spec)), trace)
    behavior = spec.operator_settings.behavior
    for change in pool.changes():
        if behavior.scale_up is not None and behavior.scale_up.select_policy == "Disabled":
            assert change.after < change.before
        if behavior.scale_down is not None and behavior.scale_down.select_policy == "Disabled":
            assert change.after > change.before


@given(st.data(), specs(), ticks)
def test_nothing_moves_in_a_direction_before_its_reported_deadline(
    data: st.DataObject, spec: api.ScalingSpec, trace: Any
) -> None:
    pool = simulate(spec, data.draw(start_in(spec)), trace)
    # The declared fallback size goes through the step limits only (see the module).
    changes = [
        (c, d) for c, d in zip(pool.changes_by_tick(), pool.decisions, strict=True) if c is not None
    ]
    for (t, _), d in zip(pool.sizes, pool.decisions, strict=True):
        for change, by in changes:
            if change.at <= t or by.fallback:
                continue
            between = [c for c, _ in changes if t < c.at < change.at]
            up_until, down_until = d.up_blocked_until, d.down_blocked_until
            if change.after > change.before and up_until is not None and change.at < up_until:
                assert any(c.after < c.before for c in between), (d.reason, by.reason)
            if change.after < change.before and down_until is not None and change.at < down_until:
                assert any(c.after > c.before for c in between), (d.reason, by.reason)


@given(st.data(), specs(), st.one_of(ticks, falls))
def test_no_scale_down_before_a_full_window_since_start(
    data: st.DataObject, spec: api.ScalingSpec, trace: Any
) -> None:
    pool = simulate(spec, data.draw(start_in(spec)), trace)
    op = spec.operator_settings
    stabilization = (op.behavior.scale_down or api.ScalingRules()).stabilization_window_seconds
    guard = max(op.scale_down_window_seconds, stabilization or 0, 0)
    for change, d in zip(pool.changes_by_tick(), pool.decisions, strict=True):
        if change is not None and change.after < change.before and not d.fallback:
            assert change.at >= guard


@given(st.data(), specs(), st.one_of(ticks, falls))
def test_a_scale_down_cannot_bounce_back_on_the_load_it_read(
    data: st.DataObject, spec: api.ScalingSpec, trace: Any
) -> None:
    """After shrinking to n, the peak demand of the window it read, at n replicas that all
    report, asks for no scale-up (the size is the target size of that peak)."""
    pool = simulate(spec, data.draw(start_in(spec)), trace)
    window = spec.operator_settings.scale_down_window_seconds
    for change, d in zip(pool.changes_by_tick(), pool.decisions, strict=True):
        if change is None or change.after >= change.before or d.fallback or change.after == 0:
            continue
        read = [p for p in d.history.points if p.at > change.at - window]
        peak = max(p.full_demand for p in read)
        after = Pool(spec, replicas=change.after, now=change.at)
        after.history = d.history
        for _ in range(3):
            assert after.tick(peak).replicas <= change.after, d.reason


band_specs = specs(min_replicas=st.integers(1, 3))


@given(band_specs, st.integers(1, 120), st.lists(st.floats(0, 1), min_size=300, max_size=300))
@settings(max_examples=30)
def test_noise_inside_the_band_moves_nothing_after_convergence(
    spec: api.ScalingSpec, work: int, noise: list[float]
) -> None:
    op = spec.operator_settings
    pool = Pool(spec, replicas=spec.min_replicas)
    pool.settle(work)
    n = pool.replicas
    low = math.ceil(op.scale_down_load_percent * n * CAP / 100)
    high = op.target_load_percent * n * CAP // 100
    assume(low <= high)
    before = len(pool.changes())
    for x in noise:
        pool.tick(low + round(x * (high - low)))
    assert len(pool.changes()) == before, pool.decisions[-1].reason


@given(band_specs, st.integers(1, 120), st.integers(0, 60), st.data())
@settings(max_examples=30)
def test_noisy_constant_load_only_climbs_to_its_peak_and_stays(
    spec: api.ScalingSpec, mean: int, noise_percent: int, data: st.DataObject
) -> None:
    """Noise of +-noise_percent around a mean, in any order, where the band at the size
    the noise's peak asks for still holds its trough. After the pool settled on the mean:
    never a scale-down; scale-ups only, never past the peak's size (one change when the
    peak asks for one more replica than the mean: "at most one change after
    convergence"); and once the pool has seen the peak, nothing at all."""
    op = spec.operator_settings
    low, high = mean - mean * noise_percent // 100, mean + mean * noise_percent // 100
    peak_size = min(
        max(math.ceil(high * 100 / (CAP * op.target_load_percent)), 1), spec.max_replicas
    )
    assume(low * 100 >= op.scale_down_load_percent * peak_size * CAP)
    pool = Pool(spec, replicas=spec.min_replicas)
    pool.settle(mean)
    settled, before = pool.replicas, len(pool.changes())
    noise = data.draw(st.lists(st.integers(low, high), min_size=150, max_size=150))
    for work in noise:
        pool.tick(work)
    climbed = pool.changes()[before:]
    assert all(c.after > c.before for c in climbed)
    assert pool.replicas <= max(peak_size, settled)
    assert len(climbed) <= max(0, peak_size - settled)
    pool.settle(high)  # the peak, long enough for the step limits too
    before = len(pool.changes())
    for work in data.draw(st.lists(st.integers(low, high), min_size=150, max_size=150)):
        pool.tick(work)
    assert len(pool.changes()) == before, pool.decisions[-1].reason


@given(
    specs(min_replicas=st.integers(1, 3), rules=st.none()),
    st.integers(0, 60),
    st.integers(1, 400),
    st.sampled_from([0.5, 1.0, 1.5, 3.0, 10.0]),
)
@settings(max_examples=30)
def test_a_step_up_moves_the_pool_by_its_second_reading(
    spec: api.ScalingSpec, work: int, step: int, dt: float
) -> None:
    """With the default scale-up behavior (no stabilization window), a load that asks for
    more replicas moves the pool once its readings fill scaleUpWindowSeconds, and never
    later than its second reading when ticks are slower than that; on its first when it
    fills every slot and queues work."""
    pool = Pool(spec, replicas=spec.min_replicas)
    pool.settle(work)
    n = pool.replicas
    higher = work + step
    need = math.ceil(higher * 100 / (CAP * spec.operator_settings.target_load_percent))
    assume(need > n and n < spec.max_replicas)
    first = pool.tick(higher, dt=dt)
    if higher > n * CAP:
        assert first.replicas > n, first.reason
    readings = max(2, math.ceil(spec.operator_settings.scale_up_window_seconds / dt))
    for _ in range(readings - 1):
        pool.tick(higher, dt=dt)
    assert pool.replicas > n, pool.decisions[-1].reason


@given(band_specs, st.integers(0, 60), st.integers(0, 1000), st.integers(0, 5))
@settings(max_examples=30)
def test_a_one_reading_spike_never_moves_the_pool(
    spec: api.ScalingSpec, work: int, spike: int, silent: int
) -> None:
    """A spike that fills no more than the slots (no queue: no panic) and lasts one
    reading moves nothing, from any settled pool."""
    pool = Pool(spec, replicas=spec.min_replicas)
    pool.settle(work)
    before = len(pool.changes())
    pool.tick(min(spike, pool.replicas * CAP), silent=min(silent, pool.replicas))
    pool.tick(work)
    assert len(pool.changes()) == before, pool.decisions[-2].reason


@given(st.data(), specs(), st.integers(0, 150), st.integers(1, 30))
def test_unknown_load_holds_or_goes_toward_the_fallback(
    data: st.DataObject, spec: api.ScalingSpec, work: int, outage: int
) -> None:
    start = data.draw(start_in(spec))
    pool = Pool(spec, replicas=start)
    pool.run(work, 50)
    held = pool.replicas
    fallback = spec.operator_settings.fallback or api.ScalingFallback()
    for n in range(1, outage + 1):
        d = pool.tick(None)
        assert not d.load_known
        assert d.history.failures == n
        if fallback.replicas is None or n < fallback.failure_threshold:
            assert d.replicas == held
            assert not d.fallback
        else:
            goal = min(max(fallback.replicas, spec.min_replicas), spec.max_replicas)
            assert d.fallback
            assert min(held, goal) <= d.replicas <= max(held, goal)  # on its way, never past
            held = d.replicas
    assert pool.tick(work).history.failures == 0


@given(specs(min_replicas=st.just(0)), st.integers(1, 60), st.integers(1, 100))
@settings(max_examples=30)
def test_zero_after_the_cooldown_and_back_at_once(
    spec: api.ScalingSpec, busy: int, work: int
) -> None:
    op = spec.operator_settings
    pool = Pool(spec, replicas=1)
    pool.run(work, busy)
    last_demand = pool.now
    pool.run(0, 500)
    behavior = op.behavior.scale_down
    if behavior is None or behavior.select_policy != "Disabled":
        assert pool.replicas == 0
    for change in pool.changes():
        if change.after == 0:
            assert change.at - last_demand >= op.cooldown_period_seconds
    if pool.replicas == 0:
        up = op.behavior.scale_up
        woken = pool.tick(work)
        if up is None or up.select_policy != "Disabled":
            assert woken.replicas >= 1


# Refusals: callers a full replica turned away (each sample's refusedTurns).
refusal_ticks = ticks.flatmap(
    lambda trace: st.tuples(
        st.just(trace),
        st.lists(st.integers(0, 40), min_size=len(trace), max_size=len(trace)),
    )
)


@given(st.data(), specs(), refusal_ticks)
def test_refused_demand_never_causes_a_scale_down(
    data: st.DataObject, spec: api.ScalingSpec, traced: Any
) -> None:
    """From any history, a tick's decision with refusals is never below the same tick's
    decision without them: refusals can hasten a scale-up or hold a scale-down, never
    cause (or deepen) one."""
    trace, refusals = traced
    pool = Pool(spec, replicas=data.draw(start_in(spec)))
    for (work, dt, silent), refused in zip(trace, refusals, strict=True):
        at, ready = pool.now + dt, pool.replicas
        saved = pool.now
        pool.now = at
        without = decide(
            spec,
            CAP,
            Current(ready, ready),
            pool.observation(work, ready, silent, 0),
            pool.history,
            at,
        )
        pool.now = saved
        found = pool.tick(work, dt=dt, silent=silent, refused=refused)
        assert found.replicas >= without.replicas, (found.reason, without.reason)
        if found.replicas < ready:
            assert without.replicas <= found.replicas


@given(
    st.integers(1, 6),
    st.integers(10, 100),
    st.integers(1, 200),
    st.integers(1, 30),
)
@settings(max_examples=50)
def test_with_refusals_a_full_pool_grows_past_one_step_when_behavior_allows(
    ready: int, target: int, refused: int, max_extra: int
) -> None:
    """A full pool (every slot busy, nothing queued) that refused callers goes at once to
    the size of all its demand, where behavior and maxReplicas allow it; turns alone,
    capped by capacity, ask only for the size of its full capacity."""
    spec = quick(
        max_replicas=ready + max_extra, target_load_percent=target, scale_down_load_percent=0
    )
    d = Pool(spec, replicas=ready).tick(ready * CAP, refused=refused)
    wanted = math.ceil((ready * CAP + refused) * 100 / (CAP * target))
    one_step = math.ceil(ready * CAP * 100 / (CAP * target))
    assert d.replicas == min(wanted, spec.max_replicas), d.reason
    if wanted > one_step and spec.max_replicas > one_step:
        assert d.replicas > one_step
    capped = Pool(spec, replicas=ready)
    capped.tick(ready * CAP)
    assert capped.tick(ready * CAP).replicas == min(one_step, spec.max_replicas)


@given(specs(min_replicas=st.just(0)), st.integers(1, 50), st.integers(0, 30))
@settings(max_examples=50)
def test_a_waiting_caller_wakes_a_pool_at_zero(
    spec: api.ScalingSpec, waking: int, quiet: int
) -> None:
    """Callers waiting for a pool with no ready replica are demand: one wakes a pool at
    zero at once (unless scale-up is Disabled), whatever its history; none keeps it there."""
    history = History(started_at=0.0)
    now = float(quiet)
    idle = decide(spec, CAP, Current(0, 0), Observation((), 0), history, now)
    assert idle.replicas == 0
    woken = decide(spec, CAP, Current(0, 0), Observation((), 0, waking=waking), history, now)
    assert woken.demand == waking
    assert f"{waking} callers waiting" in woken.reason
    up = spec.operator_settings.behavior.scale_up
    if up is None or up.select_policy != "Disabled":
        assert woken.replicas >= 1, woken.reason
