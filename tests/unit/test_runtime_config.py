"""The runtime config document: parsing, composition, errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agent_runtime.config import (
    PoolIdentity,
    RuntimeConfig,
    RuntimeConfigError,
    dump_runtime_config,
    load_runtime_config,
    parse_runtime_config,
)
from agent_runtime.config.agent import AgentSettings

DOC = """
pool: {namespace: shop, name: support}
agent:
  domain: customer-support
  instructionsFile: /etc/agentpool/instructions/instructions.md
  concurrency: 4
  limits: {maxModelCallsPerTurn: 6, maxTokensPerTurn: 32000, turnTimeoutSeconds: 90}
model:
  primary:
    name: gpt-4o-mini
    baseUrl: https://llm.example/v1
    apiKeyEnv: OPENAI_API_KEY
    headers: {X-Team: shop, X-Token: {valueFrom: {env: LLM_TOKEN}}}
    reasoningEffort: low
  fallbacks:
    - {name: small, baseUrl: "http://vllm.models:8000/v1", contextWindowTokens: 32000}
  timeoutSeconds: 30
  circuitBreaker: {windowSize: 10}
  retry: {maxAttempts: 2}
load: {signal: activeTurnsAndQueuedTasks, publishIntervalSeconds: 0.5}
tools:
  resilience: {timeouts: {perCallSeconds: null}}
  definitions:
    - name: echo
      requireApproval: true
      parameters: {type: object, properties: {text: {type: string}}}
      command: {argv: [echo, "{text}"], allowedBinaries: [echo]}
memory:
  redis: {url: "redis://127.0.0.1:6379/0"}
  longTerm: {enabled: true}
