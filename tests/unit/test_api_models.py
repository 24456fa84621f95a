"""The API models: defaults, ranges, cross-field rules, camelCase, and the samples."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from pydantic import ValidationError

from agentpool_operator import api
from tests.unit.api_strategies import BASE_POOL, pool_specs, tool_specs

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _examples(kind: str) -> list[dict[str, Any]]:
    docs = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d and d["kind"] == kind]
    return docs


def _dump(model: api.ApiModel) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def _pool(**changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(BASE_POOL)
    spec.update(changes)
    return spec


def _tool(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"description": "Say hello.", "mcp": {"url": "https://m.example.com"}}
    spec.update(changes)
    return spec


def test_the_samples_hold_a_pool_with_every_kind_of_tool() -> None:
    pools = [api.AgentPool.model_validate(d) for d in _examples("AgentPool")]
    tools = [api.AgentTool.model_validate(d) for d in _examples("AgentTool")]
    assert {p.metadata.name for p in pools} >= {"customer-support"}
    assert {t.spec.implementation for t in tools} == {"HTTP", "Command", "Agent", "MCP"}
    # The pool-as-tool points at a pool of the samples.
    agent_tools = [t for t in tools if t.spec.agent is not None]
    assert agent_tools[0].spec.agent is not None
    assert agent_tools[0].spec.agent.pool_name in {p.metadata.name for p in pools}


def test_a_minimal_pool_gets_the_documented_defaults() -> None:
    spec = api.AgentPoolSpec.model_validate(BASE_POOL)
    # replicas has one writer (the autoscaler or the user) and no default.
    assert spec.replicas is None
    assert spec.scaling.mode == "Operator"
    assert (spec.scaling.min_replicas, spec.scaling.max_replicas) == (1, 10)
    assert spec.scaling.operator is None
    settings = spec.scaling.operator_settings
    assert (settings.target_load_percent, settings.scale_down_load_percent) == (70, 40)
    assert settings.signal == "ActiveTurnsAndQueuedTasks"
    assert spec.resilience.circuit_breaker.failure_rate_threshold == 50
    assert spec.resilience.circuit_breaker.sliding_window_type == "CountBased"
    assert spec.resilience.retry.backoff_multiplier == "2"
    assert spec.memory.redis is None
    assert spec.memory.long_term.enabled is None  # on when the pool has Redis
    assert spec.memory.episodic.enabled is False
    assert spec.pod_template.termination_grace_period_seconds == 120
    assert spec.network_policy.enabled is True
    assert spec.disruption_budget.max_unavailable == 1


def test_documents_are_camel_case_and_python_names_are_accepted_too() -> None:
    by_alias = api.ScalingSpec.model_validate({"minReplicas": 2, "maxReplicas": 3})
    by_name = api.ScalingSpec(min_replicas=2, max_replicas=3)
    assert by_alias == by_name
    dumped = _dump(by_alias)
    assert dumped["minReplicas"] == 2
    assert "min_replicas" not in dumped


def test_models_are_immutable() -> None:
    spec = api.AgentPoolSpec.model_validate(BASE_POOL)
    with pytest.raises(ValidationError):
        spec.replicas = 3  # type: ignore[misc]


def test_unknown_fields_are_refused_not_dropped() -> None:
    with pytest.raises(ValidationError, match="minReplica"):
        api.AgentPoolSpec.model_validate(_pool(scaling={"minReplica": 2}))
    # SSE is not a transport the runtime speaks, so the API does not offer it.
    with pytest.raises(ValidationError, match="transport"):
        api.AgentToolSpec.model_validate(
            {"description": "d", "mcp": {"url": "https://m.example.com", "transport": "SSE"}}
        )


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        (_pool(scaling={"minReplicas": 5, "maxReplicas": 2}), "minReplicas must not exceed"),
        (
            _pool(scaling={"operator": {"targetLoadPercent": 30, "scaleDownLoadPercent": 30}}),
            "scaleDownLoadPercent must be below",
        ),
        (_pool(scaling={"mode": "HPA", "minReplicas": 0}), "at least 1 when mode is HPA"),
        (
            _pool(scaling={"minReplicas": 0, "operator": {"signal": "ActiveTurns"}}),
            "minReplicas 0 needs signal ActiveTurnsAndQueuedTasks",
        ),
        (_pool(scaling={"mode": "None", "hpa": {}}), "hpa is only allowed with mode HPA"),
        (_pool(scaling={"mode": "HPA", "operator": {}}), "operator is only allowed"),
        (_pool(replicas=11), "replicas must be within"),
        (_pool(replicas=0), "replicas must be within"),
        (_pool(instructions=None), "exactly one of instructions or instructionsFrom"),
        (
            _pool(instructionsFrom={"configMapKeyRef": {"name": "p", "key": "k"}}),
            "exactly one of instructions or instructionsFrom",
        ),
        (_pool(tools={"selector": {}}), "an empty selector"),
        (_pool(memory={"redis": {}}), "exactly one of url or urlSecretRef"),
        (_pool(memory={"redis": {"url": "redis://a:b@r:6379"}}), "must not contain credentials"),
        (_pool(memory={"episodic": {"embedder": "Endpoint"}}), "embeddingModel is required"),
        (_pool(memory={"longTerm": {"importanceThreshold": "1.5"}}), "between 0 and 1"),
        (_pool(model={**BASE_POOL["model"], "temperature": 0.2}), "string"),
        (_pool(model={**BASE_POOL["model"], "temperature": "2.5"}), "between 0 and 2"),
        (
            _pool(resilience={"circuitBreaker": {"slidingWindowSize": 5}}),
            "minimumNumberOfCalls must not exceed slidingWindowSize",
        ),
        (
            _pool(resilience={"retry": {"initialBackoffMilliseconds": 20_000}}),
            "initialBackoffMilliseconds must not exceed maxBackoffMilliseconds",
        ),
        (
            _pool(podTemplate={"tolerations": [{"operator": "Exists", "value": "x"}]}),
            "value must be empty when operator is Exists",
        ),
        (
            _pool(podTemplate={"tolerations": [{"operator": "Equal", "value": "x"}]}),
            "key is required unless operator is Exists",
        ),
        (
            _pool(
                podTemplate={"tolerations": [{"key": "k", "value": "v", "tolerationSeconds": 5}]}
            ),
            "tolerationSeconds is only allowed with effect NoExecute",
        ),
        (
            _pool(podTemplate={"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}),
            "duplicate name",
        ),
        (
            _pool(podTemplate={"env": [{"name": "AGENTPOOL_REDIS_URL", "value": "x"}]}),
            "reserved for the operator",
        ),
        (
            _pool(podTemplate={"labels": {"agentpool.dev/pool": "other"}}),
            "label keys under agentpool.dev/",
        ),
        (
            _pool(podTemplate={"volumeMounts": [{"name": "x", "mountPath": "/data"}]}),
            "every volumeMount must name one of volumes",
        ),
        (
            _pool(
                podTemplate={
                    "volumes": [{"name": "x", "emptyDir": {}}],
                    "volumeMounts": [{"name": "x", "mountPath": "/etc/agentpool/x"}],
                }
            ),
            "mountPath must not be /etc/agentpool",
        ),
        (
            _pool(podTemplate={"volumes": [{"name": "agentpool-x", "emptyDir": {}}]}),
            "reserved for the operator",
        ),
        (
            _pool(podTemplate={"serviceAccountName": "a", "serviceAccount": {}}),
            "mutually exclusive",
        ),
        (_pool(tools={"refs": [{"name": "a"}, {"name": "a"}]}), "duplicate name"),
        (
            _pool(tools={"selector": {"matchExpressions": [{"key": "k", "operator": "In"}]}}),
            "values must be non-empty for In",
        ),
        (
            _pool(podTemplate={"resources": {"limits": {"cpu": "lots"}}}),
            "not a Kubernetes quantity",
        ),
        (_pool(disruptionBudget={"maxUnavailable": "150%"}), "percentage"),
    ],
)
def test_pool_cross_field_rules_refuse_with_a_message_naming_the_field(
    spec: dict[str, Any], words: str
) -> None:
    spec = {k: v for k, v in spec.items() if v is not None}
    with pytest.raises(ValidationError, match=words):
        api.AgentPoolSpec.model_validate(spec)


@pytest.mark.parametrize(
    ("name", "kind", "ok"),
    [
        ("billing", "AgentPool", True),
        ("1billing", "AgentPool", False),
        ("billing.eu", "AgentPool", False),
        ("a" * api.MAX_POOL_NAME, "AgentPool", True),
        ("a" * (api.MAX_POOL_NAME + 1), "AgentPool", False),
        ("lookup-order", "AgentTool", True),
        ("orders.v2", "AgentTool", False),
        ("a" * 64, "AgentTool", True),
        ("a" * 65, "AgentTool", False),
    ],
)
def test_names_must_fit_what_is_derived_from_them(name: str, kind: str, ok: bool) -> None:
    spec = BASE_POOL if kind == "AgentPool" else {"description": "d", "agent": {"poolName": "p"}}
    document = {"metadata": {"name": name}, "spec": spec}
    model = api.AgentPool if kind == "AgentPool" else api.AgentTool
    if ok:
        model.model_validate(document)
    else:
        with pytest.raises(ValidationError, match=r"metadata\.name"):
            model.model_validate(document)


_PARAMS = {"type": "object", "properties": {"id": {"type": "string"}}}


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        (_tool(http={"url": "https://x.example.com"}), "exactly one of http, command, mcp"),
        ({"description": "nothing"}, "exactly one of http, command, mcp"),
        (_tool(parameters={"type": "array"}), "type: object"),
        (_tool(parameters=_PARAMS), "not allowed for mcp tools"),
        (
            {"description": "d", "http": {"url": "https://x.example.com"}},
            "parameters is required for http",
        ),
        (
            {
                "description": "d",
                "parameters": _PARAMS,
                "http": {"url": "https://x.example.com/{order}"},
            },
            "placeholder of http.url must be declared",
        ),
        (
            {
                "description": "d",
                "parameters": _PARAMS,
                "command": {
                    "argv": ["/bin/echo", "--id={id}{x}"],
                    "allowedBinaries": ["/bin/echo"],
                },
            },
            "placeholder of command.argv must be declared",
        ),
        (
            {
                "description": "d",
                "parameters": {"type": "object", "properties": {"a": {"type": "banana"}}},
                "http": {"url": "https://x.example.com"},
            },
            "not a valid JSON Schema",
        ),
        (
            _tool(hints={"readOnlyHint": True, "destructiveHint": True}),
            "readOnlyHint cannot have destructiveHint",
        ),
        (_tool(cache={"enabled": True}), "cache can only be enabled for tools with readOnlyHint"),
        (
            {
                "description": "d",
                "mcp": {
                    "url": "https://m.example.com",
                    "toolNames": ["a"],
                    "requireApproval": ["b"],
                },
            },
            "requireApproval must be a subset of toolNames",
        ),
        (
            {
                "description": "d",
                "parameters": _PARAMS,
                "command": {"argv": ["/bin/rm", "-rf"], "allowedBinaries": ["/bin/echo"]},
            },
            "argv\\[0\\] must be one of allowedBinaries",
        ),
        (
            {
                "description": "d",
                "parameters": _PARAMS,
                "http": {
                    "url": "https://x.example.com",
                    "headers": [{"name": "Authorization", "value": "Bearer leaked"}],
                },
            },
            "Authorization header must come from a secretKeyRef",
        ),
        (
            {
                "description": "d",
                "parameters": _PARAMS,
                "http": {"url": "https://x.example.com", "headers": [{"name": "X-A"}]},
            },
            "exactly one of value or secretKeyRef",
        ),
    ],
)
def test_tool_rules_refuse_with_a_message_naming_the_field(
    spec: dict[str, Any], words: str
) -> None:
    with pytest.raises(ValidationError, match=words):
        api.AgentToolSpec.model_validate(spec)


def test_a_tools_overrides_carry_no_defaults_of_their_own() -> None:
    tool = api.AgentToolSpec.model_validate(
        _tool(resilience={"retry": {"maxAttempts": 5}, "circuitBreaker": {"enabled": False}})
    )
    assert tool.resilience is not None
    assert tool.resilience.retry is not None
    assert tool.resilience.retry.model_dump(exclude_none=True) == {"max_attempts": 5}
    assert tool.resilience.circuit_breaker is not None
    assert tool.resilience.circuit_breaker.model_dump(exclude_none=True) == {"enabled": False}


def test_a_read_only_tool_may_be_cached_and_leaves_destructive_unset() -> None:
    tool = api.AgentToolSpec.model_validate(
        _tool(hints={"readOnlyHint": True}, cache={"enabled": True, "ttlSeconds": 5})
    )
    assert tool.cache is not None
    assert tool.cache.ttl_seconds == 5
    assert tool.hints.destructive_hint is None


@pytest.mark.parametrize(
    ("value", "ok"),
    [(1, True), ("250m", True), ("1.5Gi", True), ("2e3", True), ("1 GB", False), ("", False)],
)
def test_quantities_follow_kubernetes(value: int | str, ok: bool) -> None:
    doc = {"requests": {"memory": value}}
    if ok:
        assert api.ResourceRequirements.model_validate(doc).requests["memory"] == value
    else:
        with pytest.raises(ValidationError):
            api.ResourceRequirements.model_validate(doc)


def test_secrets_are_only_referenced() -> None:
    # No field of a spec can hold an API key or a Redis password in clear.
    with pytest.raises(ValidationError):
        api.ModelSpec.model_validate(
            {"baseUrl": "https://x.example.com", "name": "m", "apiKey": "sk-123"}
        )
    ref = api.ModelSpec.model_validate(
        {
            "baseUrl": "https://x.example.com",
            "name": "m",
            "apiKeySecretRef": {"name": "s", "key": "k"},
        }
    )
    assert ref.api_key_secret_ref == api.SecretKeyRef(name="s", key="k")


def test_status_conditions_have_the_metav1_shape() -> None:
    status = api.AgentPoolStatus.model_validate(
        {
            "replicas": 2,
            "selector": "app=x",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "AllReplicasReady",
                    "message": "2/2 ready",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                    "observedGeneration": 3,
                }
            ],
        }
    )
    dumped = _dump(status)
    assert dumped["conditions"][0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    with pytest.raises(ValidationError):
        api.Condition.model_validate(
            {
                "type": "Ready",
                "status": "Yes",
                "reason": "X",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        )


@given(pool_specs())
def test_generated_pool_specs_are_accepted_and_round_trip(spec: dict[str, Any]) -> None:
    model = api.AgentPoolSpec.model_validate(spec)
    assert api.AgentPoolSpec.model_validate(_dump(model)) == model


@given(tool_specs())
def test_generated_tool_specs_are_accepted_and_round_trip(spec: dict[str, Any]) -> None:
    model = api.AgentToolSpec.model_validate(spec)
    assert api.AgentToolSpec.model_validate(_dump(model)) == model
    assert model.implementation in ("HTTP", "Command", "MCP", "Agent")
