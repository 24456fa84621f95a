"""The task routes: enqueue work to be done asynchronously, and ask how it went.

    POST /v1/tasks        {"input": ..., "conversationId"?, "tenant"?, "idempotencyKey"?}
                          -> 202 {"id", "status", "created"}, Location: /v1/tasks/{id}
    GET  /v1/tasks/{id}   ?tenant=... -> status, result, error, deliveries, times

The same idempotency key (per tenant) answers the same task id while the task's record is
kept; reused for other work it is a 409. Another tenant's task is a 404, exactly like a
task that does not exist. Redis down is a 503 (nothing was enqueued).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, JsonValue
from pydantic.alias_generators import to_camel

from agent_runtime.config.limits import (
    CONVERSATION_ID_MAX_CHARS,
    IDEMPOTENCY_KEY_MAX_CHARS,
    TENANT_PATTERN,
)
from agent_runtime.runtime import Runtime
from agent_runtime.tasks import (
    InvalidTaskError,
    TaskQueue,
    TaskRecord,
    TasksDisabledError,
    TaskStatus,
)

router = APIRouter(tags=["tasks"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such task for this tenant, or tasks are not enabled."},
    409: {"description": "The idempotency key was used for other work."},
    413: {"description": "The input is larger than tasks.maxInputBytes."},
    422: {"description": "The request is not valid."},
    503: {"description": "Redis is unreachable; nothing was enqueued."},
}


class _Body(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class TaskRequest(_Body):
    input: JsonValue = Field(description="What the task is to do (for an agent: the message).")
    conversation_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=CONVERSATION_ID_MAX_CHARS,
        description="Tasks of one conversation run one at a time, in order.",
    )
    tenant: str | None = Field(default=None, pattern=TENANT_PATTERN)
    idempotency_key: str | None = Field(
        default=None, min_length=1, max_length=IDEMPOTENCY_KEY_MAX_CHARS
    )


class TaskAccepted(_Body):
    id: str
    status: TaskStatus
    created: bool = Field(description="False when the idempotency key named an existing task.")


class TaskView(_Body):
    id: str
    status: TaskStatus
    tenant: str
    conversation_id: str | None
    idempotency_key: str | None
    deliveries: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    result: JsonValue
    error: str | None

    @classmethod
    def of(cls, record: TaskRecord) -> TaskView:
        task = record.task
        return cls(
            id=task.id,
            status=record.status,
            tenant=task.tenant,
            conversation_id=task.conversation_id,
            idempotency_key=task.idempotency_key,
            deliveries=task.deliveries,
            created_at=task.created_at,
            started_at=record.started_at,
            finished_at=record.finished_at,
            result=record.result,
            error=record.error,
        )


def _queue(request: Request) -> TaskQueue:
    runtime: Runtime = request.app.state.runtime
    if runtime.tasks is None:
        raise TasksDisabledError("tasks are not enabled on this pool (tasks.enabled)")
    return runtime.tasks


def _tenant(requested: str | None) -> str:
    # Until the API authenticates callers, the tenant is stated by the caller and never
    # defaulted. With authentication: `caller.tenant(requested)`.
    if requested is None:
        raise InvalidTaskError("tenant is required")
    return requested


@router.post("/v1/tasks", status_code=202, response_model=TaskAccepted, responses=_ERRORS)
async def enqueue(body: TaskRequest, request: Request, response: Response) -> TaskAccepted:
    queue = _queue(request)
    made = await queue.enqueue(
        _tenant(body.tenant),
        body.input,
        conversation_id=body.conversation_id,
        idempotency_key=body.idempotency_key,
    )
    response.headers["Location"] = f"/v1/tasks/{made.id}"
    return TaskAccepted(id=made.id, status=made.status, created=made.created)


@router.get("/v1/tasks/{task_id}", response_model=TaskView, responses=_ERRORS)
async def get_task(
    task_id: str,
    request: Request,
    tenant: str | None = Query(default=None, pattern=TENANT_PATTERN),
) -> TaskView:
    record = await _queue(request).get(task_id, tenant=_tenant(tenant))
    return TaskView.of(record)
