"""Who may start a turn on this replica: at most `agent.concurrency` at once, none while
draining. The count is the replica's load signal, and so are the callers refused for
lack of a slot (`refusals`); listeners hear every change of either."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Literal

import structlog

from agent_runtime.agent import metrics
from agent_runtime.agent.refusals import RecentRefusals
from agent_runtime.resilience.deadline import within

log = structlog.get_logger(__name__)

DrainReason = Literal["shutdown", "scale-down"]
"""Why a replica refuses new turns: its pod is going away, or the autoscaler chose it."""


class DrainingError(Exception):
    """The replica is draining and takes no new turns (HTTP 503: another replica will)."""

    def __init__(self) -> None:
        super().__init__("this replica is draining and takes no new turns; retry elsewhere")


class AtCapacityError(Exception):
    """Every turn slot of this replica is taken (HTTP 503 with Retry-After)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        super().__init__(f"this replica already runs {capacity} turns (agent.concurrency)")


class Admission:
    """The turn slots of one replica."""

    def __init__(
        self,
        capacity: int,
        *,
        refusal_window: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = capacity
        self.active = 0
        self.refusals = RecentRefusals(refusal_window, clock=clock)
        """Callers refused at capacity within the last `refusal_window` seconds (the load
        sample's `refusedTurns`: pass `stale_after(publish interval)`, so that a refusal
        stays in every sample the autoscaler still reads as fresh)."""
        self._drains: set[DrainReason] = set()
        self._listeners: list[Callable[[], None]] = []
        self._idle = asyncio.Event()
        self._idle.set()
        metrics.CAPACITY.set(capacity)
        metrics.ACTIVE_TURNS.set(0)
        metrics.DRAINING.set(0)

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call `listener` after every change of `active` or `draining`."""
        self._listeners.append(listener)

    @contextlib.contextmanager
    def turn(self, caller: str | None = None, *, queued: bool = False) -> Iterator[None]:
        """Hold a slot for one turn (`DrainingError`, `AtCapacityError` when refused).

        A refusal at capacity is recorded as demand for `caller` (tenant and conversation:
        a client retrying counts once per window), unless the turn is `queued`: a task
        refused here stays in the task queue, which the autoscaler counts already."""
        if self.draining:
            metrics.REFUSED_TURNS.labels("draining").inc()
            raise DrainingError
        if self.active >= self.capacity:
            metrics.REFUSED_TURNS.labels("atCapacity").inc()
            if not queued:
                self.refusals.record(caller)
                self._changed()
            raise AtCapacityError(self.capacity)
        self._set(self.active + 1)
        try:
            yield
        finally:
            self._set(self.active - 1)

    @property
    def draining(self) -> bool:
        """Whether new turns are refused (for any reason)."""
        return bool(self._drains)

    def drain(self, reason: DrainReason = "shutdown") -> None:
        """Take no new turns from now on (the turns running finish). A shutdown (preStop,
        SIGTERM) is for good; a scale-down request lasts until `resume("scale-down")`."""
        if reason not in self._drains:
            was = self.draining
            self._drains.add(reason)
            if not was:
                metrics.DRAINING.set(1)
                log.info("draining", reason=reason, active_turns=self.active)
                self._changed()

    def resume(self, reason: DrainReason) -> None:
        """Withdraw one reason to drain; turns are taken again once none is left."""
        if reason in self._drains:
            self._drains.discard(reason)
            if not self._drains:
                metrics.DRAINING.set(0)
                log.info("taking turns again", withdrawn=reason)
                self._changed()

    async def wait_idle(self, timeout: float) -> bool:  # noqa: ASYNC109 - the drain deadline
        """Wait up to `timeout` seconds for the running turns to end; whether they did."""
        try:
            await within(timeout, self._idle.wait())
        except TimeoutError:
            return False
        return True

    def _set(self, active: int) -> None:
        self.active = active
        metrics.ACTIVE_TURNS.set(active)
        if active:
            self._idle.clear()
        else:
            self._idle.set()
        self._changed()

    def _changed(self) -> None:
        for listener in self._listeners:
            try:
                listener()
            except Exception:
                log.exception("admission listener failed")
