"""The scaling policy of mode Operator: pure, so that hypothesis can check it.

`decide(spec, capacity, current, observation, history, now)` is the whole policy: time is
passed in, the history it needs next time is returned in the `Decision`, nothing is
mutated. The autoscaler loop (`autoscaler/loop.py`) owns everything that talks to Redis
or the API server.

One tick, in order:

1. **Signal.** Fresh samples (`now - at <= stale_after`) count; the non-draining ones
   are the reporting replicas, and `missing = ready - reporting` (never below 0) are
   ready replicas that went silent. Demand = active turns of every fresh sample (a
   draining replica's turns still run) + the callers refused for lack of a slot (each
   fresh sample's `refusedTurns`: turns wanted that active turns, capped by capacity,
   cannot show) + the pool's queue, read once by the loop (the samples' own
   `queuedTasks` are ignored: the queue is pool-wide) + callers waiting for a pool with
   no ready replica to wake (`Observation.waking`: work waiting, as the queue is).
   Refusals only ever add demand: they can hasten a scale-up and hold a
   scale-down, never cause one. Two needs, in replicas, at the target load: `up` counts
   silent replicas empty, `down` counts them full (the HPA rule: missing data never
   makes the pool grow, and never lets it shrink). A draining replica that is still
   ready is not reporting, so it counts full for scale-down too (and its turns in the
   demand): a pool being drained is not shrunk further on its account.
2. **Load policy** (the recommendation):
   - *panic*: every slot busy and work waiting (`demand >= ready x capacity` with queued
     tasks or refused callers), or demand with no replica ready, or a pool at zero with
     demand: the current `up` need applies at once (wakes a pool at zero; never a
     scale-down that tick);
   - *up*: the least `up` over `scaleUpWindowSeconds`, and always over at least the last
     two readings, whatever the tick rate: a one-reading spike never moves the pool, a
     step does on its second reading;
   - *down*: only when the peak demand of the whole `scaleDownWindowSeconds` (silent
     replicas full), measured against today's ready capacity, stayed below
     `scaleDownLoadPercent`; then to the largest `down` need of that window: the size at
     which the window's peak is at most the target, so the same load cannot ask for a
     scale-up again. A load-based need never goes below 1 (an idle pool at
     minReplicas 1 is not "limited"; at minReplicas 3 it is: the load asks for 1); 0
     comes only from the rule for zero below. Between `scaleDownLoadPercent` and
     `targetLoadPercent`, nothing. Every other tick recommends the current size.
   - *zero* (minReplicas 0): no demand and no silent replica over the whole scale-down
     window, and no demand at all for `cooldownPeriodSeconds` (since the operator
     started if it never saw any): the recommendation is 0, and the scale-down
     stabilization window does not add to the cooldown (KEDA's cooldown, without its
     double wait behind the HPA's window).
   - *restart and outage guard*: no scale-down (zero included) until a full
     `max(scaleDownWindowSeconds, scaleDown.stabilizationWindowSeconds)` of readings has
     been seen since the operator started, or since the load came back after an outage
     of `fallback.failureThreshold` failed reads. Scale-up is never held by it. It
     holds the scale-down, not the recommendations recorded meanwhile: when it ends,
     the stabilization window already holds a full window of them (a restart delays a
     scale-down by the guard, not by the guard and then the window).
3. **Behavior**, as the HPA applies it: the stabilization windows over the recorded
   recommendations (the least of the scale-up window, the largest of the scale-down
   window, the current size in between), then the step limits (Pods / Percent per
   `periodSeconds`, from the scale events within each period; `selectPolicy` Max takes
   the largest change allowed, Min the smallest, Disabled none). Consequence of step 2
   and 3 together: with the defaults, a pool shrinks about
   scaleDownWindowSeconds + stabilizationWindowSeconds (60 + 120 s) after its load fell.
   A pool at zero always may get at least one replica when woken (a percentage of 0 is
   0), and the scale-up stabilization window does not hold a wake-up (its
   recommendations were all "idle"); a Disabled scale-up does.
4. **Clamp** to minReplicas..maxReplicas, at once and through every limit (as the HPA
   does when replicas are outside the range). `limited` says the recommendation was
   outside the range (condition ScalingLimited).

Load unknown (`samples` None, Redis unreachable): the pool holds its size (clamped),
`load_known` is False, and no point is recorded; from `fallback.failureThreshold`
consecutive failed reads with `fallback.replicas` set, the pool goes to that size
through the step limits and a Disabled direction, but not the windows nor the restart
guard (they are about load, and there is none: the size is the one the user declared
for this case). One good read resets the count.

History: `points` are kept for the longest window (with the defaults the 120 s of the
scale-down stabilization: 120 points at one tick a second), `events` for the longest
step-limit period. The returned history assumes the new size gets written: a loop whose
write failed should keep the history it passed in (else a change that did not happen
uses up the step limits).

`up_blocked_until` / `down_blocked_until`: when the next change in that direction may
happen at the earliest, if that is later than now: the step limits' periods and the
restart guard always; a stabilization window when it is what holds back a change the
load asks for. None when nothing blocks by time (a Disabled direction is a setting, not
a deadline: None too). The rule for zero has its own clock, the cooldown, and is not held
by the scale-down stabilization window: while that window holds a pool with minReplicas
0, the deadline reported is the earlier of the window's end and the cooldown's.

The reason is one sentence, "<why>: <before> -> <after>" or "<why>: holding <n>", with
"(<what limited it>; asks <n>)" when behavior or the range changed the recommendation;
on holding ticks it carries the load of the tick, so it is for scale events and logs,
not for a condition message that should stay the same while nothing changes.

Speed: the loop calls this for every pool every second (goal: well under 50 us a pool;
`benchmarks/bench_autoscaler.py`), so the spec is resolved once per spec object (an
identity memo; API objects are frozen), the scale-down window is read only on ticks where
it can matter, and windows are read with C-level `bisect`/`max`/`min` over the points.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from operator import attrgetter
from typing import Literal

from agent_runtime.config.load import LoadSample
from agentpool_operator import api

Direction = Literal["Up", "Down"]


@dataclass(frozen=True)
class Current:
    """The pool as the API server reports it at this tick."""

    replicas: int
    """spec.replicas (what was last written)."""
    ready: int
    """Ready agent pods (status.readyReplicas)."""


@dataclass(frozen=True)
class Observation:
    """What one tick read of one pool's load."""

    samples: tuple[LoadSample, ...] | None
    """Every replica's last sample (stale ones included: `decide` applies the rule);
    None when the load could not be read (Redis unreachable)."""
    queued_tasks: int = 0
    """Tasks waiting in the pool's queue, read from the queue itself (0 with signal
    ActiveTurns): this is what wakes a pool that has no replica."""
    stale_after: float = 5.0
    """Seconds after which a sample belongs to a replica that stopped reporting."""
    waking: int = 0
    """Callers waiting for the pool to wake (pool-as-tool calls that found no ready
    replica), read while no replica is ready: like queued tasks, they wake a pool at
    zero."""


