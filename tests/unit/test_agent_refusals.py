"""The callers a replica refused for lack of a slot: counted once per caller per window,
forgotten after it; only refusals at capacity of turns that wait nowhere else count."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_runtime.agent.admission import Admission, AtCapacityError, DrainingError
from agent_runtime.agent.refusals import RecentRefusals


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_caller_counts_once_per_window_and_an_anonymous_one_each_time() -> None:
    clock = Clock()
    refusals = RecentRefusals(5.0, clock=clock)
    for _ in range(10):  # one client retrying its conversation
        refusals.record("t/conversation-1")
        clock.now += 0.1
    refusals.record("t/conversation-2")
    refusals.record()
    refusals.record()
    assert len(refusals) == 4


def test_refusals_are_forgotten_after_the_window() -> None:
    clock = Clock()
    refusals = RecentRefusals(5.0, clock=clock)
    refusals.record("a")
    clock.now += 3
    refusals.record("b")
    clock.now += 2.5
    assert len(refusals) == 1  # a is 5.5 s old
    refusals.record("a")  # refused again: counts again, from now
    clock.now += 4
    assert len(refusals) == 1  # b is gone, a is 4 s old
    clock.now += 1
    assert len(refusals) == 0


@given(st.lists(st.tuples(st.sampled_from("abcdef"), st.floats(0, 3)), max_size=60))
def test_the_count_is_the_callers_refused_within_the_window(
    events: list[tuple[str, float]],
) -> None:
    clock = Clock()
    refusals = RecentRefusals(5.0, clock=clock)
    last: dict[str, float] = {}
    for caller, wait in events:
        clock.now += wait
        refusals.record(caller)
        last[caller] = clock.now
        assert len(refusals) == sum(1 for at in last.values() if at > clock.now - 5.0)


def test_admission_records_refusals_at_capacity_of_requests_only() -> None:
    clock = Clock()
    admission = Admission(1, refusal_window=5.0, clock=clock)
    heard: list[int] = []
    admission.on_change(lambda: heard.append(len(admission.refusals)))
    with admission.turn("t/a"):
        with pytest.raises(AtCapacityError), admission.turn("t/b"):
            pass
        # A task refused here stays in the task queue, which the autoscaler counts.
        with pytest.raises(AtCapacityError), admission.turn(queued=True):
            pass
    assert len(admission.refusals) == 1
    assert 1 in heard  # the publisher hears of it at once
    admission.drain()
    # Draining is no lack of capacity: another replica takes the turn.
    with pytest.raises(DrainingError), admission.turn("t/c"):
        pass
    assert len(admission.refusals) == 1
    clock.now += 5.0
    assert len(admission.refusals) == 0
