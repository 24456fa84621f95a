"""What the model is shown: a derived view of the conversation's log, and its compaction.

Pure. The log (every event, with its version) is the record and is never rewritten;
the model sees the instructions, the latest summary (a `contextSummarized` event) and
the events after the point it covers, rendered as chat-completions messages. When that
view outgrows the model's context window, `plan_compaction` picks the point up to which
older turns are summarised: only a point where no tool call is open, so a call and its
result are always on the same side, and never past the current turn's input.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent_runtime.conversation.state import (
    ApprovalRefused,
    ContextSummarized,
    ErrorOccurred,
    Event,
    InputReceived,
    ModelCalled,
    ResponseGenerated,
    ToolCalled,
    ToolResultReceived,
    refusal_text,
)
from agent_runtime.memory import codec

Versioned = tuple[int, Event]
"""An event and its version in the log."""

Message = dict[str, Any]
"""One chat-completions message."""

COMPACT_ABOVE = 0.8
"""Compact when the view passes this share of the context window..."""
KEEP_BELOW = 0.5
"""...down to this share (the rest of the window is the answer's and the summary's)."""


def estimate_tokens(message: Message) -> int:
    """A cheap, deterministic token estimate (4 characters a token, plus framing).

    Exact counts need the model's tokenizer, which an OpenAI-compatible endpoint does not
    share; compaction only needs to stay well inside the window, hence the margins above.
    """
    content = message.get("content")
    if len(message) == 2 and isinstance(content, str) and isinstance(message.get("role"), str):
        # Most messages are {"role", "content"}: their length as JSON without encoding
        # them (every message is estimated on every model call), escapes aside.
        return (len(message["role"]) + len(content) + _PLAIN_FRAMING) // 4 + 4
    return len(json.dumps(message, ensure_ascii=False)) // 4 + 4


_PLAIN_FRAMING = len(json.dumps({"role": "", "content": ""}))


def _text(output: object) -> str:
    return output if isinstance(output, str) else codec.canonical_text(output)


def _render(events: Sequence[Versioned]) -> list[tuple[int, Message]]:
    """Each event's message (if it has one), with the version that produced it."""
    out: list[tuple[int, Message]] = []
    open_assistant: Message | None = None
    content: str | None = None
    for version, event in events:
        if isinstance(event, InputReceived):
            out.append((version, {"role": event.role, "content": event.content}))
            open_assistant = None
        elif isinstance(event, ModelCalled):
            content = event.content
            open_assistant = None
        elif isinstance(event, ToolCalled):
            if open_assistant is None:
                open_assistant = {"role": "assistant", "content": content, "tool_calls": []}
                out.append((version, open_assistant))
                content = None
            open_assistant["tool_calls"].append(
                {
                    "id": event.call_id,
                    "type": "function",
                    "function": {"name": event.tool, "arguments": json.dumps(event.arguments)},
                }
            )
        elif isinstance(event, ToolResultReceived):
            text = _text(event.output)
            if event.is_error:
                text = f"error: {text}"
            out.append((version, {"role": "tool", "tool_call_id": event.call_id, "content": text}))
        elif isinstance(event, ErrorOccurred):
            if event.call_id is not None:
                text = f"error ({event.kind}): {event.message}"
                out.append(
                    (version, {"role": "tool", "tool_call_id": event.call_id, "content": text})
                )
        elif isinstance(event, ApprovalRefused):
            text = f"error (approvalRefused): {refusal_text(event)}"
            out.append((version, {"role": "tool", "tool_call_id": event.call_id, "content": text}))
        elif isinstance(event, ResponseGenerated):
            out.append((version, {"role": "assistant", "content": event.content}))
            open_assistant = None
    return out


@dataclass(frozen=True, slots=True)
class View:
    """The latest summary and the events after the point it covers."""

    summary: str | None
    through_version: int
    events: tuple[Versioned, ...]


