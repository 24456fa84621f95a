"""A pool's children: deterministic, owned, labelled, named within limits, secure by
default, and the config hash moves only with the spec, the tools and referenced objects."""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from agentpool_operator import api
from agentpool_operator.render import names
from agentpool_operator.render.children import desired_state, initial_replicas
from agentpool_operator.render.config import RenderSettings
from agentpool_operator.render.references import ObjectVersion
from tests.unit.api_strategies import BASE_POOL, pool_specs, tool_names, tool_specs

pool_names = st.from_regex(r"[a-z]([a-z0-9-]{0,50}[a-z0-9])?", fullmatch=True)
namespaces = st.from_regex(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?", fullmatch=True)
named_tools = st.lists(st.tuples(tool_names, tool_specs()), max_size=3, unique_by=lambda t: t[0])
SETTINGS = RenderSettings(agent_image="registry.local/agent:1", operator_namespace="ops")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _pool(spec: dict[str, Any], name: str = "support", namespace: str = "shop") -> api.AgentPool:
    return api.AgentPool.model_validate(
        {
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": "0b8d4c5e-2f5a-4b8e-9a51-3c8e6f0d1a22",
                "generation": 3,
            },
            "spec": spec,
        }
    )


def _tools(tools: list[tuple[str, dict[str, Any]]], namespace: str = "shop") -> list[api.AgentTool]:
    return [
        api.AgentTool.model_validate(
            {"metadata": {"name": n, "namespace": namespace, "labels": {"team": "a"}}, "spec": s}
        )
        for n, s in tools
    ]


@given(spec=pool_specs(), tools=named_tools, name=pool_names, namespace=namespaces)
def test_children_are_deterministic_owned_labelled_and_named_within_limits(
    spec: dict[str, Any], tools: list[tuple[str, dict[str, Any]]], name: str, namespace: str
) -> None:
    pool = _pool(spec, name, namespace)
    first = desired_state(pool, _tools(tools, namespace), {}, SETTINGS)
    again = desired_state(pool, list(reversed(_tools(tools, namespace))), {}, SETTINGS)
    assert first == again
    kinds = [c["kind"] for c in first.children]
    assert len(kinds) == len(set(kinds))
    assert {"ConfigMap", "Deployment", "Service"} <= set(kinds)
    for child in first.children:
        meta = child["metadata"]
        assert meta["namespace"] == namespace
        assert meta["ownerReferences"] == [names.owner_reference(pool)]
        assert meta["ownerReferences"][0]["controller"] is True
        assert meta["labels"][names.MANAGED_BY_LABEL] == names.MANAGED_BY
        assert meta["labels"][names.POOL_LABEL] == name
        assert all(LABEL_VALUE.match(v) and len(v) <= 63 for v in meta["labels"].values())
        # Services need a DNS-1035 label; every other child's name fits a DNS-1123 label.
        assert DNS1123_LABEL.match(meta["name"])
        assert len(meta["name"]) <= 63


@given(spec=pool_specs())
def test_the_pods_pass_the_restricted_standard_unless_the_pool_weakens_them(
    spec: dict[str, Any],
) -> None:
    spec = {**spec, "podTemplate": {}}
    deployment = next(
        c
        for c in desired_state(_pool(spec), [], {}, SETTINGS).children
        if c["kind"] == "Deployment"
    )
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["readOnlyRootFilesystem"] is True
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for volume in pod["volumes"]:
        assert set(volume) - {"name"} <= {"projected", "emptyDir", "configMap", "secret"}


def test_the_config_hash_moves_with_the_spec_and_referenced_versions_only() -> None:
    spec = {
        **BASE_POOL,
        "model": {**BASE_POOL["model"], "apiKeySecretRef": {"name": "llm", "key": "k"}},
    }
    pool = _pool(spec)
    known = {("Secret", "llm"): ObjectVersion("10", frozenset({"k"}))}
    base = desired_state(pool, [], known, SETTINGS)
    assert base.problems == ()
    # Scaling is not configuration: replicas change, nothing rolls.
    scaled = _pool({**spec, "replicas": 3})
    assert desired_state(scaled, [], known, SETTINGS).config_hash == base.config_hash
    # An unrelated Secret changing does not roll the pods; the API key's rotation does.
    other = {**known, ("Secret", "unrelated"): ObjectVersion("99", frozenset({"x"}))}
    assert desired_state(pool, [], other, SETTINGS).config_hash == base.config_hash
    rotated = {("Secret", "llm"): ObjectVersion("11", frozenset({"k"}))}
    assert desired_state(pool, [], rotated, SETTINGS).config_hash != base.config_hash
    changed = _pool({**spec, "instructions": "Be brief."})
    assert desired_state(changed, [], known, SETTINGS).config_hash != base.config_hash


