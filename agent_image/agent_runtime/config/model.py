"""The model section of the runtime config: which OpenAI-compatible model answers, and how.

`primary` is asked first; `fallbacks` are tried in order when the one before has its
circuit breaker open. API keys never appear in the document: `apiKeyEnv` names the
environment variable holding one, and headers may read theirs from the environment.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agent_runtime.config.limits import ENV_VAR_PATTERN
from agent_runtime.config.secrets import HeaderValue
from agent_runtime.config.section import ConfigSection
from agent_runtime.config.tools import CircuitBreakerSettings, RetrySettings

ReasoningEffort = Literal["low", "medium", "high"]


class ModelEndpoint(ConfigSection):
    """One model behind an OpenAI-compatible API, and the parameters it is called with."""

    name: str = Field(min_length=1, description="The model's name, as the API knows it.")
    base_url: str = Field(
        pattern=r"^https?://", description="The API's base URL (up to and including /v1)."
    )
    api_key_env: str | None = Field(
        default=None,
        pattern=ENV_VAR_PATTERN,
        description="Environment variable holding the API key; unset: no key is sent.",
    )
    headers: dict[str, HeaderValue] = Field(
        default_factory=dict, description="Extra request headers (literal or from the env)."
    )
    ca_bundle_file: str | None = Field(
        default=None,
        pattern=r"^/",
        description="A PEM file of CAs to trust for this endpoint; unset: the system's.",
    )
    temperature: float | None = Field(
        default=None, ge=0, le=2, description="Sampling temperature; unset: the model's."
    )
    top_p: float | None = Field(
        default=None, gt=0, le=1, description="Nucleus sampling; unset: the model's."
    )
    max_tokens: int | None = Field(
        default=None, ge=1, description="Completion tokens per call; unset: the model's."
    )
    reasoning_effort: ReasoningEffort | None = Field(
        default=None, description="For reasoning models: low, medium or high."
    )
    context_window_tokens: int = Field(
        default=128_000, ge=1, description="The model's context window, for trimming history."
    )


class ModelConfig(ConfigSection):
    """The model the agent talks to, its fallbacks, and the resilience around every call."""

    primary: ModelEndpoint = Field(description="The model asked first.")
    fallbacks: list[ModelEndpoint] = Field(
        default_factory=list,
        description="Models tried in order when the one before has its breaker open.",
    )
    timeout_seconds: float = Field(
        default=60.0, gt=0, le=3600, description="Deadline of one model call."
    )
    circuit_breaker: CircuitBreakerSettings = Field(
        default_factory=CircuitBreakerSettings, description="One breaker per endpoint."
    )
    retry: RetrySettings = Field(
        default_factory=RetrySettings, description="Retries of one endpoint's calls."
    )
