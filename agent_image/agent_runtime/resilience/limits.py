"""Per-tool load limits: a bulkhead (concurrency) and a token-bucket rate limiter."""

from __future__ import annotations

import asyncio
from collections import deque

from agent_runtime.resilience.clock import Clock, Sleep, monotonic, sleep
from agent_runtime.resilience.deadline import within


class BulkheadFullError(Exception):
    """Too many calls of one tool in flight, and no slot freed in time."""

    def __init__(self, name: str, limit: int) -> None:
        self.name = name
        super().__init__(f"{name!r} already has {limit} calls in flight; try again later")


class RateLimitedError(Exception):
    """The tool's rate limit has no token left, and none came in time."""

    def __init__(self, name: str, retry_after: float) -> None:
        self.name = name
        self.retry_after = retry_after
        super().__init__(f"{name!r} is rate limited; next call allowed in {retry_after:.2f}s")


class Bulkhead:
    """At most `limit` concurrent calls; a call waits up to `max_wait` for a slot.

    A counter with a queue of waiting futures rather than `asyncio.Semaphore`: the free-slot
    path is one comparison and one increment, and it sits on every call (the semaphore's
    `locked()` scans its waiters each time).
    """

    def __init__(self, name: str, limit: int, max_wait: float) -> None:
        self.name = name
        self.limit = limit
        self._max_wait = max_wait
        self._in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def in_flight(self) -> int:
        """Calls holding a slot now."""
        return self._in_flight

    async def acquire(self) -> None:
        """Take a slot, waiting up to `max_wait`; else `BulkheadFullError`.

        Pair with `release()` in a `finally`.
        """
        if self._in_flight < self.limit and not self._waiters:
            self._in_flight += 1
            return
        if self._max_wait <= 0:
            raise BulkheadFullError(self.name, self.limit)
        slot: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(slot)
        try:
            await within(
                self._max_wait,
                asyncio.shield(slot),
                expired=lambda: BulkheadFullError(self.name, self.limit),
            )
        except BaseException:
            if slot.done() and not slot.cancelled():
                self.release()  # handed a slot just as we gave up: pass it on
            else:
                slot.cancel()
            raise

    def release(self) -> None:
        """Give the slot back (to the longest waiter, if any)."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot changes hands; the count stays
                return
        self._in_flight -= 1


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; a call takes one token."""

    def __init__(
        self,
        name: str,
        rate: float,
        burst: int,
        max_wait: float = 0.0,
        *,
        clock: Clock = monotonic,
        sleep: Sleep = sleep,
    ) -> None:
        self.name = name
        self._rate = rate
        self._burst = float(burst)
        self._max_wait = max_wait
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._updated = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._rate)
        self._updated = now

    async def take(self) -> None:
        """Take a token, waiting up to `max_wait` for one; else `RateLimitedError`."""
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return
        wait = (1.0 - self._tokens) / self._rate
        if wait > self._max_wait:
            raise RateLimitedError(self.name, wait)
        # Reserve the token now so concurrent waiters queue up instead of all waking at once.
        self._tokens -= 1.0
        await self._sleep(wait)