@dataclass(frozen=True, slots=True)
class Point:
    """One tick's reading, kept for the windows. Made by `decide` only."""

    at: float
    up: int
    """Replicas the load asks for, with silent replicas counted empty."""
    down: int
    """Replicas the load asks for, with silent replicas counted full."""
    full_demand: int = 0
    """Demand with silent replicas counted full (turns): the scale-down window's peak of
    it, against today's ready capacity, decides whether the load stayed low."""
    recommendation: int = 0
    """The load policy's recommendation at this tick (before behavior): what the
    stabilization windows read."""


@dataclass(frozen=True, slots=True)
class ScaleEvent:
    """A change the autoscaler wrote (for the step limits' periods)."""

    at: float
    before: int
    after: int


@dataclass(frozen=True)
class History:
    """What `decide` remembers between ticks; a new one for an operator that just started."""

    started_at: float
    """When this operator began watching the pool: no scale-down before a full
    scale-down window of samples has been seen since."""
    points: tuple[Point, ...] = ()
    events: tuple[ScaleEvent, ...] = ()
    failures: int = 0
    """Consecutive ticks whose load could not be read."""
    last_demand_at: float | None = None
    """The last tick that saw any demand (for the cooldown to zero)."""
    seen_since: float | None = None
    """Start of the current unbroken run of readings (None before the first one, and
    after an outage of failureThreshold failed reads): no scale-down before a full
    window of it."""


