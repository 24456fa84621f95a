"""The bridge from the API to the runtime config: every spec the models accept renders to
a config the runtime accepts, and what the spec says reaches the runtime."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from agent_runtime.config import RuntimeConfig, dump_runtime_config, parse_runtime_config
from agentpool_operator import api
from agentpool_operator.render.config import (
    INSTRUCTIONS_FILE,
    MODEL_API_KEY_ENV,
    REDIS_URL_ENV,
    RenderSettings,
    runtime_config,
)
from tests.unit.api_strategies import BASE_POOL, pool_specs, tool_names, tool_specs


def _pool(spec: dict[str, Any], name: str = "support", namespace: str = "shop") -> api.AgentPool:
    return api.AgentPool.model_validate(
        {"metadata": {"name": name, "namespace": namespace}, "spec": spec}
    )


def _tool(name: str, spec: dict[str, Any]) -> api.AgentTool:
    return api.AgentTool.model_validate({"metadata": {"name": name}, "spec": spec})


named_tools = st.lists(st.tuples(tool_names, tool_specs()), max_size=4, unique_by=lambda t: t[0])


@given(
    spec=pool_specs(),
    tools=named_tools,
    default_redis=st.sampled_from([None, "redis://agentpool-redis:6379/0"]),
)
def test_every_spec_the_models_accept_renders_to_a_config_the_runtime_accepts(
    spec: dict[str, Any], tools: list[tuple[str, dict[str, Any]]], default_redis: str | None
) -> None:
    pool = _pool(spec)
    resolved = [_tool(name, tool) for name, tool in tools]
    rendered = runtime_config(pool, resolved, RenderSettings(default_redis_url=default_redis))
    # What the operator writes is what the runtime reads back, unchanged.
    document = dump_runtime_config(rendered.config)
    assert parse_runtime_config(document) == rendered.config
    assert rendered.config.pool.name == "support"
    assert {d.name for d in rendered.config.tools.definitions} == {t for t, _ in tools}
    # Secrets only by reference: no value of a secret key can be in the document.
    names = {e.name for e in rendered.secret_env}
    assert len(names) == len(rendered.secret_env), "two secrets share one variable"


@given(spec=pool_specs(), tools=named_tools)
def test_rendering_is_deterministic_and_ignores_tool_order(
    spec: dict[str, Any], tools: list[tuple[str, dict[str, Any]]]
) -> None:
    resolved = [_tool(name, tool) for name, tool in tools]
    first = runtime_config(_pool(spec), resolved, RenderSettings())
    second = runtime_config(_pool(spec), list(reversed(resolved)), RenderSettings())
    assert dump_runtime_config(first.config) == dump_runtime_config(second.config)
    assert first == second


def _config(spec: dict[str, Any], *tools: api.AgentTool, **settings: Any) -> RuntimeConfig:
    return runtime_config(_pool(spec), tools, RenderSettings(**settings)).config


def test_a_tool_that_overrides_half_a_retry_section_keeps_the_pools_other_half() -> None:
    spec = {
        **BASE_POOL,
        "resilience": {
            "retry": {
                "maxAttempts": 5,
                "initialBackoffMilliseconds": 300,
                "maxBackoffMilliseconds": 4000,
                "backoffMultiplier": "1.5",
            },
            "circuitBreaker": {"failureRateThreshold": 40, "slidingWindowSize": 50},
        },
    }
    tool = _tool(
        "lookup",
        {
            "description": "d",
            "parameters": {"type": "object"},
            "http": {"url": "https://x.example.com"},
            "resilience": {"retry": {"maxAttempts": 2}, "circuitBreaker": {"enabled": False}},
        },
    )
    [definition] = _config(spec, tool).tools.definitions
    assert definition.resilience is not None
    retry = definition.resilience.retry
    assert retry.max_attempts == 2  # the tool's
    assert (retry.initial_backoff_seconds, retry.max_backoff_seconds) == (0.3, 4.0)  # the pool's
    assert retry.multiplier == 1.5
    breaker = definition.resilience.circuit_breaker
    assert breaker.enabled is False  # the tool's
    assert (breaker.failure_rate_threshold, breaker.window_size) == (40.0, 50)  # the pool's


def test_secrets_become_environment_variables_and_files_never_values() -> None:
    spec = {
        **BASE_POOL,
        "instructions": None,
        "instructionsFrom": {"configMapKeyRef": {"name": "prompts", "key": "support"}},
        "model": {
            **BASE_POOL["model"],
            "apiKeySecretRef": {"name": "llm", "key": "key"},
            "caBundle": {"configMapKeyRef": {"name": "ca", "key": "ca.pem"}},
        },
        "memory": {"redis": {"urlSecretRef": {"name": "redis", "key": "url"}}},
    }
    spec = {k: v for k, v in spec.items() if v is not None}
    rendered = runtime_config(_pool(spec), [], RenderSettings())
    env = {e.name: (e.secret.name, e.secret.key) for e in rendered.secret_env}
    assert env == {MODEL_API_KEY_ENV: ("llm", "key"), REDIS_URL_ENV: ("redis", "url")}
    config = rendered.config
    assert config.model is not None
    assert config.model.primary.api_key_env == MODEL_API_KEY_ENV
    assert config.memory.redis is not None
    assert config.memory.redis.url is None
    assert config.memory.redis.url_env == REDIS_URL_ENV
    assert config.agent.instructions_file == INSTRUCTIONS_FILE
    assert {f.path for f in rendered.files} == {INSTRUCTIONS_FILE, "/etc/agentpool/ca/model.pem"}


def test_without_redis_a_pool_keeps_working_memory_and_says_what_it_lost() -> None:
    spec = copy.deepcopy(BASE_POOL)
    spec["memory"] = {"episodic": {"enabled": True}}
    rendered = runtime_config(_pool(spec), [], RenderSettings())
    memory = rendered.config.memory
    assert memory.redis is None
    assert (memory.long_term.enabled, memory.episodic.enabled) == (False, False)
    assert rendered.config.load.signal == "activeTurns"
    assert [p.reason for p in rendered.problems] == ["RedisRequired"]
    # With the operator's default Redis, the same spec gets every tier.
    with_default = runtime_config(
        _pool(spec), [], RenderSettings(default_redis_url="redis://r:6379/0")
    )
    assert with_default.config.memory.long_term.enabled
    assert with_default.config.memory.episodic.enabled
    assert with_default.problems == ()


def test_importance_thresholds_route_memories_to_tiers() -> None:
    spec = {
        **BASE_POOL,
        "memory": {
            "redis": {"url": "redis://r:6379/0"},
            "longTerm": {"importanceThreshold": "0.4"},
            "episodic": {"enabled": True, "importanceThreshold": "0.8"},
        },
    }
    rules = _config(spec).memory.routing.rules
    assert [(r.min_importance, r.tiers) for r in rules] == [
        (0.8, ("working", "longTerm", "episodic")),
        (0.4, ("working", "longTerm")),
        (0.0, ("working",)),
    ]


def test_a_fallback_to_a_tool_the_pool_lacks_is_a_problem_not_a_crash() -> None:
    tool = _tool(
        "primary",
        {
            "description": "d",
            "mcp": {"url": "https://m.example.com"},
            "fallback": {"tools": ["missing"], "message": "try later"},
        },
    )
    rendered = runtime_config(_pool(BASE_POOL), [tool], RenderSettings())
    [definition] = rendered.config.tools.definitions
    assert definition.resilience is not None
    assert definition.resilience.fallback.tools == []
    assert definition.resilience.fallback.static is not None
    assert definition.resilience.fallback.static.value == "try later"
    assert [p.reason for p in rendered.problems] == ["FallbackToolMissing"]


def test_decimals_and_enums_reach_the_runtime_in_its_own_terms() -> None:
    spec = {
        **BASE_POOL,
        "model": {
            **BASE_POOL["model"],
            "temperature": "0.25",
            "reasoning": {"effort": "High"},
            "fallbacks": [{"name": "small"}, {"name": "other", "baseUrl": "https://o.example.com"}],
        },
        "scaling": {"minReplicas": 0, "operator": {"signal": "ActiveTurnsAndQueuedTasks"}},
    }
    config = _config(spec, default_redis_url="redis://r:6379/0")
    assert config.model is not None
    assert config.model.primary.temperature == 0.25
    assert config.model.primary.reasoning_effort == "high"
    small, other = config.model.fallbacks
    assert small.base_url == config.model.primary.base_url  # same endpoint, another model
    assert other.api_key_env is None
    assert config.load.signal == "activeTurnsAndQueuedTasks"
