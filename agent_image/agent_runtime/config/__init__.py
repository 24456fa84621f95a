"""The runtime's configuration schema: the contract the operator renders into a ConfigMap.

Each section lives in its own module; `RuntimeConfig` composes them. The document is
camelCase JSON or YAML and unknown fields are errors. The operator renders every field;
the defaults here only serve a runtime started by hand. For example::

    pool: {namespace: shop, name: customer-support}
    agent:
      instructionsFile: /etc/agentpool/instructions/instructions.md
      concurrency: 8
    model:
      primary: {name: gpt-4o-mini, baseUrl: "https://api.openai.com/v1", apiKeyEnv: OPENAI_API_KEY}
    load: {signal: activeTurns}
    tools:
      definitions: [...]
    memory:
      redis: {urlEnv: AGENTPOOL_REDIS_URL}
    tasks: {enabled: true, leaseSeconds: 30, maxDeliveries: 5}
    auth:
      tokensFile: /etc/agentpool/auth/tokens.yaml
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Self

import yaml
from pydantic import Field, ValidationError, model_validator

from agent_runtime.config.agent import DEFAULT_INSTRUCTIONS, AgentSettings
from agent_runtime.config.auth import AuthConfig
from agent_runtime.config.identity import PoolIdentity
from agent_runtime.config.load import LoadSettings
from agent_runtime.config.memory import MemoryConfig, working_memory_only
from agent_runtime.config.model import ModelConfig
from agent_runtime.config.section import ConfigSection
from agent_runtime.config.tasks import TasksSettings
from agent_runtime.config.tools import ToolsConfig

__all__ = [
    "AuthConfig",
    "PoolIdentity",
    "RuntimeConfig",
    "RuntimeConfigError",
    "dump_runtime_config",
    "load_runtime_config",
    "parse_runtime_config",
]


class RuntimeConfigError(ValueError):
    """The config document cannot be used; the message names the file and the field."""


class RuntimeConfig(ConfigSection):
    """Everything one agent pod is configured with."""

    pool: PoolIdentity = Field(description="The AgentPool this runtime serves.")
    agent: AgentSettings = Field(
        default_factory=lambda: AgentSettings(instructions=DEFAULT_INSTRUCTIONS),
        description="Instructions, concurrency and turn limits.",
    )
    model: ModelConfig | None = Field(
        default=None,
        description="The model and its fallbacks; null only for a runtime started by hand "
        "to serve tools and memory (the operator always renders it).",
    )
    load: LoadSettings = Field(
        default_factory=LoadSettings, description="The scaling signal each replica publishes."
    )
    tools: ToolsConfig = Field(default_factory=ToolsConfig, description="The pool's tools.")
    memory: MemoryConfig = Field(
        default_factory=working_memory_only,
        description="Memory tiers, Redis and conversation state; default: working memory only.",
    )
    tasks: TasksSettings = Field(
        default_factory=TasksSettings,
        description="The durable task queue (POST /v1/tasks); off by default.",
    )
    auth: AuthConfig = Field(
        default_factory=AuthConfig,
        description="Who may call the API; default: required (and with no credential "
        "source configured, every call is refused).",
    )

    @model_validator(mode="after")
    def _redis_features_need_redis(self) -> Self:
        if self.memory.redis is not None:
            return self
        needing = self.tools.needs_redis()
        if self.model is not None and self.model.circuit_breaker.shared:
            needing.append("model.circuitBreaker.shared")
        if self.load.signal == "activeTurnsAndQueuedTasks":
            needing.append("load.signal (activeTurnsAndQueuedTasks)")
        if self.tasks.enabled:
            needing.append("tasks.enabled")
        if needing:
            raise ValueError(
                f"{', '.join(needing)} needs memory.redis, which is not set: "
                "configure redis or turn these off"
            )
        return self

    @model_validator(mode="after")
    def _task_poll_inside_redis_timeout(self) -> Self:
        redis = self.memory.redis
        if (
            self.tasks.enabled
            and redis is not None
            and self.tasks.poll_seconds >= redis.socket_timeout_seconds
        ):
            raise ValueError(
                f"tasks.pollSeconds ({self.tasks.poll_seconds}) must be shorter than "
                f"memory.redis.socketTimeoutSeconds ({redis.socket_timeout_seconds}): "
                "a worker's blocking read would otherwise time out as if Redis were down"
            )
        return self


def _field_errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '(document)'}: {err['msg']}"
        for err in exc.errors()
    )


def parse_runtime_config(text: str, *, source: str = "<config>") -> RuntimeConfig:
    """Parse a YAML or JSON document (JSON is YAML) into a `RuntimeConfig`."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RuntimeConfigError(f"{source}: not valid YAML/JSON: {exc}") from exc
    try:
        return RuntimeConfig.model_validate(document)
    except ValidationError as exc:
        raise RuntimeConfigError(f"{source}: {_field_errors(exc)}") from exc


def load_runtime_config(path: Path) -> RuntimeConfig:
    """Read and validate the config file the operator mounted."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise RuntimeConfigError(f"{path}: cannot read the runtime config: {exc}") from exc
    return parse_runtime_config(text, source=str(path))


def dump_runtime_config(config: RuntimeConfig) -> str:
    """The canonical JSON document (what the operator writes into the ConfigMap).

    Every field is written, nulls included: a null can differ from the default (a
    `perCallSeconds: null` turns the deadline off), so leaving it out would change meaning.
    """
    # UTF-8, not \u escapes: YAML reads a JSON escaped astral character as two lone
    # surrogates, so an emoji in the instructions would not survive the round trip.
    return json.dumps(config.model_dump(mode="json", by_alias=True), indent=2, ensure_ascii=False)
