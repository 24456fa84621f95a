"""What the model is shown: the derived view and its compaction (hypothesis)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from agent_runtime.agent.context import (
    Versioned,
    View,
    current_view,
    estimate_tokens,
    model_messages,
    plan_compaction,
    safe_cuts,
)
from agent_runtime.conversation.state import (
    ContextSummarized,
    ErrorOccurred,
    Event,
    InputReceived,
    ModelCalled,
    ResponseGenerated,
    ToolCalled,
    ToolResultReceived,
    fold,
    new_state,
)

texts = st.text(alphabet="abc xyz", min_size=0, max_size=400)


@st.composite
def logs(draw: st.DrawFn) -> list[Versioned]:
    """Logs as turns write them: input, then rounds of (model, calls, results), then an answer."""
    events: list[Event] = []
    n = 0
    for _ in range(draw(st.integers(1, 8))):
        events.append(InputReceived(at=0, content=draw(texts)))
        for _ in range(draw(st.integers(0, 3))):
            events.append(ModelCalled(at=0, model="m", content=draw(st.none() | texts)))
            ids = [f"c{n + i}" for i in range(draw(st.integers(1, 3)))]
            n += len(ids)
            events.extend(ToolCalled(at=0, call_id=i, tool="t") for i in ids)
            for i in draw(st.permutations(ids)):
                if draw(st.booleans()):
                    events.append(ToolResultReceived(at=0, call_id=i, output=draw(texts)))
                else:
                    events.append(ErrorOccurred(at=0, kind="x", message="no", call_id=i))
        events.append(ModelCalled(at=0, model="m"))
        events.append(ResponseGenerated(at=0, content=draw(texts)))
    fold(new_state("c"), events)  # a valid history
    return list(enumerate(events, start=1))


def _check_pairs(messages: list[dict[str, object]]) -> None:
    """Every tool message answers a call made by an earlier assistant message, and every
    call is answered."""
    called: set[str] = set()
    answered: set[str] = set()
    for message in messages:
        for call in message.get("tool_calls") or []:  # type: ignore[attr-defined]
            called.add(call["id"])
        if message["role"] == "tool":
            assert message["tool_call_id"] in called
            answered.add(message["tool_call_id"])  # type: ignore[arg-type]
    assert called == answered


@settings(max_examples=200)
@given(logs(), st.integers(50, 5000))
def test_compaction_never_splits_a_call_from_its_result(log: list[Versioned], window: int) -> None:
    view = current_view(log)
    _check_pairs(model_messages("sys", view))
    through = plan_compaction(view, window)
    if through is None:
        return
    assert through in safe_cuts(log)
    summarised = [
        *log,
        (len(log) + 1, ContextSummarized(at=0, summary="s", through_version=through)),
    ]
    after = current_view(summarised)
    assert after.summary == "s"
    assert all(v > through for v, _ in after.events)
    messages = model_messages("sys", after)
    _check_pairs(messages)
    # The current turn's input is never summarised away.
    last_input = max(v for v, e in log if isinstance(e, InputReceived))
    assert any(v == last_input for v, _ in after.events)


@settings(max_examples=100)
@given(logs())
def test_a_view_that_fits_is_not_compacted(log: list[Versioned]) -> None:
    view = current_view(log)
    total = sum(estimate_tokens(m) for m in model_messages("", view)[1:])
    assert plan_compaction(view, int(total / 0.8) + 10) is None


def test_compaction_keeps_the_newest_turns_that_fit() -> None:
    log: list[Event] = []
    for i in range(10):
        log += [InputReceived(at=0, content=f"q{i} " + "x" * 400), ModelCalled(at=0, model="m")]
        log.append(ResponseGenerated(at=0, content="a" * 400))
    versioned = list(enumerate(log, start=1))
    view = current_view(versioned)
    through = plan_compaction(view, 1000)
    assert through is not None
    kept = View(None, through, tuple((v, e) for v, e in versioned if v > through))
    kept_tokens = sum(estimate_tokens(m) for m in model_messages("", kept)[1:])
    assert kept_tokens <= 500
    assert versioned[through][1].type == "inputReceived"  # the cut falls between turns


@given(
    role=st.sampled_from(["system", "user", "assistant"]),
    content=st.text(max_size=300),
)
def test_a_plain_message_is_estimated_as_its_json_length_without_encoding_it(
    role: str, content: str
) -> None:
    message = {"role": role, "content": content}
    from_encoding = len(json.dumps(message, ensure_ascii=False)) // 4 + 4
    # Escapes are all it leaves out: never more than the encoding, exact without them.
    assert estimate_tokens(message) <= from_encoding
    if json.dumps(content, ensure_ascii=False) == f'"{content}"':
        assert estimate_tokens(message) == from_encoding


def test_other_messages_are_estimated_from_their_encoding() -> None:
    call = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f"}}],
    }
    assert estimate_tokens(call) == len(json.dumps(call, ensure_ascii=False)) // 4 + 4
