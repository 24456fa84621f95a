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
    spec: dict[str, Any] = {"description": "Say hello.", "agent": {"poolName": "greeter"}}
    spec.update(changes)
    return spec


def test_the_samples_hold_a_pool_with_three_kinds_of_tools() -> None:
    pools = [api.AgentPool.model_validate(d) for d in _examples("AgentPool")]
    tools = [api.AgentTool.model_validate(d) for d in _examples("AgentTool")]
    assert {p.metadata.name for p in pools} >= {"customer-support"}
    assert {t.spec.implementation for t in tools} == {"Http", "Command", "Agent"}
    # The pool-as-tool points at a pool of the samples.
    agent_tools = [t for t in tools if t.spec.agent is not None]
    assert agent_tools[0].spec.agent is not None
    assert agent_tools[0].spec.agent.pool_name in {p.metadata.name for p in pools}


def test_a_minimal_pool_gets_the_documented_defaults() -> None:
    spec = api.AgentPoolSpec.model_validate(BASE_POOL)
    assert spec.replicas == 1
    assert spec.scaling.mode == "operator"
    assert (spec.scaling.min_replicas, spec.scaling.max_replicas) == (1, 10)
    assert spec.scaling.behavior.scale_up.stabilization_window_seconds == 0
    assert spec.scaling.behavior.scale_down.stabilization_window_seconds == 300
    assert spec.resilience.circuit_breaker.failure_rate_threshold == 50
    assert spec.resilience.circuit_breaker.sliding_window_type == "CountBased"
    assert spec.memory.redis is None
    assert spec.memory.episodic.enabled is False


def test_documents_are_camel_case_and_python_names_are_accepted_too() -> None:
    by_alias = api.ScalingSpec.model_validate({"minReplicas": 2, "maxReplicas": 3})
    by_name = api.ScalingSpec(min_replicas=2, max_replicas=3)
    assert by_alias == by_name
    dumped = _dump(by_alias)
    assert dumped["minReplicas"] == 2
    assert "min_replicas" not in dumped
    assert dumped["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300


def test_models_are_immutable() -> None:
    spec = api.AgentPoolSpec.model_validate(BASE_POOL)
    with pytest.raises(ValidationError):
        spec.replicas = 3  # type: ignore[misc]


def test_unknown_fields_are_refused_not_dropped() -> None:
    with pytest.raises(ValidationError, match="minReplica"):
        api.AgentPoolSpec.model_validate(_pool(scaling={"minReplica": 2}))


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        (_pool(scaling={"minReplicas": 5, "maxReplicas": 2}), "minReplicas must not exceed"),
        (
            _pool(scaling={"targetLoadPercent": 30, "scaleDownLoadPercent": 30}),
            "scaleDownLoadPercent must be below",
        ),
        (_pool(scaling={"mode": "hpa", "minReplicas": 0}), "at least 1 when mode is hpa"),
        (_pool(memory={"redis": {}}), "exactly one of url or urlSecretRef"),
        (_pool(memory={"redis": {"url": "redis://a:b@r:6379"}}), "must not contain credentials"),
        (_pool(memory={"episodic": {"embedder": "Endpoint"}}), "embeddingModel is required"),
        (
            _pool(resilience={"circuitBreaker": {"slidingWindowSize": 5}}),
            "minimumNumberOfCalls must not exceed slidingWindowSize",
        ),
        (
            _pool(resilience={"retry": {"initialBackoffSeconds": 20}}),
            "initialBackoffSeconds must not exceed maxBackoffSeconds",
        ),
        (
            _pool(template={"tolerations": [{"operator": "Exists", "value": "x"}]}),
            "value must be empty when operator is Exists",
        ),
        (
            _pool(template={"tolerations": [{"key": "k", "value": "v", "tolerationSeconds": 5}]}),
            "tolerationSeconds is only allowed with effect NoExecute",
        ),
        (
            _pool(template={"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}),
            "duplicate name",
        ),
        (_pool(tools={"refs": [{"name": "a"}, {"name": "a"}]}), "duplicate name"),
        (
            _pool(tools={"selector": {"matchExpressions": [{"key": "k", "operator": "In"}]}}),
            "values must be non-empty for In",
        ),
        (_pool(template={"resources": {"limits": {"cpu": "lots"}}}), "not a Kubernetes quantity"),
    ],
)
def test_pool_cross_field_rules_refuse_with_a_message_naming_the_field(
    spec: dict[str, Any], words: str
) -> None:
    with pytest.raises(ValidationError, match=words):
        api.AgentPoolSpec.model_validate(spec)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        (_tool(http={"url": "https://x.example.com"}), "exactly one of http, command, mcp"),
        ({"description": "nothing"}, "exactly one of http, command, mcp"),
        (_tool(parameters={"type": "array"}), "parameters must be a JSON Schema with type: object"),
        (
            _tool(parameters={"type": "object", "properties": {"a": {"type": "banana"}}}),
            "parameters is not a valid JSON Schema",
        ),
        (
            _tool(hints={"readOnlyHint": True, "destructiveHint": True}),
            "readOnlyHint cannot have destructiveHint",
        ),
        (_tool(cache={"enabled": True}), "cache can only be enabled for tools with readOnlyHint"),
        (
            {
                "description": "d",
                "command": {"argv": ["/bin/rm", "-rf"], "allowedBinaries": ["/bin/echo"]},
            },
            "argv\\[0\\] must be one of allowedBinaries",
        ),
        (
            {
                "description": "d",
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


def test_a_read_only_tool_may_be_cached_and_leaves_destructive_unset() -> None:
    tool = api.AgentToolSpec.model_validate(
        _tool(hints={"readOnlyHint": True}, cache={"ttlSeconds": 5})
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
    assert model.implementation in ("Http", "Command", "Mcp", "Agent")