def current_view(events: Sequence[Versioned]) -> View:
    """Split the log at its latest summary."""
    summary: str | None = None
    through = 0
    for _, event in events:
        if isinstance(event, ContextSummarized) and event.through_version >= through:
            summary, through = event.summary, event.through_version
    kept = tuple((v, e) for v, e in events if v > through and not isinstance(e, ContextSummarized))
    return View(summary, through, kept)


def summary_message(summary: str) -> Message:
    return {"role": "system", "content": f"Summary of the conversation so far:\n{summary}"}


def model_messages(system: str, view: View) -> list[Message]:
    """The messages one model call is given."""
    messages: list[Message] = [{"role": "system", "content": system}]
    if view.summary is not None:
        messages.append(summary_message(view.summary))
    messages.extend(message for _, message in _render(view.events))
    return messages


def plan_compaction(view: View, window_tokens: int, *, fixed_tokens: int = 0) -> int | None:
    """The version through which to summarise, or None when the view fits.

    `fixed_tokens` is what every call carries besides the history (instructions, tool
    definitions). The cut is the earliest safe point after which the rest fits in
    `KEEP_BELOW` of the window, or the latest safe point when nothing fits that well.
    """
    rendered = _render(view.events)
    total = fixed_tokens + sum(estimate_tokens(m) for _, m in rendered)
    if view.summary is not None:
        total += estimate_tokens(summary_message(view.summary))
    if total <= window_tokens * COMPACT_ABOVE:
        return None
    candidates = safe_cuts(view.events)
    if not candidates:
        return None
    keep_budget = window_tokens * KEEP_BELOW - fixed_tokens
    for cut in candidates:
        after = sum(estimate_tokens(m) for v, m in rendered if v > cut)
        if after <= keep_budget:
            return cut
    return candidates[-1]


def safe_cuts(events: Sequence[Versioned]) -> list[int]:
    """Versions after which no tool call is open, before the latest input (ascending)."""
    last_input = max(
        (v for v, e in events if isinstance(e, InputReceived) and e.role == "user"), default=None
    )
    cuts: list[int] = []
    open_calls: set[str] = set()
    for version, event in events:
        if last_input is not None and version >= last_input:
            break
        if isinstance(event, ToolCalled):
            open_calls.add(event.call_id)
        elif isinstance(event, ToolResultReceived | ErrorOccurred | ApprovalRefused) and (
            event.call_id
        ):
            open_calls.discard(event.call_id)
        # Not right after a model call: its text belongs with the tool calls that follow.
        if not open_calls and not isinstance(event, ModelCalled):
            cuts.append(version)
    return cuts


def to_summarise(view: View, through: int) -> list[Message]:
    """The messages the summary replaces: the previous summary and the events up to `through`."""
    head: list[Message] = [] if view.summary is None else [summary_message(view.summary)]
    return head + [m for v, m in _render(view.events) if v <= through]


SUMMARY_INSTRUCTIONS = (
    "Summarise the conversation below for your own later use. Keep every fact, name, "
    "number, decision, open question and tool outcome that could matter later; drop "
    "pleasantries. Write plain prose, at most a few paragraphs."
)


def summary_request(messages: Sequence[Message]) -> list[Message]:
    """The model call that writes a summary of `messages`."""
    transcript = "\n".join(
        f"{m['role']}: {m.get('content') or ''}"
        + (f" [calls {json.dumps(m['tool_calls'])}]" if m.get("tool_calls") else "")
        for m in messages
    )
    return [
        {"role": "system", "content": SUMMARY_INSTRUCTIONS},
        {"role": "user", "content": transcript},
    ]


def extractive_summary(messages: Sequence[Message], *, max_chars: int = 4000) -> str:
    """A summary written without the model (when it cannot be asked): the start of each
    message, newest last, within `max_chars`. Worse than the model's, never empty."""
    lines = [f"{m['role']}: {(m.get('content') or '')[:200]}" for m in messages]
    text = "\n".join(lines)
    return text[-max_chars:] if text else "(earlier messages)"
