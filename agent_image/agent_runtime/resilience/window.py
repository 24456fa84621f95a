"""Sliding windows of call outcomes for the circuit breaker: count-based and time-based.

Both keep running totals so recording a call and reading the rates are O(1) (amortized),
which keeps the breaker's hot path to a few attribute updates.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol


class WindowTotals(NamedTuple):
    """What a window holds: calls, and how many of them failed or were slow."""

    calls: int
    failures: int
    slow: int

    @property
    def failure_rate(self) -> float:
        """Failed calls in percent (0 when empty)."""
        return 100.0 * self.failures / self.calls if self.calls else 0.0

    @property
    def slow_rate(self) -> float:
        """Slow calls in percent (0 when empty)."""
        return 100.0 * self.slow / self.calls if self.calls else 0.0


class OutcomeWindow(Protocol):
    """A sliding window of outcomes, with running totals as of the latest `add`."""

    calls: int
    failures: int
    slow: int

    def add(self, failed: bool, slow: bool, now: float) -> None:
        """Record one finished call."""

    def totals(self, now: float) -> WindowTotals:
        """The outcomes that are still inside the window at `now`."""


class CountWindow:
    """The last `size` calls, as a ring buffer."""

    __slots__ = ("_failed", "_filled", "_next", "_size", "_slow", "calls", "failures", "slow")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a count window holds at least one call")
        self._size = size
        self._failed = [False] * size
        self._slow = [False] * size
        self._next = 0
        self._filled = 0
        self.calls = 0
        self.failures = 0
        self.slow = 0

    def add(self, failed: bool, slow: bool, now: float) -> None:
        i = self._next
        if self._filled == self._size:
            self.failures -= self._failed[i]
            self.slow -= self._slow[i]
        else:
            self._filled += 1
            self.calls += 1
        self._failed[i] = failed
        self._slow[i] = slow
        self.failures += failed
        self.slow += slow
        self._next = (i + 1) % self._size

    def totals(self, now: float) -> WindowTotals:
        return WindowTotals(self.calls, self.failures, self.slow)


class TimeWindow:
    """The calls of the current whole second and the `size - 1` seconds before it.

    One bucket per second; moving to a new second clears the buckets that fell out.
    """

    __slots__ = ("_buckets", "_latest", "_size", "calls", "failures", "slow")

    def __init__(self, size_seconds: int) -> None:
        if size_seconds < 1:
            raise ValueError("a time window spans at least one second")
        self._size = size_seconds
        self._buckets = [[0, 0, 0] for _ in range(size_seconds)]  # calls, failures, slow
        self._latest: int | None = None
        self.calls = 0
        self.failures = 0
        self.slow = 0

    def _advance(self, now: float) -> list[int]:
        second = int(now)
        latest = self._latest
        if latest is None or second - latest >= self._size:
            for bucket in self._buckets:
                bucket[0] = bucket[1] = bucket[2] = 0
            self.calls = self.failures = self.slow = 0
        elif second > latest:
            for s in range(latest + 1, second + 1):
                bucket = self._buckets[s % self._size]
                self.calls -= bucket[0]
                self.failures -= bucket[1]
                self.slow -= bucket[2]
                bucket[0] = bucket[1] = bucket[2] = 0
        current = second if latest is None or second > latest else latest
        self._latest = current
        return self._buckets[current % self._size]

    def add(self, failed: bool, slow: bool, now: float) -> None:
        bucket = self._advance(now)
        bucket[0] += 1
        bucket[1] += failed
        bucket[2] += slow
        self.calls += 1
        self.failures += failed
        self.slow += slow

    def totals(self, now: float) -> WindowTotals:
        self._advance(now)
        return WindowTotals(self.calls, self.failures, self.slow)