@dataclass(frozen=True)
class Decision:
    """What the pool should have now, and why."""

    replicas: int
    reason: str
    """One sentence for the status, the Event and the log."""
    history: History
    demand: int | None = None
    """Active turns plus refused callers plus queued tasks; None when unknown."""
    load_percent: int | None = None
    """Demand over ready capacity, in percent; None when unknown or nothing is ready."""
    limited: bool = False
    """The load asks for a size outside minReplicas..maxReplicas (condition ScalingLimited)."""
    load_known: bool = True
    """False while the load cannot be read (condition ScalingActive False)."""
    fallback: bool = False
    """The declared fallback size applies (condition Fallback)."""
    up_blocked_until: float | None = None
    down_blocked_until: float | None = None


# ----------------------------------------------------------------------------- settings


@dataclass(frozen=True, slots=True)
class _Policy:
    pods: bool
    """Pods (True) or Percent (False)."""
    value: int
    period: int


@dataclass(frozen=True, slots=True)
class _Rules:
    window: int
    select: Literal["Max", "Min", "Disabled"]
    policies: tuple[_Policy, ...]
    longest_period: int


@dataclass(frozen=True, slots=True)
class _Settings:
    """A ScalingSpec with every default resolved, in plain ints."""

    min_replicas: int
    max_replicas: int
    target: int
    scale_down_load: int
    up_window: int
    down_window: int
    cooldown: int
    up: _Rules
    down: _Rules
    guard: int
    """Seconds of readings needed before any scale-down."""
    keep_points: int
    keep_events: int
    failure_threshold: int
    fallback_replicas: int | None


# The defaults the API documents (ScalingRules' docstrings).
_UP_DEFAULT = api.ScalingRules(
    stabilization_window_seconds=0,
    policies=[
        api.ScalingPolicy(type="Percent", value=100, period_seconds=1),
        api.ScalingPolicy(type="Pods", value=4, period_seconds=1),
    ],
)
_DOWN_DEFAULT = api.ScalingRules(
    stabilization_window_seconds=120,
    policies=[api.ScalingPolicy(type="Percent", value=50, period_seconds=10)],
)


def _rules(declared: api.ScalingRules | None, default: api.ScalingRules) -> _Rules:
    window = declared.stabilization_window_seconds if declared is not None else None
    if window is None:
        window = default.stabilization_window_seconds or 0
    chosen = declared.policies if declared is not None and declared.policies else default.policies
    policies = tuple(_Policy(p.type == "Pods", p.value, p.period_seconds) for p in chosen)
    return _Rules(
        window=window,
        select=declared.select_policy if declared is not None else "Max",
        policies=policies,
        longest_period=max(p.period for p in policies),
    )


_UP_RULES = _rules(None, _UP_DEFAULT)
_DOWN_RULES = _rules(None, _DOWN_DEFAULT)
_OPERATOR_DEFAULT = api.OperatorScaling()
_FALLBACK_DEFAULT = api.ScalingFallback()


def _resolve(spec: api.ScalingSpec) -> _Settings:
    """The spec's Operator-mode settings with every default resolved (a few us: no
    pydantic object is built here, since the loop re-parses a pool whenever it changes)."""
    op = spec.operator if spec.operator is not None else _OPERATOR_DEFAULT
    behavior = op.behavior
    up = _UP_RULES if behavior.scale_up is None else _rules(behavior.scale_up, _UP_DEFAULT)
    down = (
        _DOWN_RULES if behavior.scale_down is None else _rules(behavior.scale_down, _DOWN_DEFAULT)
    )
    fallback = op.fallback if op.fallback is not None else _FALLBACK_DEFAULT
    guard = max(op.scale_down_window_seconds, down.window)
    return _Settings(
        min_replicas=spec.min_replicas,
        max_replicas=spec.max_replicas,
        target=op.target_load_percent,
        scale_down_load=op.scale_down_load_percent,
        up_window=op.scale_up_window_seconds,
        down_window=op.scale_down_window_seconds,
        cooldown=op.cooldown_period_seconds,
        up=up,
        down=down,
        guard=guard,
        keep_points=max(op.scale_up_window_seconds, guard, up.window),
        keep_events=max(up.longest_period, down.longest_period),
        failure_threshold=fallback.failure_threshold,
        fallback_replicas=fallback.replicas,
    )


