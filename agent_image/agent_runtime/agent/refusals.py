"""The callers this replica turned away for lack of a free slot, over the last few seconds:
demand that its active turns cannot show (they are capped by capacity), published in its
load sample so that the autoscaler sees a pool's overload at its true size.

Why a window and not a counter the operator differentiates: a sample that says "refused
in the last `window` seconds" stands on its own. A missed or late publication loses
nothing (the next one covers the same seconds), a restarted replica starts from zero
with nothing to reconcile, and the operator needs no per-pod memory of earlier counters,
no reset detection, and no warm-up after its own restart (a counter's first reading is
a baseline, not a rate). The cost: refusals older than the window are forgotten, which
is what demand wants (a caller who gave up is no longer waiting).

Why distinct callers and not refusals: a client that retries every 100 ms would count
ten times a second. A refusal names its caller (tenant and conversation, where known),
and each caller counts once per window; one without a name counts each time.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from itertools import count

MAX_CALLERS = 100_000
"""A bound on the callers remembered (far above what one replica refuses in a window):
past it the oldest are forgotten first."""


class RecentRefusals:
    """Who was refused within the last `window` seconds (monotonic clock)."""

    def __init__(self, window: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self._clock = clock
        # caller -> time of its last refusal, oldest first (a caller refused again moves
        # to the end), so pruning stops at the first fresh entry. An OrderedDict: taking
        # from the front of a plain dict again and again gets slower with every removal.
        self._last: OrderedDict[str, float] = OrderedDict()
        self._anonymous = count()

    def record(self, caller: str | None = None) -> None:
        """One refusal of `caller` (None: a caller that cannot be told apart)."""
        now = self._clock()
        key = caller if caller is not None else f"\0{next(self._anonymous)}"
        self._last[key] = now
        self._last.move_to_end(key)
        if len(self._last) > MAX_CALLERS:
            self._last.popitem(last=False)

    def __len__(self) -> int:
        """Callers refused within the window."""
        oldest = self._clock() - self.window
        last = self._last
        while last and next(iter(last.values())) <= oldest:
            last.popitem(last=False)
        return len(last)
