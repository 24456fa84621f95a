"""The pod runner's pure parts: every pod the operator renders gets a plan, its config
maps to host paths and stays a valid runtime config, and the front balances by least
connections over serving processes only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agent_runtime.config import RuntimeConfig
from agentpool_operator import api
from agentpool_operator.render.children import desired_state
from agentpool_operator.render.config import RenderSettings
from hack.pod_runner.front import Backend, PoolFront
from hack.pod_runner.plan import field_value, is_wanted, plan_pod
from hack.pod_runner.rewrite import HostLayout, rewrite_argv, rewrite_config, rewrite_url
from tests.unit.api_strategies import pool_specs, tool_names, tool_specs

SETTINGS = RenderSettings(agent_image="registry.local/agent:1", operator_namespace="ops")
named_tools = st.lists(st.tuples(tool_names, tool_specs()), max_size=3, unique_by=lambda t: t[0])


def _rendered(
    spec: dict[str, Any], tools: list[tuple[str, dict[str, Any]]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A Running pod of the pool's Deployment, and the config its ConfigMap holds."""
    meta = {"name": "support", "namespace": "shop", "uid": "0b8d4c5e-2f5a", "generation": 1}
    pool = api.AgentPool.model_validate({"metadata": meta, "spec": spec})
    agent_tools = [
        api.AgentTool.model_validate({"metadata": {"name": n, "namespace": "shop"}, "spec": s})
        for n, s in tools
    ]
    children = desired_state(pool, agent_tools, {}, SETTINGS).children
    deployment = next(c for c in children if c["kind"] == "Deployment")
    config_map = next(c for c in children if c["kind"] == "ConfigMap")
    template = deployment["spec"]["template"]
    pod = {
        "metadata": {
            **template["metadata"],
            "name": "support-7d9f-abcde",
            "namespace": "shop",
            "uid": "4f1c2a9e-0000-4000-8000-000000000001",
        },
        "spec": {**template["spec"], "nodeName": "node-0"},
        "status": {"phase": "Running"},
    }
    return pod, json.loads(config_map["data"]["config.json"])


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)


def _resolve(host: str, port: int) -> str | None:
    return "127.0.0.1:18081" if host.endswith(".svc") else None


@settings(max_examples=40, deadline=None)  # each example renders a whole pool
@given(spec=pool_specs(), tools=named_tools)
def test_every_rendered_pod_has_a_plan_whose_config_maps_to_the_host_and_stays_valid(
    spec: dict[str, Any], tools: list[tuple[str, dict[str, Any]]]
) -> None:
    pod, config = _rendered(spec, tools)
    plan = plan_pod(pod)
    assert plan is not None
    assert is_wanted(pod)
    assert (plan.pool, plan.name, plan.namespace) == ("support", "support-7d9f-abcde", "shop")
    assert plan.pre_stop is not None
    assert plan.pre_stop[:2] == ("agentpool-agent", "--drain")
    assert plan.grace_seconds == pod["spec"]["terminationGracePeriodSeconds"]
    layout = HostLayout("/h", tuple(m.container_path for m in plan.mounts))
    rewritten = rewrite_config(config, layout, _resolve, plan.namespace)
    # No string names a container path any more, and the runtime still accepts it.
    assert [s for s in _strings(rewritten) if layout.host_path(s) is not None] == []
    RuntimeConfig.model_validate(rewritten)
    for tool in rewritten["tools"]["definitions"]:
        agent = tool.get("agent")
        if agent is not None:
            assert (agent["url"], agent["pool"]) == ("http://127.0.0.1:18081", None)
    argv = rewrite_argv(plan.args, layout, container_port=plan.container_port, host_port=4321)
    assert argv == ["--config", "/h/etc/agentpool/config.json", "--port", "4321"]
    hook = rewrite_argv(plan.pre_stop, layout, container_port=plan.container_port, host_port=4321)
    assert "--port=4321" in hook


def test_the_downward_api_fields_the_operator_uses_are_filled() -> None:
    pod, _ = _rendered(
        {"instructions": "Help.", "model": {"baseUrl": "http://m/v1", "name": "m"}}, []
    )
    plan = plan_pod(pod)
    assert plan is not None
    names = {e.name: e.field_path for e in plan.env if e.field_path}
    assert field_value(plan, names["AGENTPOOL_POD_NAME"], pod_ip="127.0.0.1") == plan.name
    assert field_value(plan, names["AGENTPOOL_POD_NAMESPACE"], pod_ip="127.0.0.1") == "shop"
    assert field_value(plan, "metadata.labels['agentpool.dev/pool']", pod_ip="x") == "support"
    assert not is_wanted({**pod, "metadata": {**pod["metadata"], "deletionTimestamp": "now"}})
    assert plan_pod({**pod, "spec": {"containers": [{"name": "other"}]}}) is None


def test_urls_move_only_where_the_resolver_knows_the_host() -> None:
    aliases = {("agentpool-redis.ops.svc", 6379): "127.0.0.1:16379"}

    def resolve(host: str, port: int) -> str | None:
        return aliases.get((host, port))

    assert rewrite_url("redis://:pw@agentpool-redis.ops.svc/0", resolve) == (
        "redis://:pw@127.0.0.1:16379/0"
    )
    assert rewrite_url("redis://agentpool-redis.ops.svc:6380/0", resolve) == (
        "redis://agentpool-redis.ops.svc:6380/0"
    )
    assert rewrite_url("https://api.openai.com/v1", resolve) == "https://api.openai.com/v1"


def test_the_front_picks_the_least_busy_serving_process_and_rotates_ties() -> None:
    front = PoolFront("shop", "support")
    a, b = Backend("a", 1, ready=True), Backend("b", 2, ready=True)
    front.backends = {
        "a": a,
        "b": b,
        "c": Backend("c", 3, ready=True, draining=True),
        "d": Backend("d", 4),  # not ready yet
    }
    picks = [front.pick() for _ in range(4)]
    assert [p.pod for p in picks if p] == ["a", "b", "a", "b"]
    a.inflight = 2
    assert {front.pick().pod for _ in range(3)} == {"b"}  # type: ignore[union-attr]
    b.draining = True
    assert front.pick() is a
    a.ready = False
    assert front.pick() is None
