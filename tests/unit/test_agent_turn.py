"""The driver: a turn against a scripted model, real tools and the in-process store."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import pytest

from agent_runtime.agent.approval import (
    AlreadyDecidedError,
    ApprovalPendingError,
    Decision,
    HeldCallNotFoundError,
)
from agent_runtime.agent.conversations import ConversationBusyError, MemoryConversations
from agent_runtime.agent.model import ModelUnavailableError
from agent_runtime.agent.step import ModelReply, RequestedCall
from agent_runtime.agent.turn import DEGRADED_ANSWER, Agent, DecisionRequest, TurnRequest
from agent_runtime.config.agent import TurnLimits
from agent_runtime.config.tools import ToolHints
from agent_runtime.conversation.state import (
    ApprovalGranted,
    ApprovalRequested,
    ConversationState,
    Event,
    InputReceived,
    ModelCalled,
    ToolCalled,
)
from agent_runtime.tools.registry import ToolRegistry
from agent_runtime.tools.tool import CallContext

Script = Callable[[list[dict[str, Any]]], ModelReply]


class ScriptedModel:
    """Answers by a rule on the messages it is given; counts its calls."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.seen: list[list[dict[str, Any]]] = []

    async def complete(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] = (),
        *,
        on_delta: Callable[[str], Awaitable[None]] | None = None,
    ) -> ModelReply:
        self.seen.append([dict(m) for m in messages])
        reply = self.script([dict(m) for m in messages])
        if on_delta is not None and reply.content:
            for word in reply.content.split(" "):
                await on_delta(word + " ")
        return reply


def call(tool: str, args: dict[str, Any] | str, call_id: str = "call_1") -> ModelReply:
    text = args if isinstance(args, str) else json.dumps(args)
    return ModelReply("m", None, (RequestedCall(call_id, tool, text),), 10, 5)


def answer(text: str) -> ModelReply:
    return ModelReply("m", text, (), 10, 5)


def tools_then_answer(first: ModelReply) -> Script:
    def script(messages: list[dict[str, Any]]) -> ModelReply:
        if messages[-1]["role"] == "tool":
            return answer("saw " + messages[-1]["content"])
        return first

    return script


