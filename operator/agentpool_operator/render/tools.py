"""Which AgentTools a pool resolves: those it names and those its selector matches, from
the tools of its namespace (the operator's index: no API call per reconcile)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from agentpool_operator import api
from agentpool_operator.render.config import Caller, Problem


def selects(selector: api.LabelSelector, labels: Mapping[str, str]) -> bool:
    """Whether `labels` satisfy `selector`, as metav1.LabelSelector means it."""
    if any(labels.get(k) != v for k, v in selector.match_labels.items()):
        return False
    for req in selector.match_expressions:
        present = req.key in labels
        if req.operator == "In" and not (present and labels[req.key] in req.values):
            return False
        if req.operator == "NotIn" and present and labels[req.key] in req.values:
            return False
        if req.operator == "Exists" and not present:
            return False
        if req.operator == "DoesNotExist" and present:
            return False
    # An empty selector selects everything; the API refuses one on a pool.
    return True


@dataclass(frozen=True)
class Resolution:
    """The tools a pool gets, and what it named that does not exist."""

    tools: tuple[api.AgentTool, ...]
    problems: tuple[Problem, ...]


def resolve_tools(selection: api.ToolSelection, available: Iterable[api.AgentTool]) -> Resolution:
    """The AgentTools of `selection` among `available` (the pool's namespace), by name."""
    by_name = {t.metadata.name: t for t in available}
    chosen: dict[str, api.AgentTool] = {}
    missing: list[str] = []
    for ref in selection.refs:
        tool = by_name.get(ref.name)
        if tool is None:
            missing.append(ref.name)
        else:
            chosen[ref.name] = tool
    if selection.selector is not None:
        for name, tool in by_name.items():
            if selects(selection.selector, tool.metadata.labels):
                chosen[name] = tool
    problems = tuple(Problem("ToolNotFound", f"AgentTool {name!r} not found") for name in missing)
    return Resolution(tools=tuple(chosen[n] for n in sorted(chosen)), problems=problems)


def names_tool(selection: api.ToolSelection, tool: api.AgentTool) -> bool:
    """Whether a change of `tool` (same namespace) may change what `selection` resolves."""
    if any(ref.name == tool.metadata.name for ref in selection.refs):
        return True
    return selection.selector is not None and selects(selection.selector, tool.metadata.labels)


def service_account_name(pool: api.AgentPool) -> str:
    """The ServiceAccount a pool's pods run as."""
    return pool.spec.pod_template.service_account_name or pool.metadata.name


def callers_of(
    pool_name: str,
    pools: Iterable[api.AgentPool] | Callable[[], Iterable[api.AgentPool]],
    available: Iterable[api.AgentTool],
) -> tuple[Caller, ...]:
    """Every pool of the namespace that calls `pool_name` through an agent tool."""
    targeting = [
        t for t in available if t.spec.agent is not None and t.spec.agent.pool_name == pool_name
    ]
    if not targeting:  # the common case, and the cheap one
        return ()
    if callable(pools):  # only now worth listing the namespace's pools
        pools = pools()
    found = {
        Caller(
            other.metadata.namespace or "default", service_account_name(other), other.metadata.name
        )
        for other in pools
        if other.metadata.name != pool_name
        and any(names_tool(other.spec.tools, tool) for tool in targeting)
    }
    return tuple(sorted(found))
