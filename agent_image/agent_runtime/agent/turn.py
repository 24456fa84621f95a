"""The driver: runs one turn by asking the pure step what to do, doing it, and logging it.

    agent = Agent(instructions=..., model=ModelClient(config.model), registry=registry,
                  conversations=RedisConversations(...), limits=config.agent.limits)
    outcome = await agent.run_turn(TurnRequest("c-1", tenant="alice", message="hi"))
    # a call held for approval (stopReason approvalRequired) is decided, and the turn goes on:
    outcome = await agent.decide(DecisionRequest("c-1", "alice", (Decision(id, True),), by="ops"))

Every step is appended to the conversation's log before the next one starts, under the
conversation's one writer; the message that opens a turn goes in the same write as the
model's first reply (a round trip fewer per turn: a turn that fails before the model
answers leaves no trace, like a request that never arrived, and no tool can have run
before that write). That gives three guarantees:

- another replica continues a conversation this one began (it folds the same log);
- a turn interrupted by a crash resumes: the next turn first settles the calls the log
  shows started but unanswered. A call is keyed by (conversation, version of the model
  reply, the model's call id); read-only and idempotent tools are run again, any other
  tool is not (its `toolCalled` event is the record that it may have run) and the model
  is told its outcome is unknown;
- the turn can be replayed from the log (`GET /v1/conversations/{id}/events`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from pydantic import JsonValue

from agent_runtime.agent import metrics
from agent_runtime.agent.approval import ApprovalPendingError, Decision, decision_events
from agent_runtime.agent.context import (
    Versioned,
    current_view,
    estimate_tokens,
    extractive_summary,
    model_messages,
    plan_compaction,
    summary_request,
    to_summarise,
)
from agent_runtime.agent.conversations import Conversations
from agent_runtime.agent.model import ModelUnavailableError, OnDelta
from agent_runtime.agent.step import (
    CallModel,
    Finish,
    ModelReply,
    RunTools,
    StopReason,
    TurnStart,
    limit_event,
    next_action,
    reply_events,
)
from agent_runtime.config.agent import TurnLimits
from agent_runtime.conversation.state import (
    ApprovalGranted,
    ApprovalRefused,
    ApprovalRequested,
    ContextSummarized,
    ConversationState,
    ErrorOccurred,
    Event,
    InputReceived,
    ModelCalled,
    ResponseGenerated,
    ToolCalled,
    ToolCallRecord,
    ToolResultReceived,
    fold,
    refusal_text,
)
from agent_runtime.memory import codec
from agent_runtime.memory.hierarchy import MemoryHierarchy
from agent_runtime.resilience.deadline import within
from agent_runtime.tools.errors import ToolNotFoundError, ToolValidationError
from agent_runtime.tools.registry import ToolRegistry
from agent_runtime.tools.tool import CallContext

log = structlog.get_logger(__name__)

Emit = Callable[[dict[str, Any]], Awaitable[None]]
"""Receives each step of a turn as it happens (the SSE stream)."""

DEGRADED_ANSWER = (
    "The agent cannot answer right now: its model is unavailable. Please try again shortly."
)


class Model(Protocol):
    """What a turn asks (`model.ModelClient`; a scripted stand-in in unit tests)."""

    async def complete(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] = (),
        *,
        on_delta: OnDelta | None = None,
    ) -> ModelReply: ...


@dataclass(frozen=True, slots=True)
class TurnRequest:
    conversation_id: str
    tenant: str
    message: str
    input_id: str | None = None
    """Set by senders that may send the same input again (a task's id): a turn whose
    input is already in the log resumes that turn instead of sending it twice."""
    fresh: bool = False
    """The conversation id was made up (random) for this turn and told to no one: the
    store need not read it first (`Conversations.turn`). Ignored when the turn streams,
    since its first step tells the id before anything is written."""


@dataclass(frozen=True, slots=True)
class DecisionRequest:
    """A person's decisions on calls held for approval; `by` is who (the caller's subject)."""

    conversation_id: str
    tenant: str
    decisions: tuple[Decision, ...]
    by: str


Opening = Callable[[ConversationState, Sequence[Versioned]], list[Event]]
"""The events a turn starts with, from the state it found (raises to refuse the turn)."""


@dataclass(slots=True)
class TurnOutcome:
    """How a turn ended: the answer (or why there is none), the tool steps, the usage."""

    conversation_id: str
    version: int
    reason: StopReason
    answer: str | None
    detail: str
    steps: list[dict[str, Any]]
    usage: dict[str, int]
    pending_approval: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "conversationId": self.conversation_id,
            "version": self.version,
            "answer": self.answer,
            # One string whatever happened (pool-as-tool reads it): the answer, or why
            # there is none.
            "reply": self.answer if self.answer is not None else f"[{self.reason}] {self.detail}",
            "stopReason": self.reason,
            "detail": self.detail,
            "steps": self.steps,
            "usage": self.usage,
            "pendingApproval": self.pending_approval,
        }


class TurnTimeoutError(TimeoutError):
    """The turn's wall-time limit passed."""