def test_missing_secrets_keys_and_tools_are_named_as_problems() -> None:
    spec = {
        **BASE_POOL,
        "model": {**BASE_POOL["model"], "apiKeySecretRef": {"name": "llm", "key": "api-key"}},
        "tools": {"refs": [{"name": "orders"}]},
    }
    state = desired_state(_pool(spec), [], {}, SETTINGS)
    assert [p.reason for p in state.problems] == ["ToolNotFound", "SecretNotFound"]
    assert "orders" in state.problems[0].message
    assert "llm" in state.problems[1].message
    known = {("Secret", "llm"): ObjectVersion("1", frozenset({"other"}))}
    state = desired_state(_pool(spec), [], known, SETTINGS)
    assert [p.reason for p in state.problems] == ["ToolNotFound", "SecretKeyNotFound"]


def test_a_selector_resolves_tools_by_label() -> None:
    tools = _tools([("lookup", {"description": "d", "agent": {"poolName": "billing"}})])
    spec = {**BASE_POOL, "tools": {"selector": {"matchLabels": {"team": "a"}}}}
    assert [t.metadata.name for t in desired_state(_pool(spec), tools, {}, SETTINGS).tools] == [
        "lookup"
    ]
    spec = {**BASE_POOL, "tools": {"selector": {"matchLabels": {"team": "b"}}}}
    assert desired_state(_pool(spec), tools, {}, SETTINGS).tools == ()


def test_optional_children_follow_the_spec() -> None:
    def kinds(spec: dict[str, Any]) -> set[str]:
        return {c["kind"] for c in desired_state(_pool(spec), [], {}, SETTINGS).children}

    assert "PodDisruptionBudget" not in kinds({**BASE_POOL, "replicas": 1})
    assert "PodDisruptionBudget" in kinds({**BASE_POOL, "replicas": 2})
    assert "NetworkPolicy" not in kinds({**BASE_POOL, "networkPolicy": {"enabled": False}})
    assert "HorizontalPodAutoscaler" in kinds({**BASE_POOL, "scaling": {"mode": "HPA"}})
    assert "HorizontalPodAutoscaler" not in kinds(BASE_POOL)
    assert "ServiceAccount" not in kinds(
        {**BASE_POOL, "podTemplate": {"serviceAccountName": "existing"}}
    )


def test_an_absent_replica_count_never_resets_a_scaled_deployment() -> None:
    pool = _pool({**BASE_POOL, "scaling": {"minReplicas": 2, "maxReplicas": 6}})
    assert initial_replicas(pool, None) == 2
    assert initial_replicas(pool, 5) == 5
    assert initial_replicas(pool, 9) == 6
    deployment = next(
        c for c in desired_state(pool, [], {}, SETTINGS).children if c["kind"] == "Deployment"
    )
    assert "replicas" not in deployment["spec"]
    none = _pool({**BASE_POOL, "scaling": {"mode": "None"}})
    assert initial_replicas(none, None) == 1
    assert initial_replicas(none, 4) == 4


def _tool_named(name: str, spec: dict[str, Any]) -> api.AgentTool:
    return api.AgentTool.model_validate(
        {"metadata": {"name": name, "namespace": "shop"}, "spec": spec}
    )