# Identity memo: an API object is frozen, and the loop passes the same spec object every
# tick until the pool changes. The entry holds the spec, so its id cannot be reused.
_MEMO: dict[int, tuple[api.ScalingSpec, _Settings]] = {}
_MEMO_LIMIT = 4096


def _settings_of(spec: api.ScalingSpec) -> _Settings:
    entry = _MEMO.get(id(spec))
    if entry is not None and entry[0] is spec:
        return entry[1]
    if len(_MEMO) >= _MEMO_LIMIT:
        _MEMO.clear()
    resolved = _resolve(spec)
    _MEMO[id(spec)] = (spec, resolved)
    return resolved


# ----------------------------------------------------------------------------- step limits

_at = attrgetter("at")
_up = attrgetter("up")
_full = attrgetter("full_demand")
_rec = attrgetter("recommendation")


def _net_change(events: tuple[ScaleEvent, ...], period: int, now: float) -> int:
    """Replicas added minus removed by the events within the last `period` seconds."""
    cutoff = now - period
    net = 0
    for event in reversed(events):
        if event.at <= cutoff:
            break
        net += event.after - event.before
    return net


def _up_limit(rules: _Rules, current: int, events: tuple[ScaleEvent, ...], now: float) -> int:
    """The most replicas the scale-up policies allow now (HPA's rule; at least current,
    and at least 1 from zero)."""
    result: int | None = None
    for policy in rules.policies:
        start = current - _net_change(events, policy.period, now)
        # Percent: HPA rounds start x (1 + value/100) up, so that 1 replica can grow.
        proposed = (
            start + policy.value if policy.pods else start + _ceil_div(start * policy.value, 100)
        )
        if result is None:
            result = proposed
        elif rules.select == "Min":
            result = min(result, proposed)
        else:
            result = max(result, proposed)
    assert result is not None  # at least one policy, always
    return max(result, current, 1)


def _down_limit(rules: _Rules, current: int, events: tuple[ScaleEvent, ...], now: float) -> int:
    """The fewest replicas the scale-down policies allow now (HPA's rule; at most current)."""
    result: int | None = None
    for policy in rules.policies:
        start = current - _net_change(events, policy.period, now)
        # Percent: HPA truncates start x (1 - value/100); floor is the same for start >= 0.
        proposed = start - policy.value if policy.pods else start * (100 - policy.value) // 100
        if result is None:
            result = proposed
        elif rules.select == "Min":
            result = max(result, proposed)
        else:
            result = min(result, proposed)
    assert result is not None
    return max(0, min(result, current))


def _unblocked_at(
    rules: _Rules, current: int, events: tuple[ScaleEvent, ...], now: float, up: bool
) -> float | None:
    """The first moment the step limits allow a change in this direction again (they
    only loosen as events leave their periods), or None when they allow one now."""
    if not events:  # nothing recent: every policy allows its full step
        return None
    limit = _up_limit if up else _down_limit
    if limit(rules, current, events, now) != current:
        return None
    moments = sorted(
        {
            event.at + p.period
            for p in rules.policies
            for event in events
            if event.at + p.period > now
        }
    )
    for moment in moments:
        if limit(rules, current, events, moment) != current:
            return moment
    return None


# ----------------------------------------------------------------------------- decide


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _prune_points(points: tuple[Point, ...], keep: int, now: float) -> tuple[Point, ...]:
    cutoff = now - keep
    if points and points[0].at <= cutoff:
        # The last reading stays, however old: the scale-up window reads two at least.
        return points[min(bisect_right(points, cutoff, key=_at), len(points) - 1) :]
    return points


