"""The errors the task queue raises, for the HTTP layer and the handler to use."""

from __future__ import annotations


class TaskError(Exception):
    """Base of every task-queue error."""


class TaskNotFoundError(TaskError):
    """No such task for this tenant (never created, expired, or another tenant's)."""


class TasksDisabledError(TaskError):
    """This pool does not run tasks (`tasks.enabled` is false)."""


class IdempotencyConflictError(TaskError):
    """An idempotency key was reused with a different input or conversation."""

    def __init__(self, key: str, task_id: str) -> None:
        super().__init__(
            f"idempotency key {key!r} already created task {task_id!r} with a different "
            "input or conversation; use a new key for a different task"
        )
        self.key = key
        self.task_id = task_id


class InvalidTaskError(TaskError, ValueError):
    """A task that cannot be enqueued as given (too large, bad ids)."""


class TaskTooLargeError(InvalidTaskError):
    """The task's input is larger than `tasks.maxInputBytes`."""


class TaskFailedError(Exception):
    """Raised by a handler to fail its task for good: no retry, the message is stored.

    Any other exception from a handler counts as a failed delivery: the task is queued
    again until `tasks.maxDeliveries`, then dead-lettered.
    """


class CorruptTaskError(TaskError):
    """A task record in Redis is not what this runtime writes."""


class TaskDeferredError(Exception):
    """Raised by a handler that cannot run its task yet (e.g. its conversation is busy
    with a chat turn): the task goes back to the queue after `retry_after` seconds,
    without using up a delivery."""

    def __init__(self, reason: str, *, retry_after: float = 1.0) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
