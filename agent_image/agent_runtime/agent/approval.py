"""Tool calls a person approves before they run: which ones, the decisions, their errors.

A definition's `requireApproval: true` holds every tool it registers (for MCP, every
`{prefix}__*`); an MCP definition's `mcp.requireApproval` names remote tools, held as
`{prefix}__{remoteName}`. Pure: names are made by `tools.mcp.prefixed`, as registration does.

A held call is logged (`toolCalled`, then `approvalRequested`) and the turn ends
`approvalRequired`; `Agent.decide` appends a person's `Decision`s (`approvalGranted`,
`approvalRefused`) and resumes the turn: approved calls run, refusals go back to the
model as the calls' results. The log is the only record, so any replica can resume.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from agent_runtime.config.tools import ToolsConfig
from agent_runtime.conversation.state import (
    ApprovalGranted,
    ApprovalRefused,
    ConversationState,
)
from agent_runtime.memory.errors import AgentMemoryError


@dataclass(frozen=True, slots=True)
class Decision:
    """A person's decision on one held call."""

    call_id: str
    approve: bool
    reason: str = ""


class ApprovalPendingError(AgentMemoryError):
    """A new message on a conversation whose tool calls wait for a decision (HTTP 409)."""

    def __init__(self, conversation_id: str, call_ids: Iterable[str]) -> None:
        self.call_ids = tuple(call_ids)
        super().__init__(
            f"conversation {conversation_id!r} has tool calls waiting for approval "
            f"({', '.join(self.call_ids)}): approve or refuse them first "
            f"(POST /v1/conversations/{{id}}/approvals)"
        )


class HeldCallNotFoundError(AgentMemoryError, LookupError):
    """A decision names a call the conversation never had (HTTP 404)."""

    def __init__(self, call_id: str) -> None:
        self.call_id = call_id
        super().__init__(f"the conversation has no tool call {call_id!r}")


class AlreadyDecidedError(AgentMemoryError):
    """A decision on a call that is not waiting for one (HTTP 409): decided before, or
    never held. Nothing of the request was applied."""

    def __init__(self, call_id: str, status: str) -> None:
        self.call_id = call_id
        super().__init__(
            f"tool call {call_id!r} is not waiting for approval (it is {status}); "
            "nothing was applied"
        )


def decision_events(
    state: ConversationState, decisions: Iterable[Decision], *, by: str, now: float
) -> list[ApprovalGranted | ApprovalRefused]:
    """The events that record `decisions` after `state`; refused whole if any is wrong.

    Pure: checked against the state the log folds to, so a decision applied once (on
    any replica) is refused the second time.
    """
    calls = {call.call_id: call for call in state.tool_calls}
    events: list[ApprovalGranted | ApprovalRefused] = []
    seen: set[str] = set()
    for decision in decisions:
        call = calls.get(decision.call_id)
        if call is None:
            raise HeldCallNotFoundError(decision.call_id)
        if decision.call_id in seen:
            raise AlreadyDecidedError(decision.call_id, "decided twice in this request")
        seen.add(decision.call_id)
        if call.status != "awaitingApproval":
            raise AlreadyDecidedError(decision.call_id, call.status)
        kind = ApprovalGranted if decision.approve else ApprovalRefused
        events.append(kind(at=now, call_id=decision.call_id, by=by, reason=decision.reason))
    return events


def approval_rule(tools: ToolsConfig) -> Callable[[str], bool]:
    """A predicate on registered tool names: True when a call needs approval."""
    exact: set[str] = set()
    prefixes: list[str] = []
    for definition in tools.definitions:
        if definition.mcp is None:
            if definition.require_approval:
                exact.add(definition.name)
            continue
        # Imported here, as `tools.build` does: only pools with MCP tools load the client.
        from agent_runtime.tools.mcp import PREFIX_SEPARATOR, prefixed

        prefix = definition.mcp.prefix or definition.name
        if definition.require_approval:
            prefixes.append(prefix + PREFIX_SEPARATOR)
        exact.update(prefixed(prefix, remote) for remote in definition.mcp.require_approval)
    frozen_prefixes = tuple(prefixes)

    def needs_approval(tool: str) -> bool:
        return tool in exact or tool.startswith(frozen_prefixes)

    return needs_approval
