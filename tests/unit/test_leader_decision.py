"""The pure decisions of leader election: who may take the Lease, what gets written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentpool_operator.leader import (
    LeaseRecord,
    LeaseTiming,
    may_take,
    next_record,
    released_record,
    renewal_overdue,
)

identities = st.sampled_from(["op-a", "op-b", "op-c"])
times = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
)
records = st.builds(
    LeaseRecord,
    holder=st.one_of(st.just(""), identities),
    lease_duration_seconds=st.integers(min_value=1, max_value=120),
    acquire_time=st.one_of(st.none(), times),
    renew_time=st.one_of(st.none(), times),
    transitions=st.integers(min_value=0, max_value=10_000),
)
instants = st.floats(min_value=0, max_value=1e6, allow_nan=False)
ages = st.floats(min_value=0, max_value=1e4, allow_nan=False)


@given(records, identities, instants, ages)
def test_a_live_lease_held_by_another_is_never_taken(
    record: LeaseRecord, me: str, observed_at: float, age: float
) -> None:
    now = observed_at + age
    if record.holder and record.holder != me and age < record.lease_duration_seconds:
        assert not may_take(record, me, observed_at=observed_at, now=now)


@given(records, identities, instants, ages)
def test_a_free_expired_or_own_lease_may_be_taken(
    record: LeaseRecord, me: str, observed_at: float, age: float
) -> None:
    now = observed_at + age
    free = not record.holder
    mine = record.holder == me
    expired = age >= record.lease_duration_seconds
    if free or mine or expired:
        assert may_take(record, me, observed_at=observed_at, now=now)


@given(identities, instants)
def test_a_missing_lease_may_be_created(me: str, now: float) -> None:
    assert may_take(None, me, observed_at=now, now=now)


@given(st.one_of(st.none(), records), identities, times, st.floats(min_value=1, max_value=300))
def test_the_written_record_names_me_and_counts_transitions(
    old: LeaseRecord | None, me: str, now: datetime, duration: float
) -> None:
    new = next_record(old, me, now=now, lease_duration=duration)
    assert new.holder == me
    assert new.renew_time == now
    assert new.lease_duration_seconds == max(1, round(duration))
    if old is not None and old.holder == me:
        # A renewal keeps when leadership began and is no transition.
        assert new.acquire_time == old.acquire_time
        assert new.transitions == old.transitions
    else:
        assert new.acquire_time == now
        handed_over = old is not None and bool(old.holder)
        expected = (old.transitions if old is not None else 0) + (1 if handed_over else 0)
        assert new.transitions == expected


@given(records, times, identities, instants)
def test_a_released_lease_is_free_at_once_for_anyone(
    old: LeaseRecord, now: datetime, me: str, at: float
) -> None:
    released = released_record(old, now=now)
    assert released.holder == ""
    assert released.transitions == old.transitions
    assert may_take(released, me, observed_at=at, now=at)


@given(instants, st.floats(min_value=0, max_value=100, allow_nan=False))
def test_a_leader_is_lost_exactly_from_the_renew_deadline(last: float, gap: float) -> None:
    timing = LeaseTiming()
    assert renewal_overdue(last, last + gap, timing) == (gap >= timing.renew_deadline)


def test_default_timing_is_client_go_s() -> None:
    timing = LeaseTiming()
    assert (timing.lease_duration, timing.renew_deadline, timing.retry_period) == (15, 10, 2)


@pytest.mark.parametrize(
    ("lease", "deadline", "retry"),
    [(10, 10, 2), (15, 2, 2), (15, 10, 0), (5, 10, 2)],
)
def test_inconsistent_timing_is_refused(lease: float, deadline: float, retry: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        LeaseTiming(lease_duration=lease, renew_deadline=deadline, retry_period=retry)


def test_a_standby_waits_a_full_lease_from_when_it_first_saw_the_record() -> None:
    # The holder's wall clock may be skewed: only the candidate's own clock counts.
    old = datetime(2020, 1, 1, tzinfo=UTC) - timedelta(days=1)
    record = LeaseRecord(holder="op-a", lease_duration_seconds=15, renew_time=old)
    assert not may_take(record, "op-b", observed_at=100.0, now=114.9)
    assert may_take(record, "op-b", observed_at=100.0, now=115.0)