@pytest.fixture
def side_effects() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def registry(side_effects: list[dict[str, Any]]) -> ToolRegistry:
    reg = ToolRegistry()

    async def charge(args: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        side_effects.append({"tool": "charge", **args, "tenant": ctx.tenant})
        return {"charged": args["amount"]}

    async def lookup(args: dict[str, Any], ctx: CallContext) -> str:
        side_effects.append({"tool": "lookup"})
        return f"found {args['q']}"

    async def broken(args: dict[str, Any], ctx: CallContext) -> str:
        raise RuntimeError("disk on fire")

    async def hang(args: dict[str, Any], ctx: CallContext) -> str:
        await asyncio.Event().wait()
        return "never"

    number = {
        "type": "object",
        "properties": {"amount": {"type": "number"}},
        "required": ["amount"],
    }
    reg.register_function(charge, name="charge", description="charge", parameters=number)
    reg.register_function(
        lookup,
        name="lookup",
        description="lookup",
        parameters={"type": "object", "properties": {"q": {"type": "string"}}},
        hints=ToolHints(read_only=True),
    )
    reg.register_function(broken, name="broken", description="fails")
    reg.register_function(hang, name="hang", description="never ends")
    return reg


def make_agent(
    script: Script, registry: ToolRegistry, store: MemoryConversations | None = None, **kw: Any
) -> tuple[Agent, ScriptedModel, MemoryConversations]:
    model = ScriptedModel(script)
    store = store or MemoryConversations()
    agent = Agent(
        instructions="be brief",
        model=model,
        registry=registry,
        conversations=store,
        limits=kw.pop("limits", TurnLimits()),
        **kw,
    )
    return agent, model, store


async def test_an_answer_without_tools(registry: ToolRegistry) -> None:
    agent, model, store = make_agent(lambda m: answer("hello"), registry)
    out = await agent.run_turn(TurnRequest("c1", "alice", "hi"))
    assert (out.reason, out.answer, out.steps) == ("answered", "hello", [])
    assert out.usage == {"modelCalls": 1, "promptTokens": 10, "completionTokens": 5}
    assert model.seen[0][0] == {"role": "system", "content": "be brief"}
    assert model.seen[0][-1] == {"role": "user", "content": "hi"}
    state, _ = await store.load("c1")
    assert state.status == "responded"


class CountingConversations(MemoryConversations):
    """Records the events of each append: what one Redis round trip would write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[list[str]] = []

    async def append(
        self, state: ConversationState, *events: Event, last: bool = False
    ) -> ConversationState:
        self.writes.append([e.type for e in events])
        return await super().append(state, *events, last=last)


async def test_the_opening_message_is_written_with_the_models_first_reply(
    registry: ToolRegistry,
) -> None:
    store = CountingConversations()
    agent, _, _ = make_agent(tools_then_answer(call("lookup", {"q": "x"})), registry, store)
    await agent.run_turn(TurnRequest("c1", "alice", "find x"))
    # One write per step: the message with the reply that asks for a tool, the tool's
    # result, the answer; the message never alone (a round trip fewer per turn).
    assert store.writes[0][0] == "inputReceived"
    assert "toolCalled" in store.writes[0]
    assert store.writes[1:] == [["toolResult"], ["modelCalled", "responseGenerated"]]
    _, events = await store.load("c1")
    assert [v for v, _ in events] == list(range(1, len(events) + 1))


class OpeningConversations(MemoryConversations):
    """Records how each turn opened the conversation."""

    def __init__(self) -> None:
        super().__init__()
        self.opened: list[tuple[bool, bool]] = []

    def turn(self, conversation_id: str, tenant: str, *, start: bool, fresh: bool = False) -> Any:
        self.opened.append((start, fresh))
        return super().turn(conversation_id, tenant, start=start, fresh=fresh)


async def test_a_made_up_id_skips_the_read_unless_the_turn_streams_it_first(
    registry: ToolRegistry,
) -> None:
    store = OpeningConversations()
    agent, _, _ = make_agent(lambda m: answer("hello"), registry, store)
    await agent.run_turn(TurnRequest("c1", "alice", "hi", fresh=True))
    steps: list[dict[str, Any]] = []

    async def emit(step: dict[str, Any]) -> None:
        steps.append(step)

    # A streamed turn's first step tells the id before anything is written: read first.
    await agent.run_turn(TurnRequest("c2", "alice", "hi", fresh=True), emit)
    await agent.run_turn(TurnRequest("c1", "alice", "again"))
    assert store.opened == [(True, True), (True, False), (True, False)]
    assert steps[0]["type"] == "start"


async def test_a_model_failure_before_its_first_reply_leaves_no_trace(
    registry: ToolRegistry,
) -> None:
    def broken(messages: list[dict[str, Any]]) -> ModelReply:
        raise RuntimeError("a bug, not an outage")

    agent, _, store = make_agent(broken, registry)
    with pytest.raises(RuntimeError):
        await agent.run_turn(TurnRequest("c1", "alice", "hi"))
    state, events = await store.load("c1")
    assert (state.version, events) == (0, [])  # as if the request had never come
    agent2, _, _ = make_agent(lambda m: answer("back"), registry, store)
    assert (await agent2.run_turn(TurnRequest("c1", "alice", "hi"))).answer == "back"


async def test_a_turn_out_of_time_before_the_model_answered_logs_the_message_and_why(
    registry: ToolRegistry,
) -> None:
    class Silent(ScriptedModel):
        async def complete(self, *args: Any, **kwargs: Any) -> ModelReply:
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

    store = MemoryConversations()
    agent = Agent(
        instructions="be brief",
        model=Silent(lambda m: answer("")),
        registry=registry,
        conversations=store,
        limits=TurnLimits(turn_timeout_seconds=1),
    )
    out = await agent.run_turn(TurnRequest("c1", "alice", "anyone?"))
    assert out.reason == "timeout"
    _, events = await store.load("c1")
    assert [e.type for _, e in events] == ["inputReceived", "error"]


async def test_tool_results_go_back_to_the_model(
    registry: ToolRegistry, side_effects: list[dict[str, Any]]
) -> None:
    agent, model, _ = make_agent(tools_then_answer(call("charge", {"amount": 5})), registry)
    streamed: list[dict[str, Any]] = []

    async def emit(step: dict[str, Any]) -> None:
        streamed.append(step)

    out = await agent.run_turn(TurnRequest("c1", "alice", "pay"), emit)
    assert side_effects == [{"tool": "charge", "amount": 5, "tenant": "alice"}]
    assert out.answer == 'saw {"charged":5}'
    assert out.steps == [
        {
            "callId": "v2.call_1",
            "tool": "charge",
            "arguments": {"amount": 5},
            "output": {"charged": 5},
            "isError": False,
        }
    ]
    assert [s["type"] for s in streamed] == [
        "start",
        "toolCall",
        "toolResult",
        "delta",
        "delta",
        "end",
    ]
    assert "".join(s["text"] for s in streamed if s["type"] == "delta") == 'saw {"charged":5} '

    assistant = model.seen[1][-2]
    assert assistant["tool_calls"][0]["id"] == "v2.call_1"


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (call("charge", {"amount": "five"}), "invalidArguments"),
        (call("broken", {}), "disk on fire"),
        (call("nope", {}), "unknownTool"),
        (call("charge", "{not json"), "not valid JSON"),
    ],
)
async def test_tool_errors_go_back_to_the_model_and_do_not_end_the_turn(
    registry: ToolRegistry, reply: ModelReply, expected: str
) -> None:
    agent, _, _ = make_agent(tools_then_answer(reply), registry)
    out = await agent.run_turn(TurnRequest("c1", "alice", "go"))
    assert out.reason == "answered"
    assert expected in (out.answer or "")
    assert out.steps[0]["isError"] is True


async def test_a_second_concurrent_turn_is_refused(registry: ToolRegistry) -> None:
    agent, _, _ = make_agent(tools_then_answer(call("hang", {})), registry)
    first = asyncio.create_task(agent.run_turn(TurnRequest("c1", "alice", "one")))
    await asyncio.sleep(0)  # let the first turn take the writer slot
    for _ in range(10):
        await asyncio.sleep(0)
    with pytest.raises(ConversationBusyError):
        await agent.run_turn(TurnRequest("c1", "alice", "two"))
    first.cancel()


async def test_another_tenant_cannot_continue_a_conversation(registry: ToolRegistry) -> None:
    from agent_runtime.agent.conversations import ConversationNotFoundError

    agent, _, _ = make_agent(lambda m: answer("x"), registry)
    await agent.run_turn(TurnRequest("c1", "alice", "hi"))
    with pytest.raises(ConversationNotFoundError):
        await agent.run_turn(TurnRequest("c1", "mallory", "hi"))


async def test_resume_does_not_rerun_a_non_idempotent_call(
    registry: ToolRegistry, side_effects: list[dict[str, Any]]
) -> None:
    """A crash left two calls started and unanswered: the read-only one runs again, the
    non-idempotent one does not, and the model is told why."""
    store = MemoryConversations()
    await store.claim("c1", "alice")
    state, _ = await store.load("c1")
    await store.append(
        state,
        InputReceived(at=0, content="pay and look"),
        ModelCalled(at=0, model="m"),
        ToolCalled(at=0, call_id="v2.a", tool="charge", arguments={"amount": 5}),
        ToolCalled(at=0, call_id="v2.b", tool="lookup", arguments={"q": "x"}),
    )
    agent, model, _ = make_agent(lambda m: answer("ok"), registry, store)
    out = await agent.run_turn(TurnRequest("c1", "alice", "still there?"))
    assert out.reason == "answered"
    assert [e["tool"] for e in side_effects] == ["lookup"]
    tool_messages = [m for m in model.seen[0] if m["role"] == "tool"]
    assert "not run again" in tool_messages[0]["content"]
    assert tool_messages[1]["content"] == "found x"


async def test_calls_needing_approval_are_not_run(
    registry: ToolRegistry, side_effects: list[dict[str, Any]]
) -> None:
    agent, _, store = make_agent(
        tools_then_answer(call("charge", {"amount": 5})),
        registry,
        needs_approval=lambda tool: tool == "charge",
    )
    out = await agent.run_turn(TurnRequest("c1", "alice", "pay"))
    assert out.reason == "approvalRequired"
    assert out.pending_approval == [
        {"callId": "v2.call_1", "tool": "charge", "arguments": {"amount": 5}}
    ]
    assert out.steps[0]["approval"] == "requested"
    assert side_effects == []
    # Nothing new is taken until the held call is decided, and nothing is written.
    before, _ = await store.load("c1")
    with pytest.raises(ApprovalPendingError, match=r"v2\.call_1"):
        await agent.run_turn(TurnRequest("c1", "alice", "hello?"))
    assert (await store.load("c1"))[0] == before


def approve(call_id: str, yes: bool = True, reason: str = "") -> DecisionRequest:
    return DecisionRequest("c1", "alice", (Decision(call_id, yes, reason),), by="ops")


async def test_an_approved_call_runs_once_and_the_turn_goes_on(
    registry: ToolRegistry, side_effects: list[dict[str, Any]]
) -> None:
    agent, model, _ = make_agent(
        tools_then_answer(call("charge", {"amount": 5})),
        registry,
        needs_approval=lambda tool: tool == "charge",
    )
    held = await agent.run_turn(TurnRequest("c1", "alice", "pay"))
    streamed: list[dict[str, Any]] = []

    async def emit(step: dict[str, Any]) -> None:
        streamed.append(step)

    out = await agent.decide(approve(held.pending_approval[0]["callId"]), emit)
    assert (out.reason, out.answer) == ("answered", 'saw {"charged":5}')
    assert side_effects == [{"tool": "charge", "amount": 5, "tenant": "alice"}]
    assert out.steps == [
        {
            "callId": "v2.call_1",
            "tool": "charge",
            "arguments": {"amount": 5},
            "approval": "granted",
            "output": {"charged": 5},
            "isError": False,
        }
    ]
    assert [s["type"] for s in streamed][:3] == ["start", "approval", "toolResult"]
    assert streamed[1] == {
        "type": "approval",
        "callId": "v2.call_1",
        "decision": "granted",
        "by": "ops",
    }
    assert out.usage["modelCalls"] == 1  # the resumed turn asked the model once more
    with pytest.raises(AlreadyDecidedError):
        await agent.decide(approve("v2.call_1"))
    assert len(side_effects) == 1
    # The next message is a new turn (this script asks for a charge again: held anew).
    again = await agent.run_turn(TurnRequest("c1", "alice", "once more"))
    assert again.reason == "approvalRequired"
    assert again.pending_approval[0]["callId"] != "v2.call_1"
    assert len(side_effects) == 1
    assert len(model.seen) == 3


async def test_a_refusal_is_the_calls_result_for_the_model(
    registry: ToolRegistry, side_effects: list[dict[str, Any]]
) -> None:
    agent, model, store = make_agent(
        tools_then_answer(call("charge", {"amount": 5})),
        registry,
        needs_approval=lambda tool: tool == "charge",
    )
    await agent.run_turn(TurnRequest("c1", "alice", "pay"))
    out = await agent.decide(approve("v2.call_1", False, "over budget"))
    assert out.reason == "answered"
    assert side_effects == []
    assert "over budget" in (out.answer or "")
    assert out.steps[0]["approval"] == "refused"
    tool_message = model.seen[-1][-1]
    assert tool_message["role"] == "tool"
    assert tool_message["tool_call_id"] == "v2.call_1"
    assert "refused" in tool_message["content"]
    state, events = await store.load("c1")
    assert [e.type for _, e in events if e.type.startswith("approval")] == [
        "approvalRequested",
        "approvalRefused",
    ]
    assert state.status == "responded"


async def test_some_calls_decided_leave_the_turn_waiting_for_the_rest(
    registry: ToolRegistry, side_effects: list[dict[str, Any]]
) -> None:
    two = ModelReply(
        "m",
        None,
        (
            RequestedCall("a", "charge", '{"amount": 1}'),
            RequestedCall("b", "charge", '{"amount": 2}'),
        ),
    )
    agent, _, _ = make_agent(
        tools_then_answer(two), registry, needs_approval=lambda tool: tool == "charge"
    )
    held = await agent.run_turn(TurnRequest("c1", "alice", "pay twice"))
    assert [c["callId"] for c in held.pending_approval] == ["v2.a", "v2.b"]
    first = await agent.decide(approve("v2.a"))
    assert first.reason == "approvalRequired"
    assert [c["callId"] for c in first.pending_approval] == ["v2.b"]
    # An approved call runs at once (a logged grant means "may have run"); the model is
    # asked only when every call of its reply has an outcome.
    assert [e["amount"] for e in side_effects] == [1]
    assert first.usage["modelCalls"] == 0
    last = await agent.decide(approve("v2.b"))
    assert last.reason == "answered"
    assert [e["amount"] for e in side_effects] == [1, 2]


async def test_an_approved_call_cut_off_by_a_crash_is_not_run_again(
    registry: ToolRegistry, side_effects: list[dict[str, Any]]
) -> None:
    """A replica died after logging a grant (the call may have run): the next decision
    settles it as interrupted instead of running it, and runs only its own call."""
    store = MemoryConversations()
    await store.claim("c1", "alice")
    state, _ = await store.load("c1")
    await store.append(
        state,
        InputReceived(at=0, content="pay twice"),
        ModelCalled(at=0, model="m"),
        ToolCalled(at=0, call_id="v2.a", tool="charge", arguments={"amount": 1}),
        ApprovalRequested(at=0, call_id="v2.a"),
        ToolCalled(at=0, call_id="v2.b", tool="charge", arguments={"amount": 2}),
        ApprovalRequested(at=0, call_id="v2.b"),
        ApprovalGranted(at=1, call_id="v2.a", by="ops"),
    )
    agent, _, _ = make_agent(lambda m: answer("ok"), registry, store)
    out = await agent.decide(approve("v2.b"))
    assert out.reason == "answered"
    assert [e["amount"] for e in side_effects] == [2]
    assert out.steps[0]["kind"] == "interrupted"


async def test_deciding_another_tenants_conversation_is_not_found(registry: ToolRegistry) -> None:
    from agent_runtime.agent.conversations import ConversationNotFoundError

    agent, _, _ = make_agent(
        tools_then_answer(call("charge", {"amount": 5})),
        registry,
        needs_approval=lambda tool: tool == "charge",
    )
    await agent.run_turn(TurnRequest("c1", "alice", "pay"))
    with pytest.raises(ConversationNotFoundError):
        await agent.decide(DecisionRequest("c1", "mallory", (Decision("v2.call_1", True),), "m"))
    with pytest.raises(HeldCallNotFoundError):
        await agent.decide(approve("v9.other"))


async def test_model_down_gives_a_degraded_answer(registry: ToolRegistry) -> None:
    def down(messages: list[dict[str, Any]]) -> ModelReply:
        raise ModelUnavailableError("every breaker is open")

    agent, _, store = make_agent(down, registry)
    out = await agent.run_turn(TurnRequest("c1", "alice", "hi"))
    assert (out.reason, out.answer) == ("degraded", DEGRADED_ANSWER)
    state, _ = await store.load("c1")
    assert state.status == "failed"
    assert state.errors[-1].kind == "degraded"


async def test_model_call_limit_ends_the_turn(registry: ToolRegistry) -> None:
    agent, model, _ = make_agent(
        lambda m: call("lookup", {"q": "again"}, f"c{len(m)}"),
        registry,
        limits=TurnLimits(max_model_calls_per_turn=3),
    )
    out = await agent.run_turn(TurnRequest("c1", "alice", "loop"))
    assert out.reason == "maxModelCalls"
    assert len(model.seen) == 3
    assert "maxModelCallsPerTurn" in out.detail


async def test_wall_time_limit_ends_a_hanging_turn(registry: ToolRegistry) -> None:
    agent, _, store = make_agent(
        tools_then_answer(call("hang", {})), registry, limits=TurnLimits(turn_timeout_seconds=1)
    )
    out = await agent.run_turn(TurnRequest("c1", "alice", "hang"))
    assert out.reason == "timeout"
    state, _ = await store.load("c1")
    assert not state.pending_tool_calls
    assert state.status == "failed"
    # The conversation goes on afterwards.
    agent2, _, _ = make_agent(lambda m: answer("back"), registry, store)
    assert (await agent2.run_turn(TurnRequest("c1", "alice", "hi"))).answer == "back"


async def test_long_history_is_summarised_and_the_log_kept(registry: ToolRegistry) -> None:
    def script(messages: list[dict[str, Any]]) -> ModelReply:
        if messages[0]["content"].startswith("Summarise"):
            return answer("SUMMARY")
        return answer("y" * 400)

    agent, model, store = make_agent(script, registry, context_window_tokens=600)
    for i in range(6):
        await agent.run_turn(TurnRequest("c1", "alice", f"question {i} " + "x" * 400))
    _state, events = await store.load("c1")
    assert [e.type for _, e in events].count("contextSummarized") >= 1
    assert sum(1 for _, e in events if e.type == "inputReceived") == 6  # nothing deleted
    last = model.seen[-1]
    assert any("SUMMARY" in (m.get("content") or "") for m in last)
    assert last[-1]["content"].startswith("question 5")


async def test_a_tool_registered_between_turns_counts_against_the_context_at_once(
    registry: ToolRegistry,
) -> None:
    """The tool definitions' size is kept between turns; a new tool must renew it."""

    def script(messages: list[dict[str, Any]]) -> ModelReply:
        if messages[0]["content"].startswith("Summarise"):
            return answer("SUMMARY")
        return answer("ok")

    agent, _model, store = make_agent(script, registry, context_window_tokens=3000)
    for i in range(3):
        await agent.run_turn(TurnRequest("c1", "alice", f"question {i} " + "x" * 400))
    _state, events = await store.load("c1")
    assert [e.type for _, e in events].count("contextSummarized") == 0

    async def bulky(args: dict[str, Any], context: CallContext) -> str:
        return "never called"

    registry.register_function(bulky, name="bulky", description="d " * 5000)
    await agent.run_turn(TurnRequest("c1", "alice", "question 3"))
    _state, events = await store.load("c1")
    assert [e.type for _, e in events].count("contextSummarized") == 1


async def test_a_task_turn_logs_with_its_pool_tenant_conversation_and_task(
    registry: ToolRegistry,
) -> None:
    import structlog

    from agent_runtime.agent.admission import Admission
    from agent_runtime.runtime import _turn_tasks
    from agent_runtime.tasks import Task

    seen: list[dict[str, Any]] = []

    def script(messages: list[dict[str, Any]]) -> ModelReply:
        seen.append(structlog.contextvars.get_contextvars())
        return answer("done")

    agent, _, _ = make_agent(script, registry)
    handle = _turn_tasks(agent, Admission(2), "ns/pool")
    result = await handle(Task(id="t1", tenant="alice", input="go", conversation_id="c9"))
    assert isinstance(result, dict)
    assert result["answer"] == "done"
    assert seen == [{"pool": "ns/pool", "tenant": "alice", "conversation": "c9", "task": "t1"}]
    assert structlog.contextvars.get_contextvars() == {}


async def test_a_redelivered_task_resumes_its_turn_instead_of_sending_its_input_again(
    registry: ToolRegistry, side_effects: list[dict[str, Any]]
) -> None:
    """Its worker died while `charge` ran: the task comes again with the same message.
    The turn goes on from the log: one input, the charge not run again, one answer."""
    store = MemoryConversations()
    await store.claim("c1", "alice")
    state, _ = await store.load("c1")
    await store.append(
        state,
        InputReceived(at=0, content="pay 5", input_id="task-1"),
        ModelCalled(at=0, model="m"),
        ToolCalled(at=0, call_id="v2.a", tool="charge", arguments={"amount": 5}),
    )
    agent, model, _ = make_agent(tools_then_answer(call("charge", {"amount": 5})), registry, store)
    out = await agent.run_turn(TurnRequest("c1", "alice", "pay 5", input_id="task-1"))
    assert out.reason == "answered"
    assert side_effects == []
    assert len(model.seen) == 1
    state, events = await store.load("c1")
    assert [e.content for _, e in events if isinstance(e, InputReceived)] == ["pay 5"]
    # Delivered once more after it answered (the result was not stored): the answer
    # is the log's, and nothing runs.
    again = await agent.run_turn(TurnRequest("c1", "alice", "pay 5", input_id="task-1"))
    assert (again.reason, again.answer) == ("answered", out.answer)
    assert len(model.seen) == 1
    assert (await store.load("c1"))[0].version == state.version
