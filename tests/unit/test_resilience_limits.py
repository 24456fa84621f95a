"""The bulkhead: a free slot costs nothing, a full one queues callers in order or refuses."""

from __future__ import annotations

import asyncio

import pytest

from agent_runtime.resilience.limits import Bulkhead, BulkheadFullError


async def test_slots_are_handed_to_waiters_in_order() -> None:
    bulkhead = Bulkhead("t", limit=1, max_wait=5)
    await bulkhead.acquire()
    order: list[str] = []

    async def waiter(name: str) -> None:
        await bulkhead.acquire()
        order.append(name)

    first = asyncio.create_task(waiter("first"))
    second = asyncio.create_task(waiter("second"))
    await asyncio.sleep(0)  # both are queued now
    assert bulkhead.in_flight == 1
    bulkhead.release()
    await first
    assert order == ["first"]
    bulkhead.release()
    await second
    assert order == ["first", "second"]
    bulkhead.release()
    assert bulkhead.in_flight == 0


async def test_a_full_bulkhead_without_patience_refuses_at_once() -> None:
    bulkhead = Bulkhead("t", limit=2, max_wait=0)
    await bulkhead.acquire()
    await bulkhead.acquire()
    with pytest.raises(BulkheadFullError, match="2 calls in flight"):
        await bulkhead.acquire()


async def test_a_waiter_gives_up_after_max_wait_and_leaks_nothing() -> None:
    bulkhead = Bulkhead("t", limit=1, max_wait=0.01)
    await bulkhead.acquire()
    with pytest.raises(BulkheadFullError):
        await bulkhead.acquire()
    bulkhead.release()
    assert bulkhead.in_flight == 0
    await bulkhead.acquire()  # the abandoned wait did not keep a slot
    assert bulkhead.in_flight == 1


async def test_a_cancelled_waiter_passes_a_handed_slot_on() -> None:
    bulkhead = Bulkhead("t", limit=1, max_wait=5)
    await bulkhead.acquire()
    cancelled = asyncio.create_task(bulkhead.acquire())
    patient = asyncio.create_task(bulkhead.acquire())
    await asyncio.sleep(0)
    bulkhead.release()  # handed to `cancelled`...
    cancelled.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    await patient  # the slot went on to the next waiter
    assert bulkhead.in_flight == 1