@dataclass
class _Turn:
    request: TurnRequest
    state: ConversationState
    events: list[Versioned]
    start: TurnStart
    emit: Emit | None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    streamed: bool = False
    """Whether the answer's text already went out as deltas while the model wrote it."""
    unwritten: list[Event] = field(default_factory=list)
    """Events in `state` and `events` that the next append writes first (`_hold`)."""
    stored: ConversationState | None = None
    """The state as written, while `unwritten` events follow it."""
    recall: asyncio.Task[list[str]] | None = None
    """The memory search started with the turn (on its message), if any."""


class Agent:
    """One pool's agent: instructions, model, tools, memory, conversations, limits."""

    def __init__(
        self,
        *,
        instructions: str,
        model: Model,
        registry: ToolRegistry,
        conversations: Conversations,
        limits: TurnLimits,
        domain: str | None = None,
        memory: MemoryHierarchy | None = None,
        needs_approval: Callable[[str], bool] = lambda _tool: False,
        context_window_tokens: int = 128_000,
        recall_k: int = 3,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.instructions = instructions
        self.domain = domain
        self.model = model
        self.registry = registry
        self.conversations = conversations
        self.limits = limits
        self.memory = memory
        self.needs_approval = needs_approval
        self.context_window_tokens = context_window_tokens
        self.recall_k = recall_k
        self._clock = clock
        self._tools_tokens: tuple[int, int] | None = None
        """(registry revision, the estimate of its tool definitions): `_fixed_tokens`."""

    async def run_turn(self, request: TurnRequest, emit: Emit | None = None) -> TurnOutcome:
        """Take `request.message`, think, call tools, answer: one turn, logged step by step.

        `ApprovalPendingError` (nothing written) while calls of the conversation wait for
        a decision: the model must see their outcome before anything new.
        """

        def opening(state: ConversationState, events: Sequence[Versioned]) -> list[Event]:
            if request.input_id is not None and _has_input(events, request.input_id):
                # Delivered again (its worker died mid-turn, or before storing the
                # result): go on from the log; an answer already there is the answer.
                return []
            if state.awaiting_approval:
                raise ApprovalPendingError(
                    state.conversation_id, (c.call_id for c in state.awaiting_approval)
                )
            return [
                InputReceived(at=self._clock(), content=request.message, input_id=request.input_id)
            ]

        return await self._drive(request, opening, emit, start=True)

    async def decide(self, request: DecisionRequest, emit: Emit | None = None) -> TurnOutcome:
        """Apply a person's decisions on held calls and resume the turn they ended.

        The decisions are appended under the conversation's one writer and checked
        against its log, so each call is decided once, on any replica (a second decision
        is `AlreadyDecidedError`, nothing applied). Approved calls then run, refused ones
        go back to the model as their results, and the turn goes on with fresh limits;
        while some held calls are still undecided it ends `approvalRequired` again.
        """

        def opening(state: ConversationState, _events: Sequence[Versioned]) -> list[Event]:
            events: list[Event] = []
            events.extend(
                decision_events(state, request.decisions, by=request.by, now=self._clock())
            )
            return events

        turn = TurnRequest(request.conversation_id, request.tenant, message="")
        return await self._drive(turn, opening, emit, start=False)

    async def _drive(
        self, request: TurnRequest, opening: Opening, emit: Emit | None, *, start: bool
    ) -> TurnOutcome:
        """Run a turn under the conversation's writer: load, open, loop, record the end.

        `start`: the turn may start the conversation (its tenant becomes the owner);
        otherwise the conversation must exist and be the tenant's.
        """
        # Memory is searched with the message while the conversation is taken and read
        # (their Redis round trips overlap); a turn refused at the start drops the result.
        recall = (
            asyncio.create_task(self._recall(request.tenant, request.message))
            if request.message and self._recalls
            else None
        )
        try:
            return await self._drive_turn(request, opening, emit, start, recall)
        finally:
            if recall is not None and not recall.done():
                recall.cancel()

    async def _drive_turn(
        self,
        request: TurnRequest,
        opening: Opening,
        emit: Emit | None,
        start: bool,
        recall: asyncio.Task[list[str]] | None,
    ) -> TurnOutcome:
        started = time.perf_counter()
        conversation = self.conversations.turn(
            request.conversation_id,
            request.tenant,
            start=start,
            fresh=request.fresh and start and emit is None,
        )
        async with conversation as (state, events):
            first = opening(
                state, events
            )  # refused here, the request is an HTTP error: nothing written
            turn = _Turn(
                request, state, events, TurnStart.of(state, self._clock()), emit, recall=recall
            )
            if emit is not None:
                await emit(
                    {
                        "type": "start",
                        "conversationId": state.conversation_id,
                        "version": state.version,
                    }
                )
            try:
                finish = await within(
                    self.limits.turn_timeout_seconds,
                    self._run(turn, first),
                    expired=lambda: TurnTimeoutError(),
                )
            except TurnTimeoutError:
                finish = await self._timed_out(turn)
            if turn.unwritten:  # every path appends at its end; this keeps it so
                await self._append(turn, last=True)
        outcome = self._outcome(turn, finish)
        metrics.TURN_DURATION.labels(finish.reason).observe(time.perf_counter() - started)
        if emit is not None:
            await emit({"type": "end", **outcome.as_dict()})
        return outcome

    # ------------------------------------------------------------------ the loop

    async def _run(self, turn: _Turn, opening: Sequence[Event]) -> Finish:
        # Calls an interrupted turn left pending are settled first, before the opening
        # events (an approval's) can make new calls pending: those then run exactly once.
        if turn.state.pending_tool_calls:
            await self._resume(turn)
        if len(opening) == 1 and isinstance(opening[0], InputReceived):
            self._hold(turn, *opening)  # written with the model's reply
        else:
            await self._append(turn, *opening)
        if turn.recall is not None:
            recalled = await turn.recall
        else:  # a turn without a message of its own (an approval's): its last one
            recalled = await self._recall(turn.request.tenant, _recall_query(turn))
        system = self._system_prompt(recalled)
        tools = self.registry.openai_tools()
        fixed = self._fixed_tokens(system, tools)
        while True:
            action = next_action(turn.state, turn.start, self.limits, self._clock())
            if isinstance(action, Finish):
                if action.reason in ("maxModelCalls", "maxTokens", "timeout"):
                    event = limit_event(action.reason, action.detail, self._clock())
                    await self._append(turn, event, last=True)
                return action
            if isinstance(action, RunTools):
                await self._run_tools(turn, action.calls)
                continue
            assert isinstance(action, CallModel)
            await self._compact(turn, fixed)
            messages = model_messages(system, current_view(turn.events))
            try:
                reply = await self.model.complete(messages, tools, on_delta=_deltas(turn))
            except ModelUnavailableError as exc:
                detail = f"no model could answer: {exc}"
                event = limit_event("degraded", detail, self._clock())
                await self._append(turn, event, last=True)
                return Finish("degraded", answer=DEGRADED_ANSWER, detail=detail)
            new = reply_events(turn.state, reply, self._clock(), needs_approval=self.needs_approval)
            # An answer is the turn's last write (its lease ends in the same round trip).
            await self._append(turn, *new, last=not reply.tool_calls)

    async def _timed_out(self, turn: _Turn) -> Finish:
        """Record the timeout; calls cut off mid-flight have an unknown outcome."""
        state, events = await self.conversations.load(turn.request.conversation_id)
        held, stored = turn.unwritten, turn.stored
        turn.state, turn.events, turn.unwritten, turn.stored = state, events, [], None
        if held and stored is not None and state.version == stored.version:
            self._hold(turn, *held)  # the time ran out before the turn's first write
        now = self._clock()
        detail = (
            f"the turn ran past its limit of {self.limits.turn_timeout_seconds}s "
            "(turnTimeoutSeconds)"
        )
        settle: list[Event] = [
            ErrorOccurred(
                at=now,
                kind="timeout",
                message="the turn's time ran out while this call ran; its outcome is unknown",
                call_id=call.call_id,
            )
            for call in state.pending_tool_calls
        ]
        await self._append(turn, *settle, limit_event("timeout", detail, now), last=True)
        return Finish("timeout", detail=detail)

    async def _resume(self, turn: _Turn) -> None:
        """Settle the calls an interrupted turn left unanswered (see the module docstring)."""
        again: list[ToolCallRecord] = []
        for call in turn.state.pending_tool_calls:
            turn.steps[call.call_id] = {
                "callId": call.call_id,
                "tool": call.tool,
                "arguments": call.arguments,
                "resumed": True,
            }
            if call.tool in self.registry and self.registry.get(call.tool).hints.safe_to_repeat:
                again.append(call)
            else:
                log.warning("interrupted call not run again", tool=call.tool, call_id=call.call_id)
                await self._append(
                    turn,
                    ErrorOccurred(
                        at=self._clock(),
                        kind="interrupted",
                        message=f"the turn was interrupted while {call.tool!r} ran; it is not "
                        "run again because it is not idempotent, so its outcome is unknown",
                        call_id=call.call_id,
                    ),
                )
        if again:
            await self._run_tools(turn, tuple(again))

    async def _run_tools(self, turn: _Turn, calls: Sequence[ToolCallRecord]) -> None:
        """Run the calls at once (each tool's bulkhead bounds it); log each result as it comes."""

        async def one(call: ToolCallRecord) -> None:
            event = await self._call_tool(turn.request, call)
            async with turn.lock:
                await self._append(turn, event)

        await asyncio.gather(*(one(call) for call in calls))

    async def _call_tool(self, request: TurnRequest, call: ToolCallRecord) -> ToolResultReceived:
        context = CallContext(tenant=request.tenant, conversation_id=request.conversation_id)
        try:
            result = await self.registry.call(
                call.tool,
                call.arguments,
                context=context,
                call_id=f"{request.conversation_id}/{call.call_id}",
            )
        except ToolValidationError as exc:
            output: JsonValue = {
                "error": "invalidArguments",
                "message": str(exc),
                "issues": [{"path": i.path, "message": i.message} for i in exc.issues],
            }
            return ToolResultReceived(
                at=self._clock(), call_id=call.call_id, output=output, is_error=True
            )
        except ToolNotFoundError as exc:
            output = {"error": "unknownTool", "message": str(exc)}
            return ToolResultReceived(
                at=self._clock(), call_id=call.call_id, output=output, is_error=True
            )
        except Exception as exc:  # any failure is the model's to read and work around
            output = {"error": type(exc).__name__, "message": str(exc)}
            return ToolResultReceived(
                at=self._clock(), call_id=call.call_id, output=output, is_error=True
            )
        return ToolResultReceived(
            at=self._clock(), call_id=call.call_id, output=_jsonable(result.value)
        )

    # ------------------------------------------------------------------ context

    @property
    def _recalls(self) -> bool:
        return self.memory is not None and self.recall_k > 0

    async def _recall(self, tenant: str, query: str) -> list[str]:
        """The memories of `tenant` that may bear on `query`, as text (none on failure)."""
        if self.memory is None or not self._recalls or not query:
            return []
        try:
            found = await self.memory.search(query, tenant=tenant, k=self.recall_k)
        except Exception as exc:  # memory is help, not a precondition of answering
            log.warning("memory recall skipped", error=str(exc))
            return []
        return [codec.canonical_text(hit.value) for hit in found]

    def _system_prompt(self, recalled: Sequence[str]) -> str:
        parts = [self.instructions]
        if self.domain:
            parts.append(f"Domain: {self.domain}")
        if recalled:
            lines = "\n".join(f"- {text}" for text in recalled)
            parts.append(f"Things remembered that may be relevant:\n{lines}")
        return "\n\n".join(parts)

    def _fixed_tokens(self, system: str, tools: Sequence[Mapping[str, Any]]) -> int:
        """What every model call of the turn carries besides the history: the system
        prompt and the tool definitions (estimated again only when the tools change)."""
        revision = self.registry.revision
        if self._tools_tokens is None or self._tools_tokens[0] != revision:
            self._tools_tokens = (revision, sum(estimate_tokens(dict(t)) for t in tools))
        return estimate_tokens({"role": "system", "content": system}) + self._tools_tokens[1]

    async def _compact(self, turn: _Turn, fixed: int) -> None:
        view = current_view(turn.events)
        through = plan_compaction(view, self.context_window_tokens, fixed_tokens=fixed)
        if through is None:
            return
        old = to_summarise(view, through)
        try:
            reply = await self.model.complete(summary_request(old))
            summary, by = reply.content or extractive_summary(old), "model"
        except ModelUnavailableError:
            summary, by = extractive_summary(old), "extract"
        metrics.COMPACTIONS.labels(by).inc()
        await self._append(
            turn, ContextSummarized(at=self._clock(), summary=summary, through_version=through)
        )

    # ------------------------------------------------------------------ the log

    async def _append(self, turn: _Turn, *events: Event, last: bool = False) -> None:
        """Log `events` (after the held ones) and stream their steps; `last`: the turn
        writes nothing after."""
        if not events and not turn.unwritten:
            return
        base = turn.stored if turn.stored is not None else turn.state
        before = turn.state.version
        turn.state = await self.conversations.append(base, *turn.unwritten, *events, last=last)
        turn.unwritten, turn.stored = [], None
        turn.events.extend(zip(range(before + 1, turn.state.version + 1), events, strict=True))
        for event in events:
            if isinstance(event, ApprovalRequested | ApprovalGranted | ApprovalRefused):
                metrics.APPROVALS.labels(event.type).inc()
            step = _step(event, turn)
            if step is not None and turn.emit is not None:
                await turn.emit(step)

    def _hold(self, turn: _Turn, *events: Event) -> None:
        """Take `events` into the turn's state now and into the log with its next append
        (events that stream no step: the opening message)."""
        if turn.stored is None:
            turn.stored = turn.state
        before = turn.state.version
        turn.state = fold(turn.state, events)
        turn.events.extend(zip(range(before + 1, turn.state.version + 1), events, strict=True))
        turn.unwritten.extend(events)

    def _outcome(self, turn: _Turn, finish: Finish) -> TurnOutcome:
        state, start = turn.state, turn.start
        calls = [e for v, e in turn.events if v > start.version and isinstance(e, ModelCalled)]
        return TurnOutcome(
            conversation_id=state.conversation_id,
            version=state.version,
            reason=finish.reason,
            answer=finish.answer,
            detail=finish.detail,
            steps=list(turn.steps.values()),
            usage={
                "modelCalls": state.model_calls - start.model_calls,
                "promptTokens": sum(e.prompt_tokens for e in calls),
                "completionTokens": sum(e.completion_tokens for e in calls),
            },
            pending_approval=[
                {"callId": c.call_id, "tool": c.tool, "arguments": c.arguments}
                for c in finish.pending_approval
            ],
        )


def _has_input(events: Sequence[Versioned], input_id: str) -> bool:
    return any(isinstance(e, InputReceived) and e.input_id == input_id for _, e in events)


def _recall_query(turn: _Turn) -> str:
    """What memory is searched with: the message, or (a resumed turn) the last one."""
    if turn.request.message:
        return turn.request.message
    return next((m.content for m in reversed(turn.state.messages) if m.role == "user"), "")


def _deltas(turn: _Turn) -> OnDelta | None:
    """Where a streaming turn sends the answer's text as the model writes it."""
    emit = turn.emit
    if emit is None:
        return None

    async def on_delta(text: str) -> None:
        turn.streamed = True
        await emit({"type": "delta", "text": text})

    return on_delta


def _step(event: Event, turn: _Turn) -> dict[str, Any] | None:
    """The stream's view of one logged event (None for bookkeeping events)."""
    if isinstance(event, ToolCalled):
        step = {"callId": event.call_id, "tool": event.tool, "arguments": event.arguments}
        turn.steps[event.call_id] = dict(step)
        return {"type": "toolCall", **step}
    if isinstance(event, ToolResultReceived | ErrorOccurred) and event.call_id is not None:
        if isinstance(event, ToolResultReceived):
            result: dict[str, Any] = {"output": event.output, "isError": event.is_error}
        else:
            result = {"output": event.message, "isError": True, "kind": event.kind}
        if event.call_id in turn.steps:
            turn.steps[event.call_id].update(result)
        return {"type": "toolResult", "callId": event.call_id, **result}
    if isinstance(event, ApprovalRequested | ApprovalGranted):
        call = _call(turn, event.call_id)
        decision = "requested" if isinstance(event, ApprovalRequested) else "granted"
        step = turn.steps.setdefault(event.call_id, _call_step(call))
        step["approval"] = decision
        by = {} if isinstance(event, ApprovalRequested) else {"by": event.by}
        return {"type": "approval", "callId": event.call_id, "decision": decision, **by}
    if isinstance(event, ApprovalRefused):
        call = _call(turn, event.call_id)
        result = {"output": refusal_text(event), "isError": True, "kind": "approvalRefused"}
        turn.steps.setdefault(event.call_id, _call_step(call)).update(approval="refused", **result)
        return {"type": "toolResult", "callId": event.call_id, **result}
    if isinstance(event, ResponseGenerated) and not turn.streamed:
        return {"type": "delta", "text": event.content}
    return None


def _call(turn: _Turn, call_id: str) -> ToolCallRecord:
    return next(c for c in turn.state.tool_calls if c.call_id == call_id)


def _call_step(call: ToolCallRecord) -> dict[str, Any]:
    return {"callId": call.call_id, "tool": call.tool, "arguments": call.arguments}


def _jsonable(value: Any) -> JsonValue:
    """A tool's value as JSON (anything else becomes its text)."""
    result: JsonValue = json.loads(json.dumps(value, default=str, allow_nan=False))
    return result
