"""`within`: a deadline around an awaitable, with asyncio.timeout's cancellation contract."""

from __future__ import annotations

import asyncio

import pytest

from agent_runtime.resilience.deadline import within


class LateError(Exception):
    pass


async def test_work_that_finishes_in_time_returns_its_value() -> None:
    async def quick() -> int:
        return 7

    assert await within(5, quick()) == 7


async def test_work_past_the_deadline_is_cancelled_and_reported() -> None:
    cancelled = asyncio.Event()

    async def hang() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(LateError):
        await within(0.01, hang(), expired=LateError)
    assert cancelled.is_set()
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_the_works_own_timeout_errors_pass_through() -> None:
    async def own() -> None:
        raise TimeoutError("inner")

    with pytest.raises(TimeoutError, match="inner"):
        await within(5, own(), expired=LateError)


async def test_an_outside_cancellation_stays_a_cancellation() -> None:
    started = asyncio.Event()

    async def hang() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(within(5, hang(), expired=LateError))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_the_inner_deadline_wins_when_it_is_shorter() -> None:
    async def hang() -> None:
        await asyncio.Event().wait()

    with pytest.raises(LateError):
        await within(5, within(0.01, hang(), expired=LateError))