"""

WORKING_ONLY = "memory: {longTerm: {enabled: false}, episodic: {enabled: false}}\n"


def test_a_rendered_document_round_trips() -> None:
    config = parse_runtime_config(DOC)
    assert config.pool == PoolIdentity(namespace="shop", name="support")
    assert str(config.pool) == "shop/support"
    assert config.agent.concurrency == 4
    assert config.model is not None
    assert [m.name for m in config.model.fallbacks] == ["small"]
    assert config.load.signal == "activeTurnsAndQueuedTasks"
    assert [d.name for d in config.tools.definitions] == ["echo"]
    assert config.tools.definitions[0].require_approval
    assert config.memory.redis is not None
    again = parse_runtime_config(dump_runtime_config(config))
    assert again == config
    # A null that differs from the default survives the round trip.
    assert again.tools.resilience.timeouts.per_call_seconds is None


def test_the_dump_states_every_field() -> None:
    dumped = yaml.safe_load(dump_runtime_config(parse_runtime_config(DOC)))
    assert dumped["memory"]["episodic"]["enabled"] is True
    assert dumped["model"]["primary"]["topP"] is None
    assert dumped["agent"]["instructions"] is None


def test_a_runtime_started_by_hand_has_working_memory_and_instructions() -> None:
    config = RuntimeConfig(pool=PoolIdentity(namespace="default", name="local"))
    assert config.memory.redis is None
    assert config.memory.enabled_tiers() == {"working"}
    assert config.agent.read_instructions()
    assert config.model is None


@pytest.mark.parametrize(
    ("doc", "named"),
    [
        ("pool: support\n", "pool"),
        ("pool: {namespace: shop, name: Bad_Name}\n", "pool.name"),
        ("pool: {namespace: shop, name: 1billing}\n", "pool.name"),
        ("pool: {namespace: Shop, name: p}\n", "pool.namespace"),
        ("pool: {namespace: shop, name: p}\nmemry: {}\n", "memry"),
        (
            "pool: {namespace: shop, name: p}\ntools: {definitions: [{name: '1x', "
            "command: {argv: [a], allowedBinaries: [a]}}]}\n",
            "tools.definitions.0.name",
        ),
        ("pool: {namespace: shop, name: p}\nmemory: {pool: q}\n", "memory.pool"),
        ("pool: {namespace: shop, name: p}\nmemory: {}\n", "memory.longTerm.enabled"),
        (
            "pool: {namespace: shop, name: p}\nagent: {instructions: a, instructionsFile: /b}\n",
            "exactly one of agent.instructions or agent.instructionsFile",
        ),
        (
            "pool: {namespace: shop, name: p}\nagent: {instructionsFile: relative.md}\n",
            "agent.instructionsFile",
        ),
        (
            "pool: {namespace: shop, name: p}\nmodel: {primary: {name: m, baseUrl: x}}\n",
            "model.primary.baseUrl",
        ),
        (
            "pool: {namespace: shop, name: p}\nmodel: {primary: {name: m, baseUrl: 'http://m', "
            "reasoningEffort: extreme}}\n",
            "model.primary.reasoningEffort",
        ),
        ("pool: {namespace: shop, name: p}\nload: {signal: cpu}\n", "load.signal"),
        ("[1, 2]\n", "(document)"),
        (
            "pool: {namespace: shop, name: p}\ntasks: {leaseSeconds: 1, pollSeconds: 2}\n",
            "tasks.pollSeconds",
        ),
        ("pool: {namespace: shop, name: p}\ntasks: {maxDeliveries: 0}\n", "tasks.maxDeliveries"),
    ],
)
def test_invalid_documents_are_refused_naming_the_field(doc: str, named: str) -> None:
    with pytest.raises(RuntimeConfigError) as caught:
        parse_runtime_config(doc, source="cfg.yaml")
    assert str(caught.value).startswith("cfg.yaml: ")
    assert named in str(caught.value)


@pytest.mark.parametrize(
    ("section", "named"),
    [
        ("tools: {cache: {shared: true}}", "tools.cache.shared"),
        (
            "tools: {resilience: {circuitBreaker: {shared: true}}}",
            "tools.resilience.circuitBreaker.shared",
        ),
        (
            "tools: {definitions: [{name: e, parameters: {type: object}, "
            "command: {argv: [echo], allowedBinaries: [echo]}, "
            "resilience: {circuitBreaker: {shared: true}}}]}",
            "tools.definitions.0.resilience.circuitBreaker.shared",
        ),
        (
            "model: {primary: {name: m, baseUrl: 'http://m'}, circuitBreaker: {shared: true}}",
            "model.circuitBreaker.shared",
        ),
        ("load: {signal: activeTurnsAndQueuedTasks}", "load.signal"),
        ("tasks: {enabled: true}", "tasks.enabled"),
    ],
)
def test_what_needs_redis_is_refused_without_it(section: str, named: str) -> None:
    doc = f"pool: {{namespace: shop, name: p}}\n{WORKING_ONLY}{section}\n"
    with pytest.raises(RuntimeConfigError, match=r"needs memory\.redis") as caught:
        parse_runtime_config(doc)
    assert named in str(caught.value)
    with_redis = doc.replace("memory: {", "memory: {redis: {url: 'redis://r:6379/0'}, ")
    parse_runtime_config(with_redis)


def test_instructions_are_read_from_the_mounted_file(tmp_path: Path) -> None:
    (tmp_path / "instructions.md").write_text("Be brief.")
    settings = AgentSettings(instructions_file=str(tmp_path / "instructions.md"))
    assert settings.read_instructions() == "Be brief."
    missing = AgentSettings(instructions_file=str(tmp_path / "absent.md"))
    with pytest.raises(ValueError, match="cannot be read"):
        missing.read_instructions()


def test_not_yaml_and_missing_files_are_clear(tmp_path: Path) -> None:
    with pytest.raises(RuntimeConfigError, match="not valid YAML"):
        parse_runtime_config("pool: [unclosed")
    with pytest.raises(RuntimeConfigError, match="cannot read"):
        load_runtime_config(tmp_path / "absent.yaml")
    (tmp_path / "c.yaml").write_text("pool: {namespace: default, name: ok}\n")
    expected = RuntimeConfig(pool=PoolIdentity(namespace="default", name="ok"))
    assert load_runtime_config(tmp_path / "c.yaml") == expected


def test_the_task_poll_must_end_before_a_redis_command_times_out() -> None:
    doc = (
        "pool: {namespace: shop, name: p}\n"
        "memory: {redis: {url: 'redis://r:6379/0', socketTimeoutSeconds: 1}}\n"
        "tasks: {enabled: true, pollSeconds: 1.5}\n"
    )
    with pytest.raises(RuntimeConfigError, match=r"tasks\.pollSeconds"):
        parse_runtime_config(doc)
    parse_runtime_config(doc.replace("pollSeconds: 1.5", "pollSeconds: 0.5"))
