"""A clock and an async sleep that move only when told: timing tests without real waits."""

from __future__ import annotations


class FakeTime:
    """Call it for the time; `await sleep(s)` records `s` and moves the clock by it."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
