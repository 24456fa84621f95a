"""Tasks as data: the state machine the Lua scripts follow, and the record codec."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_runtime.config import PoolIdentity
from agent_runtime.memory.keys import KeySpace
from agent_runtime.tasks import scripts
from agent_runtime.tasks.errors import CorruptTaskError
from agent_runtime.tasks.model import (
    FINAL,
    TRANSITIONS,
    InvalidTransitionError,
    Move,
    Task,
    TaskStatus,
    decode_record,
    encode_input,
    encode_new,
    fingerprint,
    sources,
    transition,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
tenants = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.:@-]{0,20}\Z")
tasks = st.builds(
    Task,
    id=st.from_regex(r"\A[0-9a-f]{32}\Z"),
    tenant=tenants,
    input=json_values,
    conversation_id=st.none() | st.text(min_size=1, max_size=40),
    idempotency_key=st.none() | st.text(min_size=1, max_size=40),
    deliveries=st.just(0),
    created_at=st.floats(min_value=0, max_value=4e9),
)


def _stored(fields: dict[str, str], **extra: str) -> dict[bytes, bytes]:
    return {k.encode(): v.encode() for k, v in {**fields, **extra}.items()}


@given(task=tasks, status=st.sampled_from(TaskStatus))
def test_a_new_record_decodes_to_the_same_task(task: Task, status: TaskStatus) -> None:
    record = decode_record(_stored(encode_new(task), status=status.value))
    assert record.task == task
    assert record.status == status
    assert record.result is None
    assert record.error is None


@given(result=json_values)
def test_a_stored_result_decodes_to_the_same_value(result: object) -> None:
    task = Task(id="0" * 32, tenant="t", input="x")
    fields = _stored(encode_new(task), status="succeeded", result=encode_input(result))  # type: ignore[arg-type]
    assert decode_record(fields).result == result


@given(a=json_values, b=json_values, tenant=tenants)
def test_the_fingerprint_tells_different_work_apart(a: object, b: object, tenant: str) -> None:
    same = encode_input(a) == encode_input(b)  # type: ignore[arg-type]
    fa = fingerprint(tenant, encode_input(a), None)  # type: ignore[arg-type]
    fb = fingerprint(tenant, encode_input(b), None)  # type: ignore[arg-type]
    assert (fa == fb) == same
    assert fingerprint(tenant, encode_input(a), "c1") != fa  # type: ignore[arg-type]


def test_the_input_encoding_ignores_key_order() -> None:
    assert encode_input({"a": 1, "b": [1, 2]}) == encode_input({"b": [1, 2], "a": 1})


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {b"id": b"x", b"tenant": b"t", b"input": b"1", b"status": b"sleeping"},
        {b"id": b"x", b"tenant": b"t", b"input": b"{not json", b"status": b"queued"},
        {b"tenant": b"t", b"input": b"1", b"status": b"queued"},
        {b"id": b"x", b"tenant": b"t", b"input": b"1", b"status": b"queued", b"created": b"x"},
    ],
)
def test_records_that_are_not_ours_are_refused(fields: dict[bytes, bytes]) -> None:
    with pytest.raises(CorruptTaskError):
        decode_record(fields)


@given(walk=st.lists(st.sampled_from(Move), max_size=30))
def test_no_move_leaves_a_final_state(walk: list[Move]) -> None:
    status = TaskStatus.QUEUED
    for move in walk:
        try:
            after = transition(status, move)
        except InvalidTransitionError:
            assert (status, move) not in TRANSITIONS
            continue
        assert status not in FINAL
        assert after in sources(Move.START) or after in FINAL or after == TaskStatus.RUNNING
        status = after


def test_every_state_is_reachable_and_every_live_state_can_end() -> None:
    reachable = {TaskStatus.WAITING, TaskStatus.QUEUED}
    while True:
        more = {after for (before, _), after in TRANSITIONS.items() if before in reachable}
        if more <= reachable:
            break
        reachable |= more
    assert reachable == set(TaskStatus)
    for status in set(TaskStatus) - FINAL:
        assert any(before == status for (before, _) in TRANSITIONS)


def test_a_running_task_can_be_started_again_by_the_worker_that_takes_it_over() -> None:
    assert transition(TaskStatus.RUNNING, Move.START) == TaskStatus.RUNNING
    assert sources(Move.START) == {TaskStatus.QUEUED, TaskStatus.RUNNING}
    with pytest.raises(InvalidTransitionError):
        transition(TaskStatus.SUCCEEDED, Move.START)


def test_the_scripts_write_only_statuses_of_the_model() -> None:
    every = "\n".join(
        [scripts.ENQUEUE, scripts.START, scripts.FINISH, scripts.REQUEUE, scripts.DEPTH]
    )
    written = set(re.findall(r"'status', '([a-z_]+)'", every))
    compared = set(re.findall(r"(?:status|'status'\)) [~=]= '([a-z_]+)'", every))
    assert written | compared <= {s.value for s in TaskStatus}
    assert written >= {"queued", "waiting", "running"}


@given(
    a=st.builds(PoolIdentity, namespace=st.just("a"), name=st.just("p")),
    tenant_a=tenants,
    tenant_b=tenants,
    key=st.text(min_size=1, max_size=50),
)
def test_idempotency_keys_are_scoped_by_tenant_and_pool(
    a: PoolIdentity, tenant_a: str, tenant_b: str, key: str
) -> None:
    keys = KeySpace("agentpool", a)
    other_pool = KeySpace("agentpool", PoolIdentity(namespace="b", name="p"))
    same = tenant_a == tenant_b
    assert (keys.task_idempotency(tenant_a, key) == keys.task_idempotency(tenant_b, key)) == same
    assert keys.task_idempotency(tenant_a, key) != other_pool.task_idempotency(tenant_a, key)
    for name in (keys.task_stream, keys.task_dead_letters, keys.task("0" * 32)):
        assert name.startswith(keys.root + ":tasks:")
