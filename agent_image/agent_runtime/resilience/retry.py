"""Retries with exponential backoff and jitter, on tenacity.

The delay before retry n (n = 1, 2, ...) is
`min(initial * multiplier**(n-1) + uniform(0, jitter), maxBackoff)`; a call is retried
only when `should_retry` accepts the error, and never past the call's deadline.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_exponential_jitter

from agent_runtime.config.tools import RetrySettings
from agent_runtime.resilience.clock import Clock, Sleep, monotonic, sleep

T = TypeVar("T")

OnRetry = Callable[[int, BaseException, float], None]
"""Called before each backoff with (attempt that failed, its error, the delay)."""


class _StopBeforeDeadline(stop_base):
    """Stop when sleeping the next backoff would end past the deadline."""

    def __init__(self, deadline: float, clock: Clock) -> None:
        self._deadline = deadline
        self._clock = clock

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._clock() + retry_state.upcoming_sleep >= self._deadline


def backoff(settings: RetrySettings) -> wait_exponential_jitter:
    """The tenacity wait strategy the settings describe."""
    return wait_exponential_jitter(
        multiplier=settings.initial_backoff_seconds,
        exp_base=settings.multiplier,
        jitter=settings.jitter_seconds,
        max=settings.max_backoff_seconds,
    )


async def call_with_retry(
    attempt: Callable[[], Awaitable[T]],
    settings: RetrySettings,
    *,
    should_retry: Callable[[BaseException], bool],
    deadline: float | None = None,
    clock: Clock = monotonic,
    sleep: Sleep = sleep,
    on_retry: OnRetry | None = None,
) -> T:
    """Run `attempt` until it succeeds, the error is not retryable, or attempts run out.

    The last error is re-raised as is. `deadline` is a `clock()` value.
    """
    # The first attempt runs bare: building tenacity's machinery costs about 35 µs, paid
    # on every model and tool call although most succeed the first time. After a
    # failure, tenacity is handed the rest with that failure as its own first attempt,
    # so the policy (attempt count, backoff, deadline, `on_retry`) is the same.
    try:
        return await attempt()
    except Exception as error:
        first = [error]

    async def rest() -> T:
        if first:
            raise first.pop()
        return await attempt()

    return await _retrying(settings, should_retry, deadline, clock, sleep, on_retry)(rest)


def _retrying(
    settings: RetrySettings,
    should_retry: Callable[[BaseException], bool],
    deadline: float | None,
    clock: Clock,
    sleep: Sleep,
    on_retry: OnRetry | None,
) -> AsyncRetrying:
    stop: stop_base = stop_after_attempt(settings.max_attempts)
    if deadline is not None:
        stop = stop | _StopBeforeDeadline(deadline, clock)

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None:
            error = state.outcome.exception()
            if error is not None:
                on_retry(state.attempt_number, error, state.upcoming_sleep)

    return AsyncRetrying(
        stop=stop,
        wait=backoff(settings),
        retry=retry_if_exception(should_retry),
        sleep=sleep,
        reraise=True,
        before_sleep=before_sleep,
    )
