"""A task handler that runs an agent turn: how tasks become turns.

A task's `input` is the message: a string, or `{"message": "..."}`. Its conversation is
the task's `conversationId`, or `task-{id}` when none was given (so a re-delivered task
continues the conversation its first delivery began, rather than starting another).
A turn refused because its conversation is busy (another turn holds it) is deferred,
not failed: it comes back after a pause without using up a delivery.

The turn itself is passed in (`run_turn`), so this module needs nothing from the agent
package: the runtime wires it, e.g.::

    async def run_turn(task: Task, conversation_id: str, message: str) -> JsonValue:
        outcome = await agent.run_turn(TurnRequest(conversation_id, task.tenant, message))
        return outcome.as_dict()

    handler = turn_handler(run_turn, busy=(ConversationBusyError,))
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pydantic import JsonValue

from agent_runtime.tasks.errors import TaskDeferredError, TaskFailedError
from agent_runtime.tasks.model import Task
from agent_runtime.tasks.worker import TaskHandler

RunTurn = Callable[[Task, str, str], Awaitable[JsonValue]]
"""(task, conversation id, message) -> the turn's result."""


def task_message(task: Task) -> str:
    """The message a task carries, or `TaskFailedError` (retrying cannot fix the input)."""
    value = task.input
    if isinstance(value, dict):
        value = value.get("message")
    if not isinstance(value, str) or not value.strip():
        raise TaskFailedError(
            'a turn task\'s input is the message: a non-empty string or {"message": "..."}'
        )
    return value


def task_conversation(task: Task) -> str:
    """The conversation the task's turn belongs to."""
    return task.conversation_id or f"task-{task.id}"


def turn_handler(
    run_turn: RunTurn,
    *,
    busy: tuple[type[Exception], ...] = (),
    retry_after: float = 1.0,
) -> TaskHandler:
    """A handler that runs `run_turn` for each task; `busy` errors defer the task."""

    async def handle(task: Task) -> JsonValue:
        message = task_message(task)
        try:
            return await run_turn(task, task_conversation(task), message)
        except busy as exc:
            raise TaskDeferredError(str(exc), retry_after=retry_after) from exc

    return handle
