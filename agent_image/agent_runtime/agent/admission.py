"""Who may start a turn on this replica: at most `agent.concurrency` at once, none while
draining. The count is the replica's load signal; listeners hear every change."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator

import structlog

from agent_runtime.agent import metrics
from agent_runtime.resilience.deadline import within

log = structlog.get_logger(__name__)


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

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.active = 0
        self.draining = False
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
    def turn(self) -> Iterator[None]:
        """Hold a slot for one turn (`DrainingError`, `AtCapacityError` when refused)."""
        if self.draining:
            raise DrainingError
        if self.active >= self.capacity:
            raise AtCapacityError(self.capacity)
        self._set(self.active + 1)
        try:
            yield
        finally:
            self._set(self.active - 1)

    def drain(self) -> None:
        """Take no new turns from now on (the turns running finish)."""
        if not self.draining:
            self.draining = True
            metrics.DRAINING.set(1)
            log.info("draining", active_turns=self.active)
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
