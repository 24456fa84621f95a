"""The agent's pure step: (conversation state, turn progress) -> the next action, and
(model reply) -> the events that record it.

No I/O and no clock: the driver (`agent.turn`) passes `now` in, performs the action,
appends the events, and asks again. Every decision a turn makes is therefore a function
of what the log already holds, which is what lets another replica continue a turn that
this one began, and what the hypothesis tests check.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from pydantic import JsonValue

from agent_runtime.config.agent import TurnLimits
from agent_runtime.conversation.state import (
    ApprovalRequested,
    ConversationState,
    ErrorOccurred,
    Event,
    ModelCalled,
    ResponseGenerated,
    ToolCalled,
    ToolCallRecord,
)

StopReason = Literal[
    "answered",
    "maxModelCalls",
    "maxTokens",
    "timeout",
    "approvalRequired",
    "degraded",
    "failed",
]
"""Why a turn ended. Only `answered` carries the model's answer."""


@dataclass(frozen=True, slots=True)
class RequestedCall:
    """One tool call as the model asked for it (`arguments` is the raw JSON text)."""

    call_id: str
    tool: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ModelReply:
    """What one model call answered."""

    model: str
    content: str | None
    tool_calls: tuple[RequestedCall, ...] = ()
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class TurnStart:
    """Where a turn began: its counters are the state's minus these."""

    version: int
    model_calls: int
    tokens: int
    started_at: float

    @classmethod
    def of(cls, state: ConversationState, now: float) -> TurnStart:
        return cls(
            version=state.version,
            model_calls=state.model_calls,
            tokens=state.prompt_tokens + state.completion_tokens,
            started_at=now,
        )


@dataclass(frozen=True, slots=True)
class CallModel:
    """Ask the model (the history is in the log)."""


@dataclass(frozen=True, slots=True)
class RunTools:
    """Run these pending calls (at once; each result is appended as it comes)."""

    calls: tuple[ToolCallRecord, ...]


@dataclass(frozen=True, slots=True)
class Finish:
    """The turn is over, for `reason`; `answer` is the model's when it answered."""

    reason: StopReason
    answer: str | None = None
    detail: str = ""
    pending_approval: tuple[ToolCallRecord, ...] = field(default=())


Action = CallModel | RunTools | Finish


def next_action(
    state: ConversationState,
    start: TurnStart,
    limits: TurnLimits,
    now: float,
) -> Action:
    """What the turn does next, from the state the log folds to.

    Pending tool calls run before anything else (a turn never asks the model with a
    call unanswered); a call held for approval ends the turn (a decision resumes it);
    the limits are checked before each model call, so a turn ends with a reason instead
    of overrunning.
    """
    if state.pending_tool_calls:
        return RunTools(state.pending_tool_calls)
    if state.awaiting_approval:
        held = state.awaiting_approval
        return Finish(
            "approvalRequired",
            detail=f"{len(held)} tool call(s) wait for a person's approval",
            pending_approval=held,
        )
    if state.status == "responded":
        answer = next((m.content for m in reversed(state.messages) if m.role == "assistant"), None)
        return Finish("answered", answer=answer)
    if state.status == "failed":
        last = state.errors[-1] if state.errors else None
        reason: StopReason = "failed"
        if last is not None and last.kind in _LIMIT_KINDS:
            reason = _LIMIT_KINDS[last.kind]
        return Finish(reason, detail=last.message if last else "")
    limit = exceeded_limit(state, start, limits, now)
    if limit is not None:
        return Finish(limit[0], detail=limit[1])
    return CallModel()


_LIMIT_KINDS: dict[str, StopReason] = {
    "maxModelCalls": "maxModelCalls",
    "maxTokens": "maxTokens",
    "timeout": "timeout",
    "degraded": "degraded",
}


def exceeded_limit(
    state: ConversationState, start: TurnStart, limits: TurnLimits, now: float
) -> tuple[StopReason, str] | None:
    """The first limit this turn has reached, with a sentence saying so; None if none."""
    calls = state.model_calls - start.model_calls
    if calls >= limits.max_model_calls_per_turn:
        return "maxModelCalls", (
            f"the turn made {calls} model calls, the limit (maxModelCallsPerTurn)"
        )
    tokens = state.prompt_tokens + state.completion_tokens - start.tokens
    if tokens >= limits.max_tokens_per_turn:
        return "maxTokens", (
            f"the turn used {tokens} tokens, at least the limit "
            f"{limits.max_tokens_per_turn} (maxTokensPerTurn)"
        )
    elapsed = now - start.started_at
    if elapsed >= limits.turn_timeout_seconds:
        return "timeout", (
            f"the turn ran {elapsed:.1f}s, at least the limit "
            f"{limits.turn_timeout_seconds}s (turnTimeoutSeconds)"
        )
    return None


def scoped_call_id(version: int, model_call_id: str) -> str:
    """The call's id in the log: the version of its `modelCalled` event and the model's id.

    Models reuse ids across turns (`call_1`), and the log refuses a second call with one
    id; (conversation, version, model id) is unique, and the key a resumed turn uses to
    know a call was already made.
    """
    return f"v{version}.{model_call_id}"


def reply_events(
    state: ConversationState,
    reply: ModelReply,
    now: float,
    *,
    needs_approval: Callable[[str], bool] = lambda _tool: False,
) -> list[Event]:
    """The events that record `reply` after `state`.

    Arguments that are not a JSON object do not reach a tool: the call is recorded and
    failed at once with the reason, which goes back to the model as the call's result.
    A call to a tool that needs approval is recorded and held (`approvalRequested`).
    """
    called = ModelCalled(
        at=now,
        model=reply.model,
        prompt_tokens=reply.prompt_tokens,
        completion_tokens=reply.completion_tokens,
        latency_ms=reply.latency_ms,
        content=reply.content if reply.tool_calls else None,
    )
    events: list[Event] = [called]
    if not reply.tool_calls:
        events.append(ResponseGenerated(at=now, content=reply.content or ""))
        return events
    version = state.version + 1
    seen: set[str] = set()
    for requested in reply.tool_calls:
        call_id = scoped_call_id(version, requested.call_id)
        if call_id in seen:  # a model that repeats an id in one reply: keep the calls apart
            call_id = f"{call_id}.{len(seen)}"
        seen.add(call_id)
        arguments, problem = parse_arguments(requested.arguments)
        events.append(ToolCalled(at=now, call_id=call_id, tool=requested.tool, arguments=arguments))
        if problem is not None:
            events.append(
                ErrorOccurred(at=now, kind="invalidArguments", message=problem, call_id=call_id)
            )
        elif needs_approval(requested.tool):
            events.append(ApprovalRequested(at=now, call_id=call_id))
    return events


def parse_arguments(text: str) -> tuple[dict[str, JsonValue], str | None]:
    """The arguments object, or ({}, why not)."""
    if not text.strip():
        return {}, None
    try:
        value = json.loads(text)
    except ValueError as exc:
        return {}, f"the arguments are not valid JSON: {exc}"
    if not isinstance(value, dict):
        return {}, f"the arguments must be a JSON object, not {type(value).__name__}"
    return value, None


def limit_event(reason: StopReason, detail: str, now: float) -> ErrorOccurred:
    """The event that records a turn ended by a limit (or by the model being unavailable)."""
    return ErrorOccurred(at=now, kind=reason, message=detail, fatal=True)
