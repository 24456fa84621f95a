"""Durable tasks: a Redis Stream per pool that every replica consumes (see queue.py)."""

from agent_runtime.tasks.errors import (
    IdempotencyConflictError,
    InvalidTaskError,
    TaskDeferredError,
    TaskError,
    TaskFailedError,
    TaskNotFoundError,
    TasksDisabledError,
    TaskTooLargeError,
)
from agent_runtime.tasks.model import Task, TaskRecord, TaskStatus
from agent_runtime.tasks.queue import Depth, Enqueued, TaskQueue
from agent_runtime.tasks.worker import TaskHandler, TaskWorker

__all__ = [
    "Depth",
    "Enqueued",
    "IdempotencyConflictError",
    "InvalidTaskError",
    "Task",
    "TaskDeferredError",
    "TaskError",
    "TaskFailedError",
    "TaskHandler",
    "TaskNotFoundError",
    "TaskQueue",
    "TaskRecord",
    "TaskStatus",
    "TaskTooLargeError",
    "TaskWorker",
    "TasksDisabledError",
]
