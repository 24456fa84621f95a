"""The circuit breaker, tested like a library: a hypothesis state machine against a naive
reference model, plus the windows and a few named scenarios."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from agent_runtime.config.tools import CircuitBreakerSettings
from agent_runtime.resilience.breaker import (
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
    Permit,
    Transition,
)
from agent_runtime.resilience.window import CountWindow, TimeWindow
from tests.support.fake_time import FakeTime


@dataclass
class Reference:
    """The breaker's rules written the obvious way: every outcome in a list, rates
    recomputed from scratch, the window as a filter."""

    s: CircuitBreakerSettings
    state: str = "closed"
    outcomes: list[tuple[float, bool, bool]] = field(default_factory=list)
    open_until: float = 0.0
    generation: int = 0
    trials_started: int = 0
    trials: list[tuple[bool, bool]] = field(default_factory=list)

    def _move(self, state: str) -> None:
        self.state = state
        self.generation += 1
        self.trials_started = 0
        self.trials = []
        if state != "half_open":
            self.outcomes = []

    def current(self, now: float) -> str:
        if self.state == "open" and now >= self.open_until:
            self._move("half_open")
        return self.state

    def window(self, now: float) -> list[tuple[float, bool, bool]]:
        if self.s.window_type == "count":
            return self.outcomes[-self.s.window_size :]
        return [o for o in self.outcomes if int(o[0]) > int(now) - self.s.window_size]

    def acquire(self, now: float) -> int | None:
        state = self.current(now)
        if state == "open":
            return None
        if state == "half_open":
            if self.trials_started >= self.s.permitted_calls_in_half_open:
                return None
            self.trials_started += 1
        return self.generation

    def _tripped(self, calls: int, failures: int, slow: int) -> bool:
        return (
            100.0 * failures / calls >= self.s.failure_rate_threshold
            or 100.0 * slow / calls >= self.s.slow_call_rate_threshold
        )

    def record(self, generation: int, failed: bool, duration: float, now: float) -> None:
        if generation != self.generation:
            return
        slow = duration >= self.s.slow_call_duration_seconds
        if self.state == "closed":
            self.outcomes.append((now, failed, slow))
            w = self.window(now)
            if len(w) >= self.s.minimum_calls and self._tripped(
                len(w), sum(o[1] for o in w), sum(o[2] for o in w)
            ):
                self.open_until = now + self.s.wait_duration_in_open_seconds
                self._move("open")
        elif self.state == "half_open":
            self.trials.append((failed, slow))
            if len(self.trials) >= self.s.permitted_calls_in_half_open:
                if self._tripped(
                    len(self.trials), sum(t[0] for t in self.trials), sum(t[1] for t in self.trials)
                ):
                    self.open_until = now + self.s.wait_duration_in_open_seconds
                    self._move("open")
                else:
                    self._move("closed")

    def release(self, generation: int) -> None:
        if generation == self.generation and self.state == "half_open":
            self.trials_started = max(self.trials_started - 1, len(self.trials))


breaker_settings = st.builds(
    CircuitBreakerSettings,
    window_type=st.sampled_from(["count", "time"]),
    window_size=st.integers(1, 8),
    minimum_calls=st.integers(1, 6),
    failure_rate_threshold=st.floats(1, 100),
    slow_call_rate_threshold=st.floats(1, 100),
    slow_call_duration_seconds=st.floats(0.5, 3),
    wait_duration_in_open_seconds=st.floats(0.5, 5),
    permitted_calls_in_half_open=st.integers(1, 3),
)


class BreakerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeTime()
        self.permits: list[tuple[Permit, int]] = []

    @initialize(s=breaker_settings)
    def make(self, s: CircuitBreakerSettings) -> None:
        self.breaker = CircuitBreaker("dep", s, clock=self.clock)
        self.model = Reference(s)

    @rule(seconds=st.floats(0, 3))
    def time_passes(self, seconds: float) -> None:
        self.clock.now += seconds

    @rule()
    def acquire(self) -> None:
        expected = self.model.acquire(self.clock.now)
        try:
            permit = self.breaker.acquire()
        except CircuitOpenError:
            assert expected is None
        else:
            assert expected is not None
            self.permits.append((permit, expected))

    @precondition(lambda self: self.permits)
    @rule(data=st.data(), failed=st.booleans(), duration=st.floats(0, 4))
    def finish(self, data: st.DataObject, failed: bool, duration: float) -> None:
        permit, generation = self.permits.pop(data.draw(st.integers(0, len(self.permits) - 1)))
        self.breaker.record(permit, failed=failed, duration=duration)
        self.model.record(generation, failed, duration, self.clock.now)

    @precondition(lambda self: self.permits)
    @rule(data=st.data())
    def abandon(self, data: st.DataObject) -> None:
        permit, generation = self.permits.pop(data.draw(st.integers(0, len(self.permits) - 1)))
        self.breaker.release(permit)
        self.model.release(generation)

    @invariant()
    def same_state(self) -> None:
        if not hasattr(self, "breaker"):
            return
        assert self.breaker.state.value == self.model.current(self.clock.now)
        snapshot = self.breaker.snapshot()
        if snapshot.state is BreakerState.CLOSED:
            assert snapshot.calls == len(self.model.window(self.clock.now))


BreakerMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
TestBreakerAgainstReference = BreakerMachine.TestCase


# --------------------------------------------------------------------------- windows


@given(
    size=st.integers(1, 10), outcomes=st.lists(st.tuples(st.booleans(), st.booleans()), max_size=40)
)
def test_a_count_window_holds_the_last_n_calls(
    size: int, outcomes: list[tuple[bool, bool]]
) -> None:
    window = CountWindow(size)
    for failed, slow in outcomes:
        window.add(failed, slow, 0.0)
    last = outcomes[-size:]
    totals = window.totals(0.0)
    assert (totals.calls, totals.failures, totals.slow) == (
        len(last),
        sum(f for f, _ in last),
        sum(s for _, s in last),
    )


@given(
    size=st.integers(1, 6),
    steps=st.lists(st.tuples(st.floats(0, 4), st.booleans()), max_size=40),
    later=st.floats(0, 10),
)
def test_a_time_window_holds_the_last_n_seconds(
    size: int, steps: list[tuple[float, bool]], later: float
) -> None:
    window = TimeWindow(size)
    now = 0.0
    seen: list[tuple[float, bool]] = []
    for gap, failed in steps:
        now += gap
        window.add(failed, False, now)
        seen.append((now, failed))
    now += later
    inside = [f for t, f in seen if int(t) > int(now) - size]
    totals = window.totals(now)
    assert (totals.calls, totals.failures) == (len(inside), sum(inside))


def test_windows_refuse_a_zero_size() -> None:
    with pytest.raises(ValueError, match="at least one"):
        CountWindow(0)
    with pytest.raises(ValueError, match="at least one"):
        TimeWindow(0)


# --------------------------------------------------------------------------- scenarios


def fail(
    breaker: CircuitBreaker, times: int, *, duration: float = 0.0, failed: bool = True
) -> None:
    for _ in range(times):
        breaker.record(breaker.acquire(), failed=failed, duration=duration)


def test_it_waits_for_the_minimum_number_of_calls() -> None:
    breaker = CircuitBreaker("d", CircuitBreakerSettings(minimum_calls=5, window_size=10))
    fail(breaker, 4)
    assert breaker.snapshot().state is BreakerState.CLOSED
    fail(breaker, 1)
    assert breaker.snapshot().state is BreakerState.OPEN


def test_slow_calls_open_it_too() -> None:
    settings_ = CircuitBreakerSettings(
        minimum_calls=2, slow_call_rate_threshold=50, slow_call_duration_seconds=1
    )
    breaker = CircuitBreaker("d", settings_)
    fail(breaker, 2, duration=2.0, failed=False)
    assert breaker.state is BreakerState.OPEN


def test_half_open_lets_a_few_trials_through_then_decides() -> None:
    clock = FakeTime()
    transitions: list[Transition] = []
    breaker = CircuitBreaker(
        "d",
        CircuitBreakerSettings(
            minimum_calls=1, wait_duration_in_open_seconds=5, permitted_calls_in_half_open=2
        ),
        clock=clock,
        listeners=(transitions.append,),
    )
    fail(breaker, 1)
    with pytest.raises(CircuitOpenError) as caught:
        breaker.acquire()
    assert caught.value.retry_after == 5
    clock.now = 5
    first, second = breaker.acquire(), breaker.acquire()
    with pytest.raises(CircuitOpenError):
        breaker.acquire()  # only two trials
    breaker.record(first, failed=False)
    breaker.record(second, failed=False)
    assert breaker.state is BreakerState.CLOSED
    assert [(t.source.value, t.target.value) for t in transitions] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]


def test_an_abandoned_trial_gives_its_slot_back() -> None:
    clock = FakeTime()
    breaker = CircuitBreaker(
        "d",
        CircuitBreakerSettings(
            minimum_calls=1, wait_duration_in_open_seconds=1, permitted_calls_in_half_open=1
        ),
        clock=clock,
    )
    fail(breaker, 1)
    clock.now = 1
    breaker.release(breaker.acquire())
    breaker.record(breaker.acquire(), failed=False)
    assert breaker.state is BreakerState.CLOSED


def test_outcomes_from_before_a_transition_are_ignored() -> None:
    breaker = CircuitBreaker("d", CircuitBreakerSettings(minimum_calls=1))
    stale = breaker.acquire()
    fail(breaker, 1)
    breaker.reset()
    breaker.record(stale, failed=True)
    assert breaker.state is BreakerState.CLOSED


def test_a_failing_listener_does_not_break_the_breaker() -> None:
    def boom(_: Transition) -> None:
        raise RuntimeError("listener bug")

    breaker = CircuitBreaker("d", CircuitBreakerSettings(minimum_calls=1), listeners=(boom,))
    fail(breaker, 1)
    assert breaker.state is BreakerState.OPEN
