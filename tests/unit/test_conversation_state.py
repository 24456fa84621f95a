"""Conversation state: the pure fold, its codecs, and why snapshots never change a result."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from agent_runtime.conversation.state import (
    ApprovalGranted,
    ApprovalRefused,
    ApprovalRequested,
    ConversationState,
    ErrorOccurred,
    Event,
    InputReceived,
    InvalidEventError,
    ModelCalled,
    ResponseGenerated,
    ToolCalled,
    ToolResultReceived,
    apply,
    decode_event,
    decode_snapshot,
    encode_event,
    encode_snapshot,
    fold,
    new_state,
)

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_value = st.recursive(
    json_leaf,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=8,
)


@st.composite
def histories(draw: st.DrawFn, max_events: int = 40) -> list[Event]:
    """Valid event sequences: tool results only for pending calls, no reply while waiting,
    no input or reply while a call waits for approval."""
    events: list[Event] = []
    pending: list[str] = []
    held: list[str] = []
    made = 0
    at = draw(st.floats(0, 1e9))
    for _ in range(draw(st.integers(0, max_events))):
        at += draw(st.floats(0, 100))
        choices = ["model", "tool", "error"]
        if not held:
            choices.append("input")
        if pending:
            choices += ["result", "result", "toolError", "hold"]
        elif not held:
            choices.append("response")
        if held:
            choices += ["grant", "refuse"]
        kind = draw(st.sampled_from(choices))
        if kind == "input":
            events.append(InputReceived(at=at, content=draw(st.text(max_size=30))))
        elif kind == "model":
            events.append(
                ModelCalled(
                    at=at,
                    model="m",
                    prompt_tokens=draw(st.integers(0, 5000)),
                    completion_tokens=draw(st.integers(0, 500)),
                )
            )
        elif kind == "tool":
            made += 1
            call_id = f"call-{made}"
            pending.append(call_id)
            arguments = draw(st.dictionaries(st.text(max_size=5), json_value, max_size=3))
            events.append(ToolCalled(at=at, call_id=call_id, tool="t", arguments=arguments))
        elif kind == "result":
            call_id = pending.pop(draw(st.integers(0, len(pending) - 1)))
            events.append(
                ToolResultReceived(
                    at=at, call_id=call_id, output=draw(json_value), is_error=draw(st.booleans())
                )
            )
        elif kind == "toolError":
            call_id = pending.pop(0)
            events.append(ErrorOccurred(at=at, kind="timeout", message="slow", call_id=call_id))
        elif kind == "hold":
            call_id = pending.pop()
            held.append(call_id)
            events.append(ApprovalRequested(at=at, call_id=call_id))
        elif kind == "grant":
            call_id = held.pop(0)
            pending.append(call_id)
            events.append(ApprovalGranted(at=at, call_id=call_id, by="ops"))
        elif kind == "refuse":
            call_id = held.pop()
            events.append(ApprovalRefused(at=at, call_id=call_id, by="ops", reason="no"))
        elif kind == "response":
            events.append(ResponseGenerated(at=at, content=draw(st.text(max_size=30))))
        else:
            events.append(
                ErrorOccurred(at=at, kind="model", message="oops", fatal=draw(st.booleans()))
            )
    return events


@given(events=histories())
def test_replaying_the_stored_log_rebuilds_the_live_state(events: list[Event]) -> None:
    live = new_state("c")
    for event in events:
        before = live
        live = apply(live, event)
        assert live.version == before.version + 1
        assert live is not before
    replayed = fold(new_state("c"), [decode_event(encode_event(e)) for e in events])
    assert replayed == live
    assert live.version == len(events)


@given(events=histories(), data=st.data())
def test_a_snapshot_at_any_point_never_changes_the_result(
    events: list[Event], data: st.DataObject
) -> None:
    split = data.draw(st.integers(0, len(events)))
    snapshot = decode_snapshot(encode_snapshot(fold(new_state("c"), events[:split])))
    assert fold(snapshot, events[split:]) == fold(new_state("c"), events)


@given(events=histories())
def test_applying_never_mutates_the_earlier_state(events: list[Event]) -> None:
    states = [new_state("c")]
    dumps = [states[0].model_dump()]
    for event in events:
        states.append(apply(states[-1], event))
        dumps.append(states[-1].model_dump())
    assert [s.model_dump() for s in states] == dumps


def test_states_are_frozen() -> None:
    state = new_state("c")
    with pytest.raises(ValidationError):
        state.version = 3  # type: ignore[misc]


def test_a_turn_with_a_tool_call() -> None:
    state = fold(
        new_state("c"),
        [
            InputReceived(at=1, content="weather?"),
            ModelCalled(at=2, model="m", prompt_tokens=10, completion_tokens=3),
            ToolCalled(at=3, call_id="a", tool="weather", arguments={"city": "Oslo"}),
        ],
    )
    assert state.status == "awaitingTools"
    assert [c.call_id for c in state.pending_tool_calls] == ["a"]
    state = fold(
        state,
        [
            ToolResultReceived(at=4, call_id="a", output={"temp": -3}),
            ResponseGenerated(at=5, content="cold"),
        ],
    )
    assert state.status == "responded"
    assert [m.role for m in state.messages] == ["user", "tool", "assistant"]
    assert state.messages[1].content == '{"temp":-3}'
    assert state.tool_calls[0].status == "succeeded"
    assert (state.version, state.prompt_tokens, state.updated_at) == (5, 10, 5)


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ([ToolResultReceived(at=1, call_id="x")], "unknown tool call"),
        (
            [ToolCalled(at=1, call_id="x", tool="t"), ToolCalled(at=2, call_id="x", tool="t")],
            "already made",
        ),
        (
            [
                ToolCalled(at=1, call_id="x", tool="t"),
                ToolResultReceived(at=2, call_id="x"),
                ToolResultReceived(at=3, call_id="x"),
            ],
            "already finished",
        ),
        (
            [ToolCalled(at=1, call_id="x", tool="t"), ResponseGenerated(at=2, content="hi")],
            "pending",
        ),
    ],
)
def test_impossible_transitions_are_refused(events: list[Event], message: str) -> None:
    with pytest.raises(InvalidEventError, match=message):
        fold(new_state("c"), events)


def test_events_use_camel_case_and_reject_unknown_types() -> None:
    encoded = encode_event(ToolCalled(at=1, call_id="x", tool="t"))
    assert b'"callId":"x"' in encoded.replace(b" ", b"")
    with pytest.raises(Exception, match="not a valid event"):
        decode_event(b'{"type": "teleported", "at": 1}')


def test_fatal_errors_fail_the_conversation() -> None:
    state = apply(new_state("c"), ErrorOccurred(at=1, kind="model", message="down", fatal=True))
    assert state.status == "failed"
    assert state.errors[0].message == "down"
    assert isinstance(state, ConversationState)
