"""Conversation state: immutable, event-sourced, a pure fold.

- `ConversationState` is frozen; `apply(state, event)` is a pure fold that returns a
  new state (or raises `InvalidEventError` for an impossible transition).
- Events and snapshots are encoded as JSON here (`encode_event`, `decode_snapshot`...);
  where they are kept is `conversation.store`'s business.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel

from agent_runtime.config.limits import CONVERSATION_ID_MAX_CHARS
from agent_runtime.memory import codec
from agent_runtime.memory.errors import AgentMemoryError, CorruptRecordError
from agent_runtime.memory.keys import check_length


class InvalidEventError(AgentMemoryError, ValueError):
    """An event that cannot follow the state it is applied to."""


class CorruptHistoryError(CorruptRecordError):
    """The stored history has a gap or an undecodable entry."""


class _Frozen(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )


# --- state ---------------------------------------------------------------------------

Role = Literal["system", "user", "assistant", "tool"]
Status = Literal["idle", "thinking", "awaitingTools", "awaitingApproval", "responded", "failed"]
CallStatus = Literal["pending", "awaitingApproval", "succeeded", "failed"]


class Message(_Frozen):
    """One message of the conversation."""

    role: Role
    content: str
    tool_call_id: str | None = None


class ToolCallRecord(_Frozen):
    """A tool call the model asked for in this conversation, and how it ended."""

    call_id: str
    tool: str
    arguments: dict[str, JsonValue] = Field(default_factory=dict)
    status: CallStatus = "pending"
    """`pending` may be running (or was cut off); `awaitingApproval` was not run and waits
    for a person's decision (`approvalGranted` makes it pending, `approvalRefused` ends it)."""
    output: JsonValue = None


class ErrorRecord(_Frozen):
    """An error that happened during the conversation."""

    kind: str
    message: str
    at: float


class ConversationState(_Frozen):
    """Everything known about a conversation at one version. Never mutated."""

    conversation_id: str
    version: int = Field(default=0, ge=0)
    status: Status = "idle"
    messages: tuple[Message, ...] = ()
    tool_calls: tuple[ToolCallRecord, ...] = ()
    model_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: tuple[ErrorRecord, ...] = ()
    updated_at: float | None = None

    @property
    def pending_tool_calls(self) -> tuple[ToolCallRecord, ...]:
        return tuple(call for call in self.tool_calls if call.status == "pending")

    @property
    def awaiting_approval(self) -> tuple[ToolCallRecord, ...]:
        return tuple(call for call in self.tool_calls if call.status == "awaitingApproval")


# --- events --------------------------------------------------------------------------


class _Event(_Frozen):
    at: float = Field(description="Unix time the event happened.")


class InputReceived(_Event):
    """Input arrived (from the user, or a system instruction)."""

    type: Literal["inputReceived"] = "inputReceived"
    content: str
    role: Literal["user", "system"] = "user"
    input_id: str | None = Field(
        default=None,
        description="Who sent it, once: a task's id. A re-delivered task finds its input "
        "here and resumes its turn instead of sending the message again.",
    )


class ModelCalled(_Event):
    """The model was called (and answered)."""

    type: Literal["modelCalled"] = "modelCalled"
    model: str
    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    latency_ms: float = Field(default=0.0, ge=0)
    content: str | None = Field(
        default=None,
        description="Text the model wrote beside the tool calls that follow (a final "
        "answer is its own `responseGenerated` event).",
    )


class ToolCalled(_Event):
    """The model asked for a tool call."""

    type: Literal["toolCalled"] = "toolCalled"
    call_id: str = Field(min_length=1)
    tool: str = Field(min_length=1)
    arguments: dict[str, JsonValue] = Field(default_factory=dict)


class ToolResultReceived(_Event):
    """A tool call finished."""

    type: Literal["toolResult"] = "toolResult"
    call_id: str = Field(min_length=1)
    output: JsonValue = None
    is_error: bool = False


class ResponseGenerated(_Event):
    """The agent answered."""

    type: Literal["responseGenerated"] = "responseGenerated"
    content: str


class ErrorOccurred(_Event):
    """Something failed; `callId` marks a pending tool call failed, `fatal` ends the turn."""

    type: Literal["error"] = "error"
    kind: str
    message: str
    call_id: str | None = None
    fatal: bool = False


