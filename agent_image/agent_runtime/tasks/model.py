"""Tasks as data: their states, the moves between them, and their Redis encoding. Pure.

A task's life, per pool::

    waiting --promote--> queued --start--> running --complete--> succeeded
       (behind another      ^                 |  \\--fail-------> failed
        task of its         |                 |   \\--give_up---> dead (dead-letter stream)
        conversation)       +----retry--------+
                            +----hand_back----+   (drain: the attempt does not count)
    running --start--> running                    (reclaimed after its worker's lease ran out)
    queued  --give_up--> dead                     (delivered too often: workers kept dying)

The Lua scripts in `scripts.py` make these moves atomically in Redis; `TRANSITIONS`
is the table they follow, stated once here and checked by hypothesis
(tests/unit/test_tasks_model.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from pydantic import JsonValue

from agent_runtime.tasks.errors import CorruptTaskError


class TaskStatus(StrEnum):
    WAITING = "waiting"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD = "dead"


class Move(StrEnum):
    PROMOTE = "promote"
    START = "start"
    COMPLETE = "complete"
    FAIL = "fail"
    RETRY = "retry"
    HAND_BACK = "hand_back"
    GIVE_UP = "give_up"


FINAL: Final = frozenset({TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.DEAD})
"""States a task never leaves (its record expires after the retention)."""

TRANSITIONS: Final[dict[tuple[TaskStatus, Move], TaskStatus]] = {
    (TaskStatus.WAITING, Move.PROMOTE): TaskStatus.QUEUED,
    (TaskStatus.QUEUED, Move.START): TaskStatus.RUNNING,
    (TaskStatus.RUNNING, Move.START): TaskStatus.RUNNING,
    (TaskStatus.RUNNING, Move.COMPLETE): TaskStatus.SUCCEEDED,
    (TaskStatus.RUNNING, Move.FAIL): TaskStatus.FAILED,
    (TaskStatus.RUNNING, Move.RETRY): TaskStatus.QUEUED,
    (TaskStatus.RUNNING, Move.HAND_BACK): TaskStatus.QUEUED,
    (TaskStatus.RUNNING, Move.GIVE_UP): TaskStatus.DEAD,
    (TaskStatus.QUEUED, Move.GIVE_UP): TaskStatus.DEAD,
}


class InvalidTransitionError(ValueError):
    """A move that the task's state does not allow."""


def transition(status: TaskStatus, move: Move) -> TaskStatus:
    """The state after `move`, or `InvalidTransitionError`."""
    try:
        return TRANSITIONS[(status, move)]
    except KeyError:
        raise InvalidTransitionError(f"a {status} task cannot {move}") from None


def sources(move: Move) -> frozenset[TaskStatus]:
    """The states `move` may start from (what the Lua scripts check)."""
    return frozenset(s for (s, m) in TRANSITIONS if m == move)


@dataclass(frozen=True)
class Task:
    """What a handler is given: one unit of work, possibly a re-delivery of it."""

    id: str
    tenant: str
    input: JsonValue
    conversation_id: str | None = None
    idempotency_key: str | None = None
    deliveries: int = 1
    created_at: float = 0.0


@dataclass(frozen=True)
class TaskRecord:
    """Everything stored about a task: what `GET /v1/tasks/{id}` shows."""

    task: Task
    status: TaskStatus
    started_at: float | None = None
    finished_at: float | None = None
    result: JsonValue = None
    error: str | None = None


def fingerprint(tenant: str, input_json: str, conversation_id: str | None) -> str:
    """What must match for an idempotency key to be reused (same work, same place)."""
    text = json.dumps([tenant, input_json, conversation_id], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def encode_input(value: JsonValue) -> str:
    """The canonical JSON of an input (sorted keys: same data, same fingerprint)."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def encode_new(task: Task) -> dict[str, str]:
    """The fields of a new task's record (its status is set by the enqueue script)."""
    input_json = encode_input(task.input)
    return {
        "id": task.id,
        "tenant": task.tenant,
        "input": input_json,
        "conv": task.conversation_id or "",
        "idem": task.idempotency_key or "",
        "fp": fingerprint(task.tenant, input_json, task.conversation_id),
        "created": repr(task.created_at),
        "deliveries": "0",
    }


def _text(fields: dict[bytes, bytes], name: str) -> str | None:
    raw = fields.get(name.encode())
    return None if raw is None else raw.decode()


def _time(fields: dict[bytes, bytes], name: str) -> float | None:
    raw = _text(fields, name)
    return float(raw) if raw else None


def decode_record(fields: dict[bytes, bytes]) -> TaskRecord:
    """A stored record, or `CorruptTaskError` if it is not one of ours."""
    try:
        task_id = _text(fields, "id")
        tenant = _text(fields, "tenant")
        input_json = _text(fields, "input")
        status = TaskStatus(_text(fields, "status") or "")
        if task_id is None or tenant is None or input_json is None:
            raise KeyError("id, tenant or input")
        result_json = _text(fields, "result")
        task = Task(
            id=task_id,
            tenant=tenant,
            input=json.loads(input_json),
            conversation_id=_text(fields, "conv") or None,
            idempotency_key=_text(fields, "idem") or None,
            deliveries=int(_text(fields, "deliveries") or 0),
            created_at=_time(fields, "created") or 0.0,
        )
        return TaskRecord(
            task=task,
            status=status,
            started_at=_time(fields, "started"),
            finished_at=_time(fields, "finished"),
            result=json.loads(result_json) if result_json else None,
            error=_text(fields, "error") or None,
        )
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        raise CorruptTaskError(f"task record is not readable: {exc}") from exc
