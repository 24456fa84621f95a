"""Which ServiceAccounts must be allowed to create TokenReviews: those of the pools whose
runtime checks projected ServiceAccount tokens (`config.reviews_tokens`, the rule the
auth section is rendered by). The operator keeps the subjects of one ClusterRoleBinding
equal to this set (`controller/reviewers.py`); a TokenReview is cluster-scoped, so no
Role in the pool's namespace could grant it."""

from __future__ import annotations

from collections.abc import Iterable

from agentpool_operator import api
from agentpool_operator.render.config import reviews_tokens
from agentpool_operator.render.tools import names_tool, service_account_name

Subject = tuple[str, str]
"""A ServiceAccount: (namespace, name)."""


def called_pools(pools: Iterable[api.AgentPool], tools: Iterable[api.AgentTool]) -> set[str]:
    """Names of the pools of one namespace that another pool there uses as a tool (the
    pools `tools.callers_of` finds callers for), in one pass over the agent tools."""
    pools = list(pools)
    found: set[str] = set()
    for tool in tools:
        if tool.spec.agent is None:
            continue
        target = tool.spec.agent.pool_name
        if target in found:
            continue
        if any(p.metadata.name != target and names_tool(p.spec.tools, tool) for p in pools):
            found.add(target)
    return found


def token_reviewers(
    pools: Iterable[api.AgentPool], tools: Iterable[api.AgentTool]
) -> frozenset[Subject]:
    """The ServiceAccounts of the pools of one namespace (`pools`, with the AgentTools of
    that namespace) whose runtime asks TokenReviews."""
    pools = list(pools)
    called = called_pools(pools, tools)
    return frozenset(
        (p.metadata.namespace or "default", service_account_name(p))
        for p in pools
        if reviews_tokens(p.spec.access, p.metadata.name in called)
    )
