"""Which calls wait for a person (`requireApproval`), and the decisions on them (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_runtime.agent.approval import (
    AlreadyDecidedError,
    Decision,
    HeldCallNotFoundError,
    approval_rule,
    decision_events,
)
from agent_runtime.agent.context import current_view, model_messages
from agent_runtime.agent.step import (
    Finish,
    ModelReply,
    RequestedCall,
    RunTools,
    TurnStart,
    next_action,
    reply_events,
)
from agent_runtime.config.agent import TurnLimits
from agent_runtime.config.tools import ToolsConfig
from agent_runtime.conversation.state import (
    ConversationState,
    InputReceived,
    InvalidEventError,
    ToolResultReceived,
    fold,
    new_state,
)


def test_definitions_and_mcp_remote_tools_needing_approval() -> None:
    tools = ToolsConfig.model_validate(
        {
            "definitions": [
                {
                    "name": "refund",
                    "requireApproval": True,
                    "parameters": {"type": "object"},
                    "http": {"url": "http://pay/refund"},
                },
                {"name": "lookup", "parameters": {"type": "object"}, "http": {"url": "http://x"}},
                {
                    "name": "files",
                    "mcp": {"url": "http://mcp/", "requireApproval": ["delete-file"]},
                },
                {"name": "ops", "requireApproval": True, "mcp": {"url": "http://ops/"}},
            ]
        }
    )
    needs = approval_rule(tools)
    assert needs("refund")
    assert not needs("lookup")
    assert needs("files__delete-file")
    assert not needs("files__read_file")
    assert needs("ops__restart")
    assert needs("ops__anything")
    assert not needs("opsx__restart")


# --- decisions on held calls (pure) --------------------------------------------------


def _held(*tools: str) -> ConversationState:
    """A conversation whose last reply asked for `tools`, every call held."""
    state = fold(new_state("c"), [InputReceived(at=0, content="pay")])
    reply = ModelReply(
        "m", None, tuple(RequestedCall(f"call_{i}", t, "{}") for i, t in enumerate(tools))
    )
    return fold(state, reply_events(state, reply, 1.0, needs_approval=lambda _t: True))


def test_a_held_call_waits_and_ends_the_turn() -> None:
    state = _held("refund")
    assert state.status == "awaitingApproval"
    assert [c.status for c in state.tool_calls] == ["awaitingApproval"]
    finish = next_action(state, TurnStart.of(state, 0), TurnLimits(), 1.0)
    assert isinstance(finish, Finish)
    assert finish.reason == "approvalRequired"
    assert finish.pending_approval == state.awaiting_approval


def test_a_new_message_cannot_follow_a_held_call() -> None:
    state = _held("refund")
    with pytest.raises(InvalidEventError, match="await approval"):
        fold(state, [InputReceived(at=2, content="never mind")])
    with pytest.raises(InvalidEventError):  # nor can a held call's result, unapproved
        fold(state, [ToolResultReceived(at=2, call_id="v2.call_0", output="ran anyway")])


def test_granted_runs_next_refused_is_the_result() -> None:
    state = _held("refund", "delete")
    events = decision_events(
        state,
        [Decision("v2.call_0", True), Decision("v2.call_1", False, "not today")],
        by="ops",
        now=2.0,
    )
    after = fold(state, events)
    granted, refused = after.tool_calls
    assert granted.status == "pending"
    assert (refused.status, refused.output) == (
        "failed",
        "a person refused this call, so it was not run: not today",
    )
    assert next_action(after, TurnStart.of(after, 0), TurnLimits(), 2.0) == RunTools((granted,))
    assert after.messages[-1].tool_call_id == "v2.call_1"
    # The model reads the refusal as the call's result.
    view = current_view(list(enumerate([InputReceived(at=0, content="x"), *events], 1)))
    assert "not today" in model_messages("s", view)[-1]["content"]


def test_a_decision_is_taken_once() -> None:
    state = fold(_held("refund"), [])
    decided = fold(state, decision_events(state, [Decision("v2.call_0", True)], by="a", now=2))
    with pytest.raises(AlreadyDecidedError, match="pending"):
        decision_events(decided, [Decision("v2.call_0", False)], by="b", now=3)
    with pytest.raises(AlreadyDecidedError, match="twice"):
        decision_events(state, [Decision("v2.call_0", True)] * 2, by="a", now=2)
    with pytest.raises(HeldCallNotFoundError):
        decision_events(state, [Decision("v9.nope", True)], by="a", now=2)


@given(
    st.lists(
        st.tuples(st.sampled_from(["v2.call_0", "v2.call_1", "v2.call_2", "v7.x"]), st.booleans()),
        max_size=8,
    )
)
def test_whatever_is_sent_each_held_call_is_decided_at_most_once(
    requests: list[tuple[str, bool]],
) -> None:
    state = _held("a", "b", "c")
    decided: dict[str, bool] = {}
    for call_id, approve in requests:
        try:
            events = decision_events(state, [Decision(call_id, approve)], by="x", now=2)
        except (AlreadyDecidedError, HeldCallNotFoundError):
            assert call_id in decided or call_id == "v7.x"
            continue
        assert call_id not in decided
        decided[call_id] = approve
        state = fold(state, events)
    for call in state.tool_calls:
        if call.call_id not in decided:
            assert call.status == "awaitingApproval"
        else:
            assert call.status == ("pending" if decided[call.call_id] else "failed")
