"""The task routes: enqueue work to be done asynchronously, and ask how it went.

    POST /v1/tasks        {"input": ..., "conversationId"?, "tenant"?, "idempotencyKey"?}
                          -> 202 {"id", "status", "created"}, Location: /v1/tasks/{id}
    GET  /v1/tasks/{id}   ?tenant=... -> status, result, error, deliveries, times

Callers are authenticated (`access.authenticated`); the tenant is the one the credentials
carry, or the one named (`tenant` in the body or the query) if they allow it. The same
idempotency key (per tenant) answers the same task id while the task's record is kept;
reused for other work it is a 409. Another tenant's task is a 404, exactly like a task
that does not exist. Redis down is a 503 (nothing was enqueued).
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, JsonValue
from pydantic.alias_generators import to_camel

from agent_runtime.access import CallerDep
from agent_runtime.api_errors import openapi_responses
from agent_runtime.config.limits import (
    CONVERSATION_ID_MAX_CHARS,
    IDEMPOTENCY_KEY_MAX_CHARS,
    TENANT_PATTERN,
)
from agent_runtime.runtime import Runtime
from agent_runtime.tasks import (
    TaskQueue,
    TaskRecord,
    TasksDisabledError,
    TaskStatus,
)

router = APIRouter(tags=["tasks"])


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
    tenant: str | None = Field(
        default=None,
        pattern=TENANT_PATTERN,
        description="The tenant to act in; may be left out when the credentials carry one.",
    )
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


@router.post(
    "/v1/tasks",
    status_code=202,
    response_model=TaskAccepted,
    responses=openapi_responses(403, 404, 409, 502),
)
async def enqueue(
    body: TaskRequest, request: Request, response: Response, caller: CallerDep
) -> TaskAccepted:
    tenant = caller.tenant(body.tenant)
    queue = _queue(request)
    made = await queue.enqueue(
        tenant,
        body.input,
        conversation_id=body.conversation_id,
        idempotency_key=body.idempotency_key,
    )
    response.headers["Location"] = f"/v1/tasks/{made.id}"
    return TaskAccepted(id=made.id, status=made.status, created=made.created)


@router.get(
    "/v1/tasks/{task_id}", response_model=TaskView, responses=openapi_responses(403, 404, 502)
)
async def get_task(
    task_id: str,
    request: Request,
    caller: CallerDep,
    tenant: str | None = Query(default=None, pattern=TENANT_PATTERN),
) -> TaskView:
    record = await _queue(request).get(task_id, tenant=caller.tenant(tenant))
    return TaskView.of(record)
