"""Tasks as agent turns: the message, the conversation, busy conversations deferred."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import JsonValue

from agent_runtime.tasks import Task, TaskDeferredError, TaskFailedError
from agent_runtime.tasks.turns import task_conversation, task_message, turn_handler


class BusyError(Exception):
    pass


def task(input: Any, conversation: str | None = None) -> Task:
    return Task(id="a" * 32, tenant="t", input=input, conversation_id=conversation)


@given(message=st.text().filter(str.strip))
def test_the_message_is_the_input_or_its_message_field(message: str) -> None:
    assert task_message(task(message)) == message
    assert task_message(task({"message": message, "other": 1})) == message


@pytest.mark.parametrize("bad", [None, 3, "", "   ", [], {"text": "hi"}, {"message": 5}])
def test_an_input_that_is_no_message_fails_for_good(bad: Any) -> None:
    with pytest.raises(TaskFailedError):
        task_message(task(bad))


def test_a_task_without_a_conversation_keeps_one_of_its_own() -> None:
    assert task_conversation(task("hi", "c-1")) == "c-1"
    assert task_conversation(task("hi")) == "task-" + "a" * 32


async def test_the_turn_runs_and_a_busy_conversation_defers_the_task() -> None:
    calls: list[tuple[str, str]] = []

    async def run_turn(t: Task, conversation: str, message: str) -> JsonValue:
        calls.append((conversation, message))
        if message == "busy":
            raise BusyError("conversation c-1 is in another turn")
        return {"answer": message.upper()}

    handler = turn_handler(run_turn, busy=(BusyError,), retry_after=0.5)
    assert await handler(task({"message": "hi"}, "c-1")) == {"answer": "HI"}
    with pytest.raises(TaskDeferredError) as deferred:
        await handler(task("busy", "c-1"))
    assert deferred.value.retry_after == 0.5
    assert calls == [("c-1", "hi"), ("c-1", "busy")]