class ApprovalRequested(_Event):
    """A call the model asked for waits for a person's decision; it was not run."""

    type: Literal["approvalRequested"] = "approvalRequested"
    call_id: str = Field(min_length=1)


class ApprovalGranted(_Event):
    """A person approved a held call: it runs next (this event is the record that it may
    have run, as `toolCalled` is for other calls)."""

    type: Literal["approvalGranted"] = "approvalGranted"
    call_id: str = Field(min_length=1)
    by: str = Field(description="Who decided (the caller's subject).")
    reason: str = ""


class ApprovalRefused(_Event):
    """A person refused a held call: it never runs, and the refusal is its result."""

    type: Literal["approvalRefused"] = "approvalRefused"
    call_id: str = Field(min_length=1)
    by: str = Field(description="Who decided (the caller's subject).")
    reason: str = ""


def refusal_text(event: ApprovalRefused) -> str:
    """What the model reads as the refused call's result."""
    why = f": {event.reason}" if event.reason else ""
    return f"a person refused this call, so it was not run{why}"


class ContextSummarized(_Event):
    """Events up to `throughVersion` are summarised for the model (a derived view).

    The events themselves stay in the log: the summary only replaces them in what the
    model is shown, so nothing is lost and a replay still sees every step.
    """

    type: Literal["contextSummarized"] = "contextSummarized"
    summary: str
    through_version: int = Field(ge=1)