def _prune_events(events: tuple[ScaleEvent, ...], keep: int, now: float) -> tuple[ScaleEvent, ...]:
    cutoff = now - keep
    if events and events[0].at <= cutoff:
        return tuple(e for e in events if e.at > cutoff)
    return events


def _clamp(value: int, s: _Settings) -> int:
    return s.min_replicas if value < s.min_replicas else min(value, s.max_replicas)


def _later(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _behave(
    s: _Settings,
    wanted: int,
    current: int,
    events: tuple[ScaleEvent, ...],
    now: float,
) -> tuple[int, str | None]:
    """`wanted` through the step limits and Disabled: (replicas, what limited it)."""
    if wanted > current:
        if s.up.select == "Disabled":
            return current, "scale-up disabled"
        limit = _up_limit(s.up, current, events, now)
        if wanted > limit:
            return limit, "step limit"
    elif wanted < current:
        if s.down.select == "Disabled":
            return current, "scale-down disabled"
        limit = _down_limit(s.down, current, events, now)
        if wanted < limit:
            return limit, "step limit"
    return wanted, None


def _finish(
    s: _Settings,
    *,
    current: int,
    wanted: int,
    limiter: str | None,
    why: str,
    history: History,
    points: tuple[Point, ...],
    events: tuple[ScaleEvent, ...],
    now: float,
    failures: int,
    last_demand_at: float | None,
    seen_since: float | None,
    demand: int | None,
    load_percent: int | None,
    asked: int,
    fallback: bool = False,
    up_stabilized_until: float | None = None,
    down_stabilized_until: float | None = None,
) -> Decision:
    replicas = _clamp(wanted, s)
    if replicas != wanted:
        bound = "minReplicas" if replicas > wanted else "maxReplicas"
        limiter = f"{bound} {replicas}"
    if replicas != current:
        events = (*events, ScaleEvent(now, current, replicas))
        reason = f"{why}: {current} -> {replicas}"
        if replicas != asked:
            reason += f" ({limiter}; asks {asked})" if limiter else f" (asks {asked})"
    else:
        reason = f"{why}: holding {current}"
        if limiter and asked != current:
            reason += f" ({limiter}; asks {asked})"
    up_until = down_until = None
    if s.up.select != "Disabled":
        up_until = _later(_unblocked_at(s.up, replicas, events, now, True), up_stabilized_until)
    if s.down.select != "Disabled":
        guard_from = (
            history.started_at if seen_since is None else max(history.started_at, seen_since)
        )
        guard_until: float | None = guard_from + s.guard if seen_since is not None else None
        if guard_until is not None and guard_until <= now:
            guard_until = None
        down_until = _later(
            _later(_unblocked_at(s.down, replicas, events, now, False), down_stabilized_until),
            guard_until,
        )
    return Decision(
        replicas=replicas,
        reason=reason,
        history=History(
            started_at=history.started_at,
            points=points,
            events=events,
            failures=failures,
            last_demand_at=last_demand_at,
            seen_since=seen_since,
        ),
        demand=demand,
        load_percent=load_percent,
        limited=asked < s.min_replicas or asked > s.max_replicas,
        load_known=demand is not None,
        fallback=fallback,
        up_blocked_until=up_until,
        down_blocked_until=down_until,
    )


def decide(
    spec: api.ScalingSpec,
    capacity: int,
    current: Current,
    observation: Observation,
    history: History,
    now: float,
) -> Decision:
    """The replicas the pool should have at `now` (the policy: see the module docstring)."""
    s = _settings_of(spec)
    cur = current.replicas
    points = _prune_points(history.points, s.keep_points, now)
    events = _prune_events(history.events, s.keep_events, now)
    samples = observation.samples

    if samples is None:
        return _unknown(s, cur, history, points, events, now)

    # 1. Signal.
    cap = capacity if capacity > 0 else 1
    ready = current.ready
    stale_after = observation.stale_after
    turns = 0
    refused = 0
    reporting = 0
    for sample in samples:
        if now - sample.at <= stale_after:
            turns += sample.active_turns
            refused += sample.refused_turns
            if not sample.draining:
                reporting += 1
    queued = observation.queued_tasks + observation.waking
    waiting = queued + refused
    demand = turns + waiting
    missing = ready - reporting if ready > reporting else 0
    full_demand = demand + missing * cap
    per_replica = cap * s.target  # demand one replica holds at the target, x100
    up_need = _ceil_div(demand * 100, per_replica)
    down_need = _ceil_div(full_demand * 100, per_replica)
    slots = ready * cap
    load_percent = demand * 100 // slots if slots else None
    last_demand_at = now if demand > 0 else history.last_demand_at
    seen_since = history.seen_since if history.seen_since is not None else now

    # 2. Load policy: the recommendation, and a phrase that says why.
    up_cut = bisect_right(points, now - s.up_window, key=_at)
    two_readings = up_cut > len(points) - 1  # the window is too short: the last two readings
    if two_readings:
        up_cut = len(points) - 1
    up_rec = min(up_need, min(map(_up, points[up_cut:]))) if points else None
    guard_ok = now - max(history.started_at, seen_since) >= s.guard
    panic = demand > 0 and (ready == 0 or cur == 0 or (waiting > 0 and demand >= slots))
    going_up = panic or (up_rec is not None and up_rec > cur)
    low_now = full_demand * 100 < s.scale_down_load * slots
    zero_now = s.min_replicas == 0 and cur > 0 and full_demand == 0
    # The scale-down window's peak, read only when it can matter: the common ticks (in
    # the band, or a pool already at one replica) skip the scan.
    peak_full = full_demand
    if not going_up and (zero_now or (low_now and cur > 1)):
        window = points[bisect_right(points, now - s.down_window, key=_at) :]
        if window:
            peak_full = max(full_demand, max(map(_full, window)))
    pct = f"{load_percent}%" if load_percent is not None else f"{demand} with none ready"
    zero = False

    if panic:
        recommendation = max(cur, up_need)
        if ready == 0 or cur == 0:
            why = f"demand {demand} ({observation.queued_tasks} queued"
            if observation.waking:
                why += f", {observation.waking} callers waiting"
            why += ") and no replica ready"
        else:
            why = f"every slot busy ({turns} turns for {slots}) and {queued} queued"
            if refused:
                why += f", {refused} refused"
    elif up_rec is not None and up_rec > cur:
        recommendation = up_rec
        of_target = demand * 100 * 100 // (slots * s.target) if slots else 0
        span = "2 readings" if two_readings else f"{s.up_window} s"
        why = f"load {of_target}% of target over {span}"
    elif (
        zero_now
        and peak_full == 0
        and now - (last_demand_at if last_demand_at is not None else history.started_at)
        >= s.cooldown
    ):
        recommendation, zero = 0, True
        why = f"no demand for {s.cooldown} s"
    elif cur > 1 and peak_full * 100 < s.scale_down_load * slots:
        # The size at which the window's peak is the target load: no bounce back up.
        peak_down = _ceil_div(peak_full * 100, per_replica)
        target_size = peak_down if peak_down > 1 else 1
        recommendation = target_size if target_size < cur else cur
        peak_pct = peak_full * 100 // slots
        why = f"load at most {peak_pct}% (below {s.scale_down_load}%) for {s.down_window} s"
    else:
        recommendation = cur
        if up_rec is None and up_need > cur:
            why = f"load {pct}, waiting for a second reading"
        elif up_need > cur:
            why = f"load {pct}, above target for one reading only"
        elif not guard_ok and (load_percent or 0) < s.scale_down_load:
            left = s.guard - (now - max(history.started_at, seen_since))
            why = f"load {pct}; no scale-down for {left:.0f} s (a full {s.guard} s window first)"
        elif low_now and cur <= 1:
            why = f"load {pct}, below {s.scale_down_load}%"
            if zero_now:
                quiet = now - (last_demand_at if last_demand_at is not None else history.started_at)
                why += f"; zero after {s.cooldown} s without demand ({quiet:.0f} s so far)"
        elif load_percent is not None and load_percent < s.scale_down_load:
            why = f"load {pct}, below {s.scale_down_load}% for less than {s.down_window} s"
        else:
            why = f"load {pct}, within {s.scale_down_load}-{s.target}%"

    # The restart and outage guard holds the scale-down, not the record of it: once a full
    # window has been seen, the stabilization window already holds true recommendations
    # (so a restart delays a scale-down by the guard, not by the guard and the window).
    recorded = recommendation
    if recommendation < cur and not guard_ok:
        left = s.guard - (now - max(history.started_at, seen_since))
        why = f"load {pct}; no scale-down for {left:.0f} s (a full {s.guard} s window first)"
        recommendation, zero = cur, False

    # 3. Behavior: the stabilization windows (HPA's rule), then the step limits.
    wanted = cur
    up_stab_until = down_stab_until = None
    if recommendation > cur:
        lowest = recommendation
        # Waking from zero is not held by the window: its recommendations were all "idle".
        if s.up.window and cur > 0:
            recent = points[bisect_right(points, now - s.up.window, key=_at) :]
            if recent:
                lowest = min(lowest, min(map(_rec, recent)))
                if lowest <= cur:
                    held = [p.at for p in recent if p.recommendation <= cur]
                    up_stab_until = held[-1] + s.up.window
        wanted = lowest if lowest > cur else cur
    elif recommendation < cur:
        highest = recommendation
        if s.down.window and not zero:
            recent = points[bisect_right(points, now - s.down.window, key=_at) :]
            if recent:
                highest = max(highest, max(map(_rec, recent)))
                if highest >= cur:
                    held = [p.at for p in recent if p.recommendation >= cur]
                    down_stab_until = held[-1] + s.down.window
                    if s.min_replicas == 0:
                        # The cooldown to zero is not held by this window: it may come first.
                        quiet_from = (
                            last_demand_at if last_demand_at is not None else history.started_at
                        )
                        zero_at = quiet_from + s.cooldown
                        if zero_at < down_stab_until:
                            down_stab_until = zero_at if zero_at > now else None
        wanted = highest if highest < cur else cur
    limiter: str | None = None
    if wanted != recommendation:
        limiter = "stabilization window"
    behaved, step = _behave(s, wanted, cur, events, now)
    if step is not None:
        limiter = step

    point = Point(now, up_need, down_need, full_demand, recorded)
    return _finish(
        s,
        current=cur,
        wanted=behaved,
        limiter=limiter,
        why=why,
        history=history,
        points=(*points, point),
        events=events,
        now=now,
        failures=0,
        last_demand_at=last_demand_at,
        seen_since=seen_since,
        demand=demand,
        load_percent=load_percent,
        asked=recommendation,
        up_stabilized_until=up_stab_until,
        down_stabilized_until=down_stab_until,
    )


def _unknown(
    s: _Settings,
    cur: int,
    history: History,
    points: tuple[Point, ...],
    events: tuple[ScaleEvent, ...],
    now: float,
) -> Decision:
    """A tick whose load could not be read: hold, or the declared fallback size."""
    failures = history.failures + 1
    # An outage as long as the failure threshold counts as a restart for scale-down.
    seen_since = None if failures >= s.failure_threshold else history.seen_since
    ticks = "tick" if failures == 1 else "ticks"
    if s.fallback_replicas is not None and failures >= s.failure_threshold:
        wanted, limiter = _behave(s, s.fallback_replicas, cur, events, now)
        return _finish(
            s,
            current=cur,
            wanted=wanted,
            limiter=limiter,
            why=f"fallback: load unknown (Redis unreachable) for {failures} {ticks}",
            history=history,
            points=points,
            events=events,
            now=now,
            failures=failures,
            last_demand_at=history.last_demand_at,
            seen_since=seen_since,
            demand=None,
            load_percent=None,
            asked=s.fallback_replicas,
            fallback=True,
        )
    return _finish(
        s,
        current=cur,
        wanted=cur,
        limiter=None,
        why=f"load unknown (Redis unreachable) for {failures} {ticks}",
        history=history,
        points=points,
        events=events,
        now=now,
        failures=failures,
        last_demand_at=history.last_demand_at,
        seen_since=seen_since,
        demand=None,
        load_percent=None,
        asked=cur,
    )
