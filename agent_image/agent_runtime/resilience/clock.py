"""Injectable time: every timing decision in the tool layer reads one of these.

Tests pass fake ones, so backoff, windows and TTLs are tested without sleeping.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
"""Seconds from an arbitrary origin; must never go backwards (like `time.monotonic`)."""

WallClock = Callable[[], float]
"""Seconds since the epoch (like `time.time`): comparable between processes."""

Sleep = Callable[[float], Awaitable[None]]
"""Waits the given number of seconds (like `asyncio.sleep`)."""

monotonic: Clock = time.monotonic
wall_clock: WallClock = time.time
sleep: Sleep = asyncio.sleep
