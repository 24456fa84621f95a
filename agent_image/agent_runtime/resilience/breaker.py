"""A circuit breaker: closed, open, half-open, over a count- or time-based sliding window.

Why our own rather than pybreaker or purgatory: pybreaker is thread-locked and
synchronous, counts consecutive failures only (no failure-*rate* window, no slow-call
rate, no minimum number of calls) and its Redis storage shares counters rather than
state; purgatory is async but also counts consecutive failures, and neither takes an
injectable clock, so neither can be tested without sleeping. The breaker is the product
here: it needs resilience4j-style rate windows, a non-blocking O(1) hot path (an open
breaker rejects in about a microsecond, see benchmarks/bench_tools.py), transitions we can
observe (metrics, logs, the HTTP API) and a state that replicas can share through Redis
(`resilience.shared`). It is tested like a library: a hypothesis state machine checks it
against a naive reference model.

The breaker itself is synchronous and lock-free: it runs on one event loop, and no method
awaits, so no interleaving can split an update.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import structlog

from agent_runtime.config.tools import CircuitBreakerSettings
from agent_runtime.resilience.clock import Clock, monotonic
from agent_runtime.resilience.window import CountWindow, OutcomeWindow, TimeWindow, WindowTotals

log = structlog.get_logger("agent_runtime.resilience.breaker")


class BreakerState(enum.Enum):
    """The three states; the value is what logs, metrics and the API show."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


STATE_GAUGE_VALUE = {BreakerState.CLOSED: 0, BreakerState.OPEN: 1, BreakerState.HALF_OPEN: 2}
"""The number `agentpool_tool_circuit_state` reports for each state."""


class CircuitOpenError(Exception):
    """The breaker refused the call without running it.

    `CircuitOpenError(name, retry_after)`. There is deliberately no `__init__`: the
    attributes read the exception's args and the message is built in `__str__`, so
    raising one costs no Python-level frame (an open breaker rejects on every call).
    """

    args: tuple[str, float]

    @property
    def name(self) -> str:
        """The breaker's name."""
        return self.args[0]

    @property
    def retry_after(self) -> float:
        """Seconds until the breaker lets a trial call through (0 when half-open)."""
        return max(self.args[1], 0.0)

    def __str__(self) -> str:
        return (
            f"circuit breaker {self.name!r} is open; calls are refused for "
            f"another {self.retry_after:.1f}s"
        )


class Permit(NamedTuple):
    """Leave to make one call; hand it back with `record` or `release`.

    A named tuple rather than a dataclass: one is made per call, and tuples are cheapest.
    """

    generation: int
    started: float


@dataclass(frozen=True, slots=True)
class Transition:
    """A state change, as listeners receive it. `remote` when caused by another replica."""

    name: str
    source: BreakerState
    target: BreakerState
    reason: str
    remote: bool = False


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """A breaker's state for the API and tests."""

    name: str
    state: BreakerState
    calls: int
    failure_rate: float
    slow_call_rate: float
    retry_after_seconds: float

    def as_dict(self) -> dict[str, object]:
        """The JSON shape the HTTP API serves (camelCase, like the config)."""
        return {
            "name": self.name,
            "state": self.state.value,
            "calls": self.calls,
            "failureRate": self.failure_rate,
            "slowCallRate": self.slow_call_rate,
            "retryAfterSeconds": self.retry_after_seconds,
        }


Listener = Callable[[Transition], None]


def _new_window(settings: CircuitBreakerSettings) -> OutcomeWindow:
    if settings.window_type == "count":
        return CountWindow(settings.window_size)
    return TimeWindow(settings.window_size)


