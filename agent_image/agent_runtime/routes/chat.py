"""Turns and conversations over HTTP.

    POST /v1/chat                        {"message", "tenant", "conversationId"?, "stream"?}
                                         -> {conversationId, version, answer, stopReason,
                                             detail, steps, usage, pendingApproval}
                                         stream: server-sent events start, toolCall,
                                         toolResult, delta, end
    GET  /v1/conversations/{id}?tenant=  history, version, status, usage
    GET  /v1/conversations/{id}/events?tenant=&after=   the log, as (version, event)
    GET  /v1/conversations/{id}/approvals?tenant=       the tool calls waiting for a decision
    POST /v1/conversations/{id}/approvals {"decisions": [{"callId", "approve", "reason"?}],
                                         "tenant"?, "stream"?} -> the resumed turn's answer
                                         (the same body or stream as /v1/chat)
    POST /v1/chat/completions            OpenAI-compatible facade: the pool as a model
                                         (tenant: `user` or the credentials'; the
                                         `X-Agentpool-Conversation` header, else a new one)

Every route needs an authenticated caller (`access.CallerDep`); the tenant is the one
its credentials carry, or the one named (`tenant`, `user` on the facade, `?tenant=`) if
they allow it (`Caller.tenant`: 403 otherwise). A turn refused before it starts is an
HTTP error (409 busy, 404 another tenant's conversation, 503 draining or full); once a
stream has started, the turn runs to its end even if the client goes away, so nothing
acknowledged is lost.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, Literal, Self

import structlog
from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator
from pydantic.alias_generators import to_camel

from agent_runtime.access import CallerDep
from agent_runtime.agent.approval import Decision
from agent_runtime.agent.turn import Agent, DecisionRequest, Emit, TurnOutcome, TurnRequest
from agent_runtime.api_errors import InvalidRequestError, NoAgentError, openapi_responses
from agent_runtime.config.limits import CONVERSATION_ID_MAX_CHARS, TENANT_PATTERN
from agent_runtime.conversation.state import check_conversation_id
from agent_runtime.runtime import Runtime

log = structlog.get_logger(__name__)

router = APIRouter()

MESSAGE_MAX_CHARS = 100_000
"""One message's length; longer input belongs in a file or a tool, not a turn."""


class _Body(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class ChatRequest(_Body):
    message: str = Field(min_length=1, max_length=MESSAGE_MAX_CHARS)
    tenant: str | None = Field(
        default=None,
        pattern=TENANT_PATTERN,
        description="The tenant to act in; may be left out when the credentials carry one.",
    )
    conversation_id: str | None = Field(
        default=None, min_length=1, max_length=CONVERSATION_ID_MAX_CHARS
    )
    stream: bool = False


class DecisionBody(_Body):
    call_id: str = Field(
        min_length=1, max_length=512, description="The held call's id (`pendingApproval`)."
    )
    approve: bool = Field(description="true runs the call; false refuses it.")
    reason: str = Field(
        default="", max_length=2000, description="Why; a refusal's reason is shown to the model."
    )


class ApprovalsRequest(_Body):
    decisions: list[DecisionBody] = Field(min_length=1, max_length=256)
    tenant: str | None = Field(
        default=None,
        pattern=TENANT_PATTERN,
        description="The tenant to act in; may be left out when the credentials carry one.",
    )
    stream: bool = False

    @model_validator(mode="after")
    def _one_decision_per_call(self) -> Self:
        ids = [d.call_id for d in self.decisions]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"each call is decided once; named more than once: {twice}")
        return self


class CompletionMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[dict[str, JsonValue]] | None = None


