"""The agent's pure step: every turn ends, within its limits, with a valid history."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agent_runtime.agent.step import (
    CallModel,
    Finish,
    ModelReply,
    RequestedCall,
    RunTools,
    TurnStart,
    limit_event,
    next_action,
    parse_arguments,
    reply_events,
)
from agent_runtime.config.agent import TurnLimits
from agent_runtime.conversation.state import (
    ConversationState,
    InputReceived,
    ToolResultReceived,
    fold,
    new_state,
)

tool_names = st.sampled_from(["lookup", "refund", "approve_me"])
arguments = st.sampled_from(['{"x": 1}', "{}", "", "not json", "[1, 2]", '{"y": "z"}'])
model_ids = st.sampled_from(["call_1", "call_2", "call_1"])  # models reuse ids
calls = st.builds(RequestedCall, call_id=model_ids, tool=tool_names, arguments=arguments)
replies = st.builds(
    ModelReply,
    model=st.just("m"),
    content=st.none() | st.text(max_size=10),
    tool_calls=st.lists(calls, max_size=3).map(tuple),
    prompt_tokens=st.integers(0, 500),
    completion_tokens=st.integers(0, 500),
)
limits = st.builds(
    TurnLimits,
    max_model_calls_per_turn=st.integers(1, 6),
    max_tokens_per_turn=st.integers(1, 3000),
    turn_timeout_seconds=st.integers(1, 100),
)


def _simulate(
    replies: list[ModelReply], limits: TurnLimits, step_seconds: float
) -> tuple[ConversationState, Finish, int]:
    """Run a turn purely: the model answers from `replies`, tools answer "ok"."""
    state = fold(new_state("c"), [InputReceived(at=0, content="old question")])
    start = TurnStart.of(state, 0.0)
    state = fold(state, [InputReceived(at=0, content="hi")])
    now, asked = 0.0, 0
    for _ in range(1000):
        action = next_action(state, start, limits, now)
        now += step_seconds
        if isinstance(action, Finish):
            return state, action, asked
        if isinstance(action, RunTools):
            results = [
                ToolResultReceived(at=now, call_id=c.call_id, output="ok") for c in action.calls
            ]
            state = fold(state, results)
            continue
        assert isinstance(action, CallModel)
        reply = replies[asked % len(replies)]
        asked += 1
        events = reply_events(state, reply, now, needs_approval=lambda tool: tool == "approve_me")
        state = fold(state, events)  # raises if the events cannot follow the state
    raise AssertionError("the turn did not end")


@settings(max_examples=300)
@given(st.lists(replies, min_size=1, max_size=8), limits, st.floats(0, 30))
def test_every_turn_ends_within_its_limits(
    replies: list[ModelReply], limits: TurnLimits, step_seconds: float
) -> None:
    state, finish, asked = _simulate(replies, limits, step_seconds)
    assert asked <= limits.max_model_calls_per_turn
    assert not state.pending_tool_calls  # a turn never ends with a call unanswered
    if finish.reason == "answered":
        assert state.status == "responded"
        assert finish.answer == state.messages[-1].content
    if finish.reason == "approvalRequired":
        assert finish.pending_approval
        assert all(c.tool == "approve_me" for c in finish.pending_approval)
        assert state.status == "awaitingApproval"
    else:  # a held call always ends the turn before the model is asked again
        assert not state.awaiting_approval


@given(st.lists(calls, min_size=1, max_size=5))
def test_call_ids_are_scoped_to_the_reply_and_unique(requested: list[RequestedCall]) -> None:
    state = fold(new_state("c"), [InputReceived(at=0, content="x")])
    events = reply_events(state, ModelReply("m", None, tuple(requested)), 1.0)
    ids = [e.call_id for e in events if e.type == "toolCalled"]
    assert len(ids) == len(set(ids)) == len(requested)
    assert all(i.startswith(f"v{state.version + 1}.") for i in ids)
    fold(state, events)


def test_a_reply_without_calls_is_the_answer() -> None:
    state = fold(new_state("c"), [InputReceived(at=0, content="x")])
    events = reply_events(state, ModelReply("m", "hello", (), 3, 4), 1.0)
    after = fold(state, events)
    assert after.status == "responded"
    assert after.prompt_tokens == 3
    assert next_action(after, TurnStart.of(state, 0), TurnLimits(), 1.0) == Finish(
        "answered", answer="hello"
    )


def test_bad_arguments_go_back_to_the_model_as_the_result() -> None:
    state = fold(new_state("c"), [InputReceived(at=0, content="x")])
    reply = ModelReply("m", None, (RequestedCall("a", "lookup", "[1]"),))
    after = fold(state, reply_events(state, reply, 1.0))
    assert after.tool_calls[0].status == "failed"
    assert "JSON object" in str(after.tool_calls[0].output)
    assert next_action(after, TurnStart.of(state, 0), TurnLimits(), 1.0) == CallModel()


def test_limits_end_the_turn_with_a_reason() -> None:
    state = fold(new_state("c"), [InputReceived(at=0, content="x")])
    start = TurnStart.of(state, 0.0)
    finish = next_action(state, start, TurnLimits(turn_timeout_seconds=5), 5.0)
    assert isinstance(finish, Finish)
    assert finish.reason == "timeout"
    assert "turnTimeoutSeconds" in finish.detail
    failed = fold(state, [limit_event("timeout", finish.detail, 5.0)])
    assert next_action(failed, start, TurnLimits(), 5.0) == Finish("timeout", detail=finish.detail)


def test_parse_arguments() -> None:
    assert parse_arguments('{"a": 1}') == ({"a": 1}, None)
    assert parse_arguments("") == ({}, None)
    assert parse_arguments("{")[1] is not None