class CircuitBreaker:
    """One breaker guarding one dependency.

    Usage: `permit = breaker.acquire()` (raises `CircuitOpenError`), run the call, then
    `breaker.record(permit, failed=...)`; if the call is abandoned (cancelled) without an
    outcome, `breaker.release(permit)` so a half-open trial slot is not lost.
    """

    def __init__(
        self,
        name: str,
        settings: CircuitBreakerSettings | None = None,
        *,
        clock: Clock = monotonic,
        listeners: tuple[Listener, ...] = (),
    ) -> None:
        self.name = name
        self.settings = settings or CircuitBreakerSettings()
        self._clock = clock
        self._listeners = list(listeners)
        self._state = BreakerState.CLOSED
        self._generation = 0
        self._window = _new_window(self.settings)
        self._open_until = 0.0
        self._trials_started = 0
        self._trials = [0, 0, 0]  # calls, failures, slow in the current half-open episode
        self._slow_after = self.settings.slow_call_duration_seconds
        self._minimum_calls = self.settings.minimum_calls
        self._failure_threshold = self.settings.failure_rate_threshold
        self._slow_threshold = self.settings.slow_call_rate_threshold

    # ------------------------------------------------------------------ reading

    @property
    def state(self) -> BreakerState:
        """The current state (an open breaker whose wait has elapsed reads as half-open)."""
        if self._state is BreakerState.OPEN and self._clock() >= self._open_until:
            self._move(BreakerState.HALF_OPEN, "wait in open state elapsed")
        return self._state

    def snapshot(self) -> BreakerSnapshot:
        """The state, the window's rates and how long an open breaker still refuses calls."""
        state = self.state
        now = self._clock()
        totals = self._window.totals(now)
        return BreakerSnapshot(
            name=self.name,
            state=state,
            calls=totals.calls,
            failure_rate=totals.failure_rate,
            slow_call_rate=totals.slow_rate,
            retry_after_seconds=max(self._open_until - now, 0.0)
            if state is BreakerState.OPEN
            else 0.0,
        )

    def add_listener(self, listener: Listener) -> None:
        """Call `listener` on every transition (it must not raise; errors are logged)."""
        self._listeners.append(listener)

    # ------------------------------------------------------------------ the call protocol

    def acquire(self) -> Permit:
        """Leave to call, or `CircuitOpenError` when the breaker refuses."""
        state = self._state
        if state is BreakerState.CLOSED:
            return Permit(self._generation, self._clock())
        now = self._clock()
        if state is BreakerState.OPEN:
            if now < self._open_until:
                raise CircuitOpenError(self.name, self._open_until - now)
            self._move(BreakerState.HALF_OPEN, "wait in open state elapsed")
        if self._trials_started >= self.settings.permitted_calls_in_half_open:
            raise CircuitOpenError(self.name, 0.0)
        self._trials_started += 1
        return Permit(self._generation, now)

    def record(self, permit: Permit, *, failed: bool, duration: float | None = None) -> None:
        """The outcome of a permitted call; outcomes from an earlier state are ignored."""
        if permit.generation != self._generation:
            return
        now = self._clock()
        elapsed = now - permit.started if duration is None else duration
        slow = elapsed >= self._slow_after
        if self._state is BreakerState.CLOSED:
            window = self._window
            window.add(failed, slow, now)
            # Integer comparisons on the running totals: this runs after every call.
            calls = window.calls
            if calls >= self._minimum_calls and (
                window.failures * 100 >= self._failure_threshold * calls
                or window.slow * 100 >= self._slow_threshold * calls
            ):
                self._open(self._tripped(window.totals(now)))
        elif self._state is BreakerState.HALF_OPEN:
            trials = self._trials
            trials[0] += 1
            trials[1] += failed
            trials[2] += slow
            if trials[0] >= self.settings.permitted_calls_in_half_open:
                reason = self._tripped(WindowTotals(trials[0], trials[1], trials[2]))
                if reason:
                    self._open(f"trial calls: {reason}")
                else:
                    self._move(BreakerState.CLOSED, "trial calls succeeded")

    def release(self, permit: Permit) -> None:
        """Give back a permit whose call ended without an outcome (e.g. cancelled)."""
        if permit.generation == self._generation and self._state is BreakerState.HALF_OPEN:
            self._trials_started = max(self._trials_started - 1, self._trials[0])

    # ------------------------------------------------------------------ control

    def force_open(self, wait_seconds: float | None = None, *, remote: bool = False) -> None:
        """Open now, for `wait_seconds` (default: the configured wait)."""
        self._open("forced", wait_seconds, remote=remote)

    def reset(self, *, remote: bool = False) -> None:
        """Close and forget the window."""
        if self._state is not BreakerState.CLOSED:
            self._move(BreakerState.CLOSED, "reset", remote=remote)

    # ------------------------------------------------------------------ internals

    def _tripped(self, totals: WindowTotals) -> str:
        if totals.failure_rate >= self.settings.failure_rate_threshold:
            return f"failure rate {totals.failure_rate:.0f}% of {totals.calls} calls"
        if totals.slow_rate >= self.settings.slow_call_rate_threshold:
            return f"slow-call rate {totals.slow_rate:.0f}% of {totals.calls} calls"
        return ""

    def _open(
        self, reason: str, wait_seconds: float | None = None, *, remote: bool = False
    ) -> None:
        wait = self.settings.wait_duration_in_open_seconds if wait_seconds is None else wait_seconds
        self._open_until = self._clock() + wait
        self._move(BreakerState.OPEN, reason, remote=remote)

    def _move(self, target: BreakerState, reason: str, *, remote: bool = False) -> None:
        source = self._state
        self._state = target
        self._generation += 1
        self._trials_started = 0
        self._trials = [0, 0, 0]
        if target is not BreakerState.HALF_OPEN:
            self._window = _new_window(self.settings)
        transition = Transition(self.name, source, target, reason, remote)
        log.info(
            "circuit breaker state changed",
            breaker=self.name,
            source=source.value,
            target=target.value,
            reason=reason,
            remote=remote,
        )
        for listener in self._listeners:
            try:
                listener(transition)
            except Exception:
                log.exception("circuit breaker listener failed", breaker=self.name)
