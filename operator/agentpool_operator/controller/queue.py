"""A work queue of pool keys, as client-go's: a key is queued at most once, a key being
reconciled is never reconciled twice at once (a change during its reconcile queues it
again for after), and failures come back after an exponential backoff."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Hashable
from typing import Generic, TypeVar

from agentpool_operator.metrics import QUEUE_DEPTH, QUEUE_LATENCY

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    """Keys to reconcile; `get` hands each out to one worker at a time."""

    def __init__(self, *, base_delay: float = 0.5, max_delay: float = 300.0) -> None:
        self._queued: dict[K, float] = {}
        self._order: asyncio.Queue[K] = asyncio.Queue()
        self._running: set[K] = set()
        self._dirty: set[K] = set()
        self._failures: dict[K, int] = {}
        self._timers: dict[K, asyncio.TimerHandle] = {}
        self._base = base_delay
        self._max = max_delay

    def __len__(self) -> int:
        return len(self._queued)

    def add(self, key: K) -> None:
        """Queue `key` now (no-op when already queued)."""
        if key in self._running:
            self._dirty.add(key)
            return
        if key in self._queued:
            return
        self._queued[key] = time.monotonic()
        self._order.put_nowait(key)
        QUEUE_DEPTH.set(len(self._queued))

    def add_after(self, key: K, delay: float) -> None:
        """Queue `key` after `delay` seconds (a later call replaces an earlier timer)."""
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(delay, self._fire, key)

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def retry(self, key: K) -> float:
        """Queue `key` again after a backoff that doubles with each failure in a row."""
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        delay: float = min(self._max, self._base * 2.0 ** (failures - 1))
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        """`key` succeeded: its next failure starts the backoff over."""
        self._failures.pop(key, None)

    async def get(self) -> K:
        """The next key, marked running until `done`."""
        key = await self._order.get()
        queued_at = self._queued.pop(key)
        QUEUE_DEPTH.set(len(self._queued))
        QUEUE_LATENCY.observe(time.monotonic() - queued_at)
        self._running.add(key)
        return key

    def done(self, key: K) -> None:
        """The reconcile of `key` ended; a change seen meanwhile queues it again."""
        self._running.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)
