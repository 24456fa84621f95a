"""Retry timing with a fake clock and sleep, the fallback chain, and the token bucket."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_runtime.config.tools import RetrySettings
from agent_runtime.resilience.fallback import (
    FallbackExhaustedError,
    Static,
    answer_with_fallbacks,
)
from agent_runtime.resilience.limits import RateLimitedError, TokenBucket
from agent_runtime.resilience.retry import call_with_retry
from tests.support.fake_time import FakeTime


class TransientError(Exception):
    pass


class PermanentError(Exception):
    pass


def failing(
    times: int, error: type[Exception] = TransientError
) -> tuple[Callable[[], Awaitable[str]], list[float]]:
    attempts: list[float] = []

    async def attempt() -> str:
        attempts.append(1)
        if len(attempts) <= times:
            raise error(f"attempt {len(attempts)}")
        return "ok"

    return attempt, attempts


@given(
    initial=st.floats(0.01, 2),
    multiplier=st.floats(1, 4),
    jitter=st.floats(0, 1),
    cap=st.floats(0.5, 30),
    attempts=st.integers(1, 8),
    failures=st.integers(0, 10),
)
async def test_backoff_is_exponential_with_bounded_jitter(
    initial: float, multiplier: float, jitter: float, cap: float, attempts: int, failures: int
) -> None:
    time = FakeTime()
    settings = RetrySettings(
        max_attempts=attempts,
        initial_backoff_seconds=initial,
        multiplier=multiplier,
        jitter_seconds=jitter,
        max_backoff_seconds=cap,
    )
    attempt, made = failing(failures)
    if failures < attempts:
        assert (
            await call_with_retry(attempt, settings, should_retry=lambda e: True, sleep=time.sleep)
            == "ok"
        )
    else:
        with pytest.raises(TransientError, match=f"attempt {attempts}"):
            await call_with_retry(attempt, settings, should_retry=lambda e: True, sleep=time.sleep)
    assert len(made) == min(failures + 1, attempts)
    assert len(time.sleeps) == len(made) - 1
    for n, delay in enumerate(time.sleeps):
        base = initial * multiplier**n
        assert min(base, cap) - 1e-9 <= delay <= min(base + jitter, cap) + 1e-9


async def test_errors_the_predicate_rejects_are_raised_at_once() -> None:
    time = FakeTime()
    attempt, made = failing(3, PermanentError)
    with pytest.raises(PermanentError):
        await call_with_retry(
            attempt,
            RetrySettings(max_attempts=5),
            should_retry=lambda e: isinstance(e, TransientError),
            sleep=time.sleep,
        )
    assert (len(made), time.sleeps) == (1, [])


@given(deadline=st.floats(0.1, 20), initial=st.floats(0.05, 2))
async def test_no_backoff_ends_past_the_deadline(deadline: float, initial: float) -> None:
    time = FakeTime()
    attempt, _ = failing(100)
    reported: list[tuple[int, float]] = []
    with pytest.raises(TransientError):
        await call_with_retry(
            attempt,
            RetrySettings(max_attempts=20, initial_backoff_seconds=initial, jitter_seconds=0.1),
            should_retry=lambda e: True,
            deadline=deadline,
            clock=time,
            sleep=time.sleep,
            on_retry=lambda n, e, d: reported.append((n, d)),
        )
    assert time.now < deadline
    assert [d for _, d in reported] == time.sleeps
    assert [n for n, _ in reported] == list(range(1, len(reported) + 1))


# --------------------------------------------------------------------------- fallback


async def test_the_first_strategy_that_answers_wins_and_is_named() -> None:
    async def broken() -> str:
        raise TransientError("down")

    async def works() -> str:
        return "b"

    answer = await answer_with_fallbacks(broken, [("tool:a", broken), ("tool:b", works)])
    assert (answer.value, answer.strategy) == ("b", "tool:b")
    static = await answer_with_fallbacks(broken, [("tool:a", broken)], Static(None))
    assert (static.value, static.strategy) == (None, "static")
    with pytest.raises(FallbackExhaustedError, match="primary: down; tool:a: down") as caught:
        await answer_with_fallbacks(broken, [("tool:a", broken)])
    assert isinstance(caught.value.primary, TransientError)


async def test_errors_that_must_not_fall_back_propagate() -> None:
    async def mistaken() -> str:
        raise PermanentError("caller error")

    with pytest.raises(PermanentError):
        await answer_with_fallbacks(
            mistaken, (), Static("x"), should_fall_back=lambda e: not isinstance(e, PermanentError)
        )


# --------------------------------------------------------------------------- token bucket


async def test_the_bucket_allows_a_burst_then_the_rate() -> None:
    time = FakeTime()
    bucket = TokenBucket("t", rate=2, burst=3, clock=time, sleep=time.sleep)
    for _ in range(3):
        await bucket.take()
    with pytest.raises(RateLimitedError):
        await bucket.take()
    time.now += 0.5
    await bucket.take()
    with pytest.raises(RateLimitedError):
        await bucket.take()


async def test_a_bucket_with_patience_waits_for_its_token() -> None:
    time = FakeTime()
    bucket = TokenBucket("t", rate=4, burst=1, max_wait=1, clock=time, sleep=time.sleep)
    await bucket.take()
    await bucket.take()
    assert time.sleeps == [0.25]
