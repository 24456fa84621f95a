"""The ServiceAccounts that must be allowed to create TokenReviews are exactly those of the
pools whose rendered runtime config checks ServiceAccount tokens."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from agentpool_operator import api
from agentpool_operator.render.config import RenderSettings, runtime_config
from agentpool_operator.render.reviewers import token_reviewers
from agentpool_operator.render.tools import callers_of, resolve_tools
from tests.unit.api_strategies import BASE_POOL

SETTINGS = RenderSettings(agent_image="registry.local/agent:1", operator_namespace="ops")
POOL_NAMES = ("a", "b", "c", "d")
TOOL_NAMES = ("ask-a", "ask-b", "ask-c", "search")

accesses = st.sampled_from(
    [
        {},
        {"mode": "Disabled"},
        {"serviceAccounts": [{"name": "gateway", "tenant": "*"}]},
        {"mode": "Disabled", "serviceAccounts": [{"name": "gateway", "tenant": "*"}]},
        {"tokensSecretRef": {"name": "tokens", "key": "tokens.yaml"}},
    ]
)
selections = st.one_of(
    st.builds(
        lambda names: {"refs": [{"name": n} for n in names]},
        st.lists(st.sampled_from(TOOL_NAMES), max_size=3, unique=True),
    ),
    st.sampled_from([{"selector": {"matchLabels": {"team": t}}} for t in ("x", "y")]),
)


@st.composite
def namespaces(draw: st.DrawFn) -> tuple[list[api.AgentPool], list[api.AgentTool]]:
    names = draw(st.lists(st.sampled_from(POOL_NAMES), min_size=1, unique=True))
    pools = []
    for name in names:
        spec: dict[str, Any] = {**BASE_POOL, "access": draw(accesses), "tools": draw(selections)}
        if draw(st.booleans()):
            spec["podTemplate"] = {"serviceAccountName": draw(st.sampled_from(["shared", name]))}
        pools.append(_pool(name, spec))
    tools = []
    for name in draw(st.lists(st.sampled_from(TOOL_NAMES), unique=True)):
        spec = (
            {"description": "d", "agent": {"poolName": draw(st.sampled_from(POOL_NAMES))}}
            if name.startswith("ask-")
            else {
                "description": "d",
                "parameters": {"type": "object"},
                "http": {"url": "http://search.example.com/q"},
            }
        )
        labels = {"team": draw(st.sampled_from(["x", "y"]))}
        tools.append(_tool(name, spec, labels))
    return pools, tools


def _pool(name: str, spec: dict[str, Any]) -> api.AgentPool:
    return api.AgentPool.model_validate(
        {"metadata": {"name": name, "namespace": "shop"}, "spec": spec}
    )


def _tool(name: str, spec: dict[str, Any], labels: dict[str, str]) -> api.AgentTool:
    return api.AgentTool.model_validate(
        {"metadata": {"name": name, "namespace": "shop", "labels": labels}, "spec": spec}
    )


@given(namespaces())
def test_the_reviewers_are_the_pools_whose_runtime_reviews_tokens(
    namespace: tuple[list[api.AgentPool], list[api.AgentTool]],
) -> None:
    pools, tools = namespace
    rendered = set()
    for pool in pools:
        callers = callers_of(pool.metadata.name, pools, tools)
        resolved = resolve_tools(pool.spec.tools, tools).tools
        config = runtime_config(pool, resolved, SETTINGS, callers).config
        if config.auth.service_accounts is not None:
            account = pool.spec.pod_template.service_account_name or pool.metadata.name
            rendered.add(("shop", account))
    assert token_reviewers(pools, tools) == rendered


def test_a_called_pool_and_a_pool_naming_service_accounts_review_tokens() -> None:
    ask_b = _tool("ask-b", {"description": "d", "agent": {"poolName": "b"}}, {})
    a = _pool("a", {**BASE_POOL, "tools": {"refs": [{"name": "ask-b"}]}})
    b = _pool("b", BASE_POOL)
    gateway = {"serviceAccounts": [{"namespace": "edge", "name": "gw", "tenant": "*"}]}
    c = _pool("c", {**BASE_POOL, "access": gateway, "podTemplate": {"serviceAccountName": "cc"}})
    assert token_reviewers([a, b, c], [ask_b]) == {("shop", "b"), ("shop", "cc")}
    # Nobody calls b any more: it stops reviewing.
    assert token_reviewers([b, c], [ask_b]) == {("shop", "cc")}
    # A pool calling itself is not a caller (callers_of leaves it out too).
    self_caller = _pool("b", {**BASE_POOL, "tools": {"refs": [{"name": "ask-b"}]}})
    assert token_reviewers([self_caller], [ask_b]) == frozenset()
    # Authentication off: no TokenReview, whoever calls.
    off = _pool("b", {**BASE_POOL, "access": {"mode": "Disabled"}})
    assert token_reviewers([a, off], [ask_b]) == frozenset()
