"""Per-tool load limits: a bulkhead (concurrency) and a token-bucket rate limiter."""

from __future__ import annotations

import asyncio

from agent_runtime.resilience.clock import Clock, Sleep, monotonic, sleep


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
    """At most `limit` concurrent calls; a call waits up to `max_wait` for a slot."""

    def __init__(self, name: str, limit: int, max_wait: float) -> None:
        self.name = name
        self.limit = limit
        self._max_wait = max_wait
        self._slots = asyncio.Semaphore(limit)

    @property
    def in_flight(self) -> int:
        """Calls holding a slot now."""
        return self.limit - self._slots._value  # the semaphore exposes no public count

    async def acquire(self) -> None:
        """Take a slot, waiting up to `max_wait`; else `BulkheadFullError`.

        Pair with `release()` in a `finally` (a plain method pair, not a context manager,
        because this sits on every call's path).
        """
        if not self._slots.locked():
            await self._slots.acquire()  # a free slot: returns without suspending
            return
        try:
            async with asyncio.timeout(self._max_wait):
                await self._slots.acquire()
        except TimeoutError:
            raise BulkheadFullError(self.name, self.limit) from None

    def release(self) -> None:
        """Give the slot back."""
        self._slots.release()


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
