"""The memory config schema (camelCase documents) and the routing rules it carries."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from agent_runtime.config.memory import (
    MemoryConfig,
    RedisSettings,
    RoutingRule,
    RoutingSettings,
    working_memory_only,
)
from agent_runtime.memory.routing import route


def test_a_camel_case_document_loads() -> None:
    config = MemoryConfig.model_validate(
        {
            "redis": {"urlEnv": "REDIS_URL"},
            "workingMemory": {"capacity": 8},
            "longTerm": {"ttlSeconds": 60, "compressAboveBytes": 100},
            "episodic": {"embedder": {"kind": "hashing", "dimensions": 64}},
            "routing": {"rules": [{"minImportance": 0.5, "tiers": ["longTerm"]}]},
            "state": {"snapshotEvery": 10, "retention": {"maxEvents": 100}},
        }
    )
    assert config.working_memory.capacity == 8
    assert config.episodic.embedder.dimensions == 64
    assert config.state.retention.max_events == 100
    assert config.redis is not None
    assert config.redis.resolve_url({"REDIS_URL": "redis://127.0.0.1:1/0"}).endswith(":1/0")


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"workingMemory": {"capacity": 0}}, "capacity"),
        ({"routing": {"rules": [{"minImportance": 2, "tiers": ["working"]}]}}, "min"),
        ({"routing": {"rules": [{"minImportance": 0, "tiers": ["disk"]}]}}, "tiers"),
        ({"episodic": {"embedder": {"kind": "openai"}}}, "url"),
        ({"pool": "p"}, "pool"),  # the identity is stated once, at the top of the document
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_documents_name_the_field(document: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        MemoryConfig.model_validate({"redis": {"urlEnv": "REDIS_URL"}, **document})


@pytest.mark.parametrize("tier", ["longTerm", "episodic"])
def test_redis_tiers_without_redis_are_refused_naming_the_field(tier: str) -> None:
    other = "episodic" if tier == "longTerm" else "longTerm"
    with pytest.raises(ValidationError, match=rf"memory\.{tier}\.enabled needs memory\.redis"):
        MemoryConfig.model_validate({other: {"enabled": False}})


def test_without_redis_only_working_memory_is_enabled() -> None:
    config = working_memory_only()
    assert config.redis is None
    assert config.enabled_tiers() == {"working"}
    assert MemoryConfig.model_validate(config.model_dump(by_alias=True)) == config


def test_a_rule_that_routes_only_to_disabled_tiers_is_refused() -> None:
    document = {
        "longTerm": {"enabled": False},
        "episodic": {"enabled": False},
        "routing": {"rules": [{"minImportance": 0, "tiers": ["longTerm", "episodic"]}]},
    }
    with pytest.raises(ValidationError, match=r"memory\.routing\.rules\.0 routes only"):
        MemoryConfig.model_validate(document)


def test_a_missing_redis_url_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="AGENTPOOL_REDIS_URL"):
        RedisSettings().resolve_url({})


def test_default_rules_route_by_importance() -> None:
    routing = RoutingSettings()
    assert [route(routing, "k", i).tiers for i in (0.9, 0.5, 0.1)] == [  # type: ignore[union-attr]
        ("working", "longTerm", "episodic"),
        ("working", "longTerm"),
        ("working",),
    ]


def test_key_patterns_pick_rules_in_order() -> None:
    routing = RoutingSettings(
        rules=(
            RoutingRule(min_importance=0.0, key_pattern="scratch:*", tiers=("working",)),
            RoutingRule(min_importance=0.2, tiers=("longTerm",)),
        )
    )
    assert route(routing, "scratch:x", 0.9) == routing.rules[0]
    assert route(routing, "fact", 0.9) == routing.rules[1]
    assert route(routing, "fact", 0.1) is None


@given(importance=st.floats(0, 1), key=st.text(min_size=1, max_size=20))
def test_the_chosen_rule_is_the_first_that_matches(importance: float, key: str) -> None:
    routing = RoutingSettings()
    chosen = route(routing, key, importance)
    assert chosen is not None
    assert chosen.min_importance <= importance
    earlier = routing.rules[: routing.rules.index(chosen)]
    assert all(rule.min_importance > importance for rule in earlier)