class CompletionRequest(BaseModel):
    """The fields of an OpenAI chat-completions request the facade reads (others ignored)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    messages: list[CompletionMessage] = Field(min_length=1)
    user: str | None = Field(default=None, pattern=TENANT_PATTERN)
    stream: bool = False


def _runtime(request: Request) -> Runtime:
    found: Runtime = request.app.state.runtime
    return found


def _agent(request: Request) -> Agent:
    agent = _runtime(request).agent
    if agent is None:
        raise NoAgentError
    return agent


async def _run(
    request: Request,
    turn: TurnRequest,
    stream: bool,
    drive: Callable[[Agent, Emit | None], Awaitable[TurnOutcome]] | None = None,
) -> TurnOutcome | AsyncIterator[dict[str, Any]]:
    """Run a turn in its own task (a client that goes away does not cut it short).

    `drive` runs it (default: `Agent.run_turn(turn)`); `turn` names the conversation
    and tenant for the logs. Streaming: wait until the turn has started (or failed to
    start, which raises here and becomes an HTTP error), then hand back the stream of
    its steps.
    """
    runtime, agent = _runtime(request), _agent(request)
    steps: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    async def emit(step: dict[str, Any]) -> None:
        steps.put_nowait(step)

    async def work() -> TurnOutcome:
        # Every log line of the turn (tools, model, store) carries who and what it is
        # for; the request's id is bound already (`request_metrics`).
        with structlog.contextvars.bound_contextvars(
            pool=str(runtime.config.pool),
            tenant=turn.tenant,
            conversation=turn.conversation_id,
        ):
            try:
                # A caller retrying the same conversation counts once as refused demand.
                caller = f"{turn.tenant}/{turn.conversation_id}"
                with runtime.admission.turn(caller):
                    if drive is None:
                        return await agent.run_turn(turn, emit if stream else None)
                    return await drive(agent, emit if stream else None)
            finally:
                steps.put_nowait(None)

    task = asyncio.create_task(work(), name=f"turn {turn.conversation_id}")
    running: set[asyncio.Task[TurnOutcome]] = request.app.state.turns
    running.add(task)
    task.add_done_callback(running.discard)
    if not stream:
        return await asyncio.shield(task)
    first = await steps.get()
    if first is None:
        await task  # it ended before starting: raise its error as an HTTP answer
        raise AssertionError("a turn that starts always emits a start step")

    async def rest() -> AsyncIterator[dict[str, Any]]:
        yield first
        while (step := await steps.get()) is not None:
            yield step
        await asyncio.wait([task])
        error = None if task.cancelled() else task.exception()
        if error is not None:  # the turn failed after it started: say so in the stream
            yield {"type": "error", "error": {"type": type(error).__name__, "message": str(error)}}

    return rest()


def _answer(body: dict[str, Any]) -> JSONResponse:
    """The answer as it is: plain JSON already, so FastAPI's generic encoding pass over
    it (a measurable part of a turn's overhead, benchmarks/README.md) is not needed."""
    return JSONResponse(body)


def _sse(steps: AsyncIterator[dict[str, Any]]) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        async for step in steps:
            yield f"event: {step['type']}\ndata: {json.dumps(step)}\n\n".encode()

    return StreamingResponse(
        body(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )


@router.post("/v1/chat", response_model=None, responses=openapi_responses(403, 404, 409, 502))
async def chat(
    body: ChatRequest, request: Request, caller: CallerDep
) -> JSONResponse | StreamingResponse:
    tenant = caller.tenant(body.tenant)
    conversation_id = body.conversation_id or uuid.uuid4().hex
    turn = TurnRequest(
        conversation_id, tenant=tenant, message=body.message, fresh=not body.conversation_id
    )
    result = await _run(request, turn, body.stream)
    if isinstance(result, TurnOutcome):
        return _answer(result.as_dict())
    return _sse(result)


@router.get("/v1/conversations/{conversation_id}", responses=openapi_responses(403, 404, 502))
async def conversation(
    conversation_id: Annotated[str, Path(max_length=CONVERSATION_ID_MAX_CHARS)],
    request: Request,
    caller: CallerDep,
    requested: Annotated[str | None, Query(alias="tenant", pattern=TENANT_PATTERN)] = None,
) -> dict[str, Any]:
    tenant = caller.tenant(requested)
    conversations = _runtime(request).conversations
    check_conversation_id(conversation_id)
    await conversations.check_owner(conversation_id, tenant)
    state, _ = await conversations.load(conversation_id)
    return {
        "conversationId": conversation_id,
        "version": state.version,
        "status": state.status,
        "messages": [m.model_dump(mode="json", by_alias=True) for m in state.messages],
        "toolCalls": [c.model_dump(mode="json", by_alias=True) for c in state.tool_calls],
        "usage": {
            "modelCalls": state.model_calls,
            "promptTokens": state.prompt_tokens,
            "completionTokens": state.completion_tokens,
        },
    }


@router.get(
    "/v1/conversations/{conversation_id}/events", responses=openapi_responses(403, 404, 502)
)
async def conversation_events(
    conversation_id: Annotated[str, Path(max_length=CONVERSATION_ID_MAX_CHARS)],
    request: Request,
    caller: CallerDep,
    requested: Annotated[str | None, Query(alias="tenant", pattern=TENANT_PATTERN)] = None,
    after: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    tenant = caller.tenant(requested)
    conversations = _runtime(request).conversations
    check_conversation_id(conversation_id)
    await conversations.check_owner(conversation_id, tenant)
    _, events = await conversations.load(conversation_id)
    return {
        "conversationId": conversation_id,
        "events": [
            {"version": v, "event": e.model_dump(mode="json", by_alias=True)}
            for v, e in events
            if v > after
        ],
    }


@router.get("/v1/conversations/{conversation_id}/approvals", responses=openapi_responses(403, 404))
async def approvals(
    conversation_id: Annotated[str, Path(max_length=CONVERSATION_ID_MAX_CHARS)],
    request: Request,
    caller: CallerDep,
    requested: Annotated[str | None, Query(alias="tenant", pattern=TENANT_PATTERN)] = None,
) -> dict[str, Any]:
    """The tool calls of the conversation that wait for a person's decision."""
    tenant = caller.tenant(requested)
    conversations = _runtime(request).conversations
    check_conversation_id(conversation_id)
    await conversations.check_owner(conversation_id, tenant)
    state, _ = await conversations.load(conversation_id)
    return {
        "conversationId": conversation_id,
        "version": state.version,
        "pendingApproval": [
            {"callId": c.call_id, "tool": c.tool, "arguments": c.arguments}
            for c in state.awaiting_approval
        ],
    }


@router.post(
    "/v1/conversations/{conversation_id}/approvals",
    response_model=None,
    responses=openapi_responses(403, 404, 409),
)
async def decide(
    conversation_id: Annotated[str, Path(min_length=1, max_length=CONVERSATION_ID_MAX_CHARS)],
    body: ApprovalsRequest,
    request: Request,
    caller: CallerDep,
) -> JSONResponse | StreamingResponse:
    """Approve or refuse held tool calls, and resume the turn they ended.

    Approved calls run (once: a call already decided is 409, nothing applied), refused
    ones go back to the model as their results; the answer is the resumed turn's, as
    from `POST /v1/chat`. 404 for a call the conversation never had.
    """
    tenant = caller.tenant(body.tenant)
    check_conversation_id(conversation_id)
    decision = DecisionRequest(
        conversation_id,
        tenant,
        tuple(Decision(d.call_id, d.approve, d.reason) for d in body.decisions),
        by=caller.subject,
    )

    async def drive(agent: Agent, emit: Emit | None) -> TurnOutcome:
        return await agent.decide(decision, emit)

    turn = TurnRequest(conversation_id, tenant=tenant, message="")
    result = await _run(request, turn, body.stream, drive)
    if isinstance(result, TurnOutcome):
        return _answer(result.as_dict())
    return _sse(result)


@router.post(
    "/v1/chat/completions", response_model=None, responses=openapi_responses(403, 404, 409, 502)
)
async def chat_completions(
    body: CompletionRequest,
    request: Request,
    caller: CallerDep,
    conversation: str | None = Header(
        default=None,
        alias="X-Agentpool-Conversation",
        min_length=1,
        max_length=CONVERSATION_ID_MAX_CHARS,
    ),
) -> JSONResponse | StreamingResponse:
    tenant = caller.tenant(body.user)  # `user` names the tenant when the credentials allow
    message = _last_user_text(body.messages)
    turn = TurnRequest(
        conversation or uuid.uuid4().hex, tenant=tenant, message=message, fresh=not conversation
    )
    result = await _run(request, turn, body.stream)
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    if isinstance(result, TurnOutcome):
        return _answer(_completion(completion_id, created, body.model, result))
    return _completion_stream(completion_id, created, body.model, result)


def _last_user_text(messages: list[CompletionMessage]) -> str:
    for message in reversed(messages):
        if message.role != "user":
            continue
        content = message.content
        if isinstance(content, list):
            content = "".join(
                str(part.get("text", "")) for part in content if part.get("type") == "text"
            )
        if content:
            if len(content) > MESSAGE_MAX_CHARS:
                raise InvalidRequestError(f"the message is longer than {MESSAGE_MAX_CHARS} chars")
            return content
    raise InvalidRequestError("the request has no user message with text")


_FINISH = {"answered": "stop", "maxTokens": "length"}


def _completion(cid: str, created: int, model: str, outcome: TurnOutcome) -> dict[str, Any]:
    usage = outcome.usage
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": _text(outcome)},
                "finish_reason": _FINISH.get(outcome.reason, "stop"),
            }
        ],
        "usage": {
            "prompt_tokens": usage["promptTokens"],
            "completion_tokens": usage["completionTokens"],
            "total_tokens": usage["promptTokens"] + usage["completionTokens"],
        },
        "agentpool": outcome.as_dict(),
    }


def _text(outcome: TurnOutcome) -> str:
    if outcome.answer is not None:
        return outcome.answer
    return f"[{outcome.reason}] {outcome.detail}"


def _completion_stream(
    cid: str, created: int, model: str, steps: AsyncIterator[dict[str, Any]]
) -> StreamingResponse:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        body = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(body)}\n\n".encode()

    async def body() -> AsyncIterator[bytes]:
        yield chunk({"role": "assistant", "content": ""})
        said = False
        async for step in steps:
            if step["type"] == "delta":
                said = True
                yield chunk({"content": step["text"]})
            elif step["type"] == "end":
                if not said:  # no answer from the model: the reason is the content
                    text = step["answer"] or f"[{step['stopReason']}] {step['detail']}"
                    yield chunk({"content": text})
                yield chunk({}, _FINISH.get(step["stopReason"], "stop"))
        yield b"data: [DONE]\n\n"

    return StreamingResponse(body(), media_type="text/event-stream")