Event = Annotated[
    InputReceived
    | ModelCalled
    | ToolCalled
    | ToolResultReceived
    | ResponseGenerated
    | ErrorOccurred
    | ApprovalRequested
    | ApprovalGranted
    | ApprovalRefused
    | ContextSummarized,
    Field(discriminator="type"),
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def encode_event(event: Event) -> bytes:
    """The JSON stored for an event."""
    return json.dumps(event.model_dump(mode="json", by_alias=True), allow_nan=False).encode()


def decode_event(payload: bytes) -> Event:
    """The event `encode_event` wrote; `CorruptHistoryError` for anything else."""
    try:
        return EVENT_ADAPTER.validate_python(json.loads(payload))
    except (ValueError, ValidationError) as exc:
        raise CorruptHistoryError(f"stored event is not a valid event: {exc}") from exc


# --- the fold ------------------------------------------------------------------------


def new_state(conversation_id: str) -> ConversationState:
    """The state of a conversation before its first event."""
    return ConversationState(conversation_id=check_conversation_id(conversation_id))


def apply(state: ConversationState, event: Event) -> ConversationState:
    """The state after `event`: pure, total on valid histories, version + 1."""
    changes: dict[str, Any] = {"version": state.version + 1, "updated_at": event.at}
    if isinstance(event, InputReceived | ResponseGenerated) and state.awaiting_approval:
        held = ", ".join(call.call_id for call in state.awaiting_approval)
        raise InvalidEventError(f"{event.type} while tool calls await approval: {held}")
    if isinstance(event, InputReceived):
        changes["messages"] = (*state.messages, Message(role=event.role, content=event.content))
        changes["status"] = "thinking"
    elif isinstance(event, ModelCalled):
        changes["model_calls"] = state.model_calls + 1
        changes["prompt_tokens"] = state.prompt_tokens + event.prompt_tokens
        changes["completion_tokens"] = state.completion_tokens + event.completion_tokens
    elif isinstance(event, ToolCalled):
        if any(call.call_id == event.call_id for call in state.tool_calls):
            raise InvalidEventError(f"tool call {event.call_id!r} was already made")
        call = ToolCallRecord(call_id=event.call_id, tool=event.tool, arguments=event.arguments)
        changes["tool_calls"] = (*state.tool_calls, call)
        changes["status"] = "awaitingTools"
    elif isinstance(event, ToolResultReceived):
        status: Literal["succeeded", "failed"] = "failed" if event.is_error else "succeeded"
        calls = _finish_call(state, event.call_id, status, event.output)
        content = (
            event.output if isinstance(event.output, str) else codec.canonical_text(event.output)
        )
        message = Message(role="tool", content=content, tool_call_id=event.call_id)
        changes["tool_calls"] = calls
        changes["messages"] = (*state.messages, message)
        changes["status"] = _status_after_tools(calls)
    elif isinstance(event, ResponseGenerated):
        if state.pending_tool_calls:
            pending = ", ".join(call.call_id for call in state.pending_tool_calls)
            raise InvalidEventError(f"response generated while tool calls are pending: {pending}")
        changes["messages"] = (
            *state.messages,
            Message(role="assistant", content=event.content),
        )
        changes["status"] = "responded"
    elif isinstance(event, ApprovalRequested):
        calls = _move_call(state, event.call_id, "pending", "awaitingApproval")
        changes["tool_calls"] = calls
        changes["status"] = _status_after_tools(calls)
    elif isinstance(event, ApprovalGranted):
        calls = _move_call(state, event.call_id, "awaitingApproval", "pending")
        changes["tool_calls"] = calls
        changes["status"] = _status_after_tools(calls)
    elif isinstance(event, ApprovalRefused):
        text = refusal_text(event)
        calls = _move_call(state, event.call_id, "awaitingApproval", "failed", output=text)
        message = Message(role="tool", content=text, tool_call_id=event.call_id)
        changes["tool_calls"] = calls
        changes["messages"] = (*state.messages, message)
        changes["status"] = _status_after_tools(calls)
    elif isinstance(event, ContextSummarized):
        if event.through_version > state.version:
            raise InvalidEventError(
                f"summary through version {event.through_version} of a conversation "
                f"at version {state.version}"
            )
    else:
        changes["errors"] = (
            *state.errors,
            ErrorRecord(kind=event.kind, message=event.message, at=event.at),
        )
        if event.call_id is not None:
            calls = _finish_call(state, event.call_id, "failed", event.message)
            changes["tool_calls"] = calls
            changes["status"] = _status_after_tools(calls)
        if event.fatal:
            changes["status"] = "failed"
    return state.model_copy(update=changes)


def _finish_call(
    state: ConversationState,
    call_id: str,
    status: Literal["succeeded", "failed"],
    output: JsonValue,
) -> tuple[ToolCallRecord, ...]:
    for position, call in enumerate(state.tool_calls):
        if call.call_id == call_id:
            if call.status != "pending":
                raise InvalidEventError(f"tool call {call_id!r} already finished")
            done = call.model_copy(update={"status": status, "output": output})
            return (*state.tool_calls[:position], done, *state.tool_calls[position + 1 :])
    raise InvalidEventError(f"result for unknown tool call {call_id!r}")


def _move_call(
    state: ConversationState,
    call_id: str,
    from_status: CallStatus,
    to_status: CallStatus,
    *,
    output: JsonValue = None,
) -> tuple[ToolCallRecord, ...]:
    """The calls with `call_id` moved between approval states (it must be in `from_status`)."""
    for position, call in enumerate(state.tool_calls):
        if call.call_id == call_id:
            if call.status != from_status:
                raise InvalidEventError(
                    f"tool call {call_id!r} is {call.status}, not {from_status}"
                )
            update: dict[str, Any] = {"status": to_status}
            if output is not None:
                update["output"] = output
            moved = call.model_copy(update=update)
            return (*state.tool_calls[:position], moved, *state.tool_calls[position + 1 :])
    raise InvalidEventError(f"no tool call {call_id!r}")


def _status_after_tools(calls: tuple[ToolCallRecord, ...]) -> Status:
    if any(call.status == "pending" for call in calls):
        return "awaitingTools"
    if any(call.status == "awaitingApproval" for call in calls):
        return "awaitingApproval"
    return "thinking"


def fold(state: ConversationState, events: Iterable[Event]) -> ConversationState:
    """`apply` every event in order."""
    for event in events:
        state = apply(state, event)
    return state


def check_conversation_id(conversation_id: str) -> str:
    """Return the id if usable, else raise `InvalidMemoryError`."""
    return check_length("conversation id", conversation_id, CONVERSATION_ID_MAX_CHARS)


def encode_snapshot(state: ConversationState) -> bytes:
    """The stored form of a snapshot (JSON, compressed when large)."""
    return codec.encode(state.model_dump(mode="json", by_alias=True), compress_above=4096)


def decode_snapshot(payload: bytes) -> ConversationState:
    """The state `encode_snapshot` wrote."""
    try:
        return ConversationState.model_validate(codec.decode(payload))
    except ValidationError as exc:
        raise CorruptHistoryError(f"stored snapshot is not a valid state: {exc}") from exc
