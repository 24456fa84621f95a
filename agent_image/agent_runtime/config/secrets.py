"""Values the runtime reads from its environment: secrets never appear in the config document.

The operator fills each named variable from a Secret reference; the document only says
which variable holds the value (`valueFrom: {env: NAME}`).
"""

from __future__ import annotations

from pydantic import Field

from agent_runtime.config.limits import ENV_VAR_PATTERN
from agent_runtime.config.section import ConfigSection


class EnvRef(ConfigSection):
    """An environment variable the operator fills (usually from a Secret)."""

    env: str = Field(pattern=ENV_VAR_PATTERN, description="The variable's name.")


class HeaderFromEnv(ConfigSection):
    """A header whose value is read from an environment variable when the client is built."""

    value_from: EnvRef = Field(description="Where the value comes from.")


HeaderValue = str | HeaderFromEnv
"""A literal header value, or `{valueFrom: {env: NAME}}`."""
