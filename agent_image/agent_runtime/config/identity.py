"""Which pool a runtime serves: one identity, `(Kubernetes namespace, pool name)`.

Everything a pool keeps in shared places (Redis keys, streams and channels, metric
labels) carries both parts, so two pools of the same name in two namespaces never share
data. The identity is stated once in the config document, as `pool`.
"""

from __future__ import annotations

from pydantic import Field

from agent_runtime.config.limits import (
    KUBERNETES_NAMESPACE_MAX_CHARS,
    KUBERNETES_NAMESPACE_PATTERN,
    POOL_NAME_MAX_CHARS,
    POOL_NAME_PATTERN,
)
from agent_runtime.config.section import ConfigSection


class PoolIdentity(ConfigSection):
    """The AgentPool a runtime serves."""

    namespace: str = Field(
        pattern=KUBERNETES_NAMESPACE_PATTERN,
        max_length=KUBERNETES_NAMESPACE_MAX_CHARS,
        description="The pool's Kubernetes namespace.",
    )
    name: str = Field(
        pattern=POOL_NAME_PATTERN,
        max_length=POOL_NAME_MAX_CHARS,
        description="The pool's name.",
    )

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"
