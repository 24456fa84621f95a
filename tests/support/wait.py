"""Wait for a condition with a deadline: the only way tests wait (never a bare sleep)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class ConditionTimeoutError(AssertionError):
    """The condition did not hold before the deadline."""


def wait_until(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.1,
    what: str = "condition",
) -> T:
    """Call `probe` until it returns a truthy value; return it, or fail after `timeout` s.

    Exceptions raised by the probe count as "not yet" and the last one is reported.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = probe()
            if value:
                return value
            last = value
        except Exception as exc:  # the probe may fail until the thing exists
            last = exc
        if time.monotonic() >= deadline:
            raise ConditionTimeoutError(
                f"timed out after {timeout}s waiting for {what}; last: {last!r}"
            )
        time.sleep(interval)


async def async_wait_until(
    probe: Callable[[], Awaitable[T | None]],
    *,
    timeout: float,  # noqa: ASYNC109 - a polling deadline, not an operation's own timeout
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """The asyncio twin of `wait_until`."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = await probe()
            if value:
                return value
            last = value
        except Exception as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise ConditionTimeoutError(
                f"timed out after {timeout}s waiting for {what}; last: {last!r}"
            )
        await asyncio.sleep(interval)