def test_a_pool_lets_in_the_pools_that_call_it_and_calls_others_with_their_audience() -> None:
    from agentpool_operator.render.tools import callers_of

    ask = _tool_named("ask-billing", {"description": "d", "agent": {"poolName": "billing"}})
    front = _pool({**BASE_POOL, "tools": {"refs": [{"name": "ask-billing"}]}}, "front")
    billing = _pool(BASE_POOL, "billing")
    callers = callers_of("billing", [front, billing], [ask])
    assert callers == (("shop", "front", "front"),)  # namespace, ServiceAccount, pool
    assert callers_of("front", [front, billing], [ask]) == ()
    state = desired_state(billing, [ask], {}, SETTINGS, callers)
    config = json.loads(
        next(c for c in state.children if c["kind"] == "ConfigMap")["data"]["config.json"]
    )
    accounts = config["auth"]["serviceAccounts"]
    assert accounts["audience"] == "agentpool/shop/billing"
    assert accounts["allow"] == [{"namespace": "shop", "name": "front", "tenant": "*"}]
    pod = next(c for c in state.children if c["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert "agentpool-kube-api" in {v["name"] for v in pod["volumes"]}
    caller = desired_state(front, [ask], {}, SETTINGS)
    pod = next(c for c in caller.children if c["kind"] == "Deployment")["spec"]["template"]["spec"]
    identity = next(v for v in pod["volumes"] if v["name"] == "agentpool-identity")
    token = identity["projected"]["sources"][0]["serviceAccountToken"]
    assert token["audience"] == "agentpool/shop/billing"
    assert token["path"] == "ask-billing.token"
    assert caller.problems == ()


def test_a_network_policy_naming_its_callers_still_admits_the_pools_that_use_it() -> None:
    from agentpool_operator.render.tools import callers_of

    ask = _tool_named("ask-billing", {"description": "d", "agent": {"poolName": "billing"}})
    front = _pool({**BASE_POOL, "tools": {"refs": [{"name": "ask-billing"}]}}, "front")
    gateway = {"podSelector": {"matchLabels": {"app": "gateway"}}}

    def sources(spec: dict[str, Any]) -> list[dict[str, Any]]:
        billing = _pool(spec, "billing")
        state = desired_state(billing, [ask], {}, SETTINGS, callers_of("billing", [front], [ask]))
        policy = next(c for c in state.children if c["kind"] == "NetworkPolicy")
        found: list[dict[str, Any]] = policy["spec"]["ingress"][0]["from"]
        return found

    operator = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ops"}}}
    # Nobody named: the whole namespace, front included.
    assert sources(BASE_POOL) == [{"podSelector": {}}, operator]
    # A gateway named: the gateway, front's pods (it calls billing as a tool), the operator.
    named = {**BASE_POOL, "networkPolicy": {"allowedCallers": [gateway]}}
    front_pods = {"podSelector": {"matchLabels": {"agentpool.dev/pool": "front"}}}
    assert sources(named) == [gateway, front_pods, operator]


def test_auth_is_required_unless_disabled_in_writing_and_tokens_come_from_a_secret() -> None:
    def auth(spec: dict[str, Any]) -> dict[str, Any]:
        state = desired_state(_pool(spec), [], {}, SETTINGS)
        cm = next(c for c in state.children if c["kind"] == "ConfigMap")
        found: dict[str, Any] = json.loads(cm["data"]["config.json"])["auth"]
        return found

    assert auth(BASE_POOL)["mode"] == "required"
    assert auth({**BASE_POOL, "access": {"mode": "Disabled"}})["mode"] == "disabled"
    ref = {"name": "api-tokens", "key": "tokens.yaml"}
    assert auth({**BASE_POOL, "access": {"tokensSecretRef": ref}})["tokensFile"] == (
        "/etc/agentpool/auth/tokens.yaml"
    )


def test_command_tools_run_in_a_sidecar_that_holds_no_secret() -> None:
    tool = _tool_named(
        "grep-logs",
        {
            "description": "d",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
            "command": {"argv": ["grep", "{q}", "/var/log/app.log"], "allowedBinaries": ["grep"]},
        },
    )
    spec = {
        **BASE_POOL,
        "model": {**BASE_POOL["model"], "apiKeySecretRef": {"name": "llm", "key": "k"}},
        "tools": {"refs": [{"name": "grep-logs"}]},
    }
    state = desired_state(_pool(spec), [tool], {}, SETTINGS)
    pod = next(c for c in state.children if c["kind"] == "Deployment")["spec"]["template"]["spec"]
    runner = next(c for c in pod["containers"] if c["name"] == "tool-runner")
    assert runner["securityContext"]["runAsUser"] != pod["securityContext"]["runAsUser"]
    assert "env" not in runner
    assert "envFrom" not in runner
    assert {m["name"] for m in runner["volumeMounts"]} == {
        "agentpool-tools-socket",
        "agentpool-runner-tmp",
    }
    config = json.loads(
        next(c for c in state.children if c["kind"] == "ConfigMap")["data"]["config.json"]
    )
    assert config["tools"]["commandRunner"] == {"socket": "/run/agentpool/tools/runner.sock"}
    plain = desired_state(_pool(BASE_POOL), [], {}, SETTINGS)
    pod = next(c for c in plain.children if c["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["agent"]


def test_resources_merge_over_the_defaults_and_stay_valid() -> None:
    from agentpool_operator.render.workload import _resources

    merged = _resources(api.ResourceRequirements.model_validate({"limits": {"cpu": 0}}))
    assert merged["requests"]["cpu"] == 0  # the default 100m would exceed the limit
    merged = _resources(api.ResourceRequirements.model_validate({"requests": {"memory": "4Gi"}}))
    assert merged["limits"]["memory"] == "4Gi"  # the default 1Gi would be below the request
    assert merged["requests"]["ephemeral-storage"] == "64Mi"
