"""The runtime's configuration schema: the contract the operator renders into a ConfigMap.

Each section lives in its own module (`tools`, `memory`); `RuntimeConfig` composes them.
The document is camelCase JSON or YAML, for example::

    pool: customer-support
    tools:
      definitions: [...]
    memory:
      pool: customer-support
      redis: {urlEnv: AGENTPOOL_REDIS_URL}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Self

import yaml
from pydantic import Field, ValidationError, model_validator

from agent_runtime.config.memory import MemoryConfig
from agent_runtime.config.section import ConfigSection
from agent_runtime.config.tools import ToolsConfig

__all__ = [
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

    pool: str = Field(
        min_length=1,
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description="The AgentPool this runtime serves.",
    )
    tools: ToolsConfig = Field(default_factory=ToolsConfig)
    memory: MemoryConfig | None = Field(
        default=None, description="Memory and conversation state; absent: no Redis, no memory."
    )

    @model_validator(mode="after")
    def _memory_belongs_to_the_pool(self) -> Self:
        if self.memory is not None and self.memory.pool != self.pool:
            raise ValueError(
                f"memory.pool {self.memory.pool!r} differs from pool {self.pool!r}: "
                "one pool's runtime must not read another pool's memory"
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
    """The canonical JSON document (what the operator writes into the ConfigMap)."""
    return json.dumps(config.model_dump(mode="json", by_alias=True, exclude_none=True), indent=2)
