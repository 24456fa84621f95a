"""The memory section of the runtime config: Redis, the memory tiers, routing and state.

The operator renders this section (camelCase, like Kubernetes) into the pool's
ConfigMap; `MemoryConfig` is the top-level model. Secrets never appear in the document:
the Redis URL and embedding API keys are named by environment variables that the
operator fills from secret references.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import Field, model_validator

from agent_runtime.config.section import ConfigSection

Tier = Literal["working", "longTerm", "episodic"]
"""The memory tiers, by the names the config and recall results use."""

EmbedderKind = Literal["hashing", "sentenceTransformer", "openai"]


class RedisSettings(ConfigSection):
    """Where Redis is and how the runtime talks to it."""

    url: str | None = Field(default=None, description="Redis URL; prefer urlEnv for secrets.")
    url_env: str = Field(
        default="AGENTPOOL_REDIS_URL",
        description="Environment variable holding the Redis URL when `url` is not set.",
    )
    socket_timeout_seconds: float = Field(default=2.0, gt=0)
    connect_timeout_seconds: float = Field(default=1.0, gt=0)
    retry_attempts: int = Field(default=2, ge=0, le=10, description="redis-py retries per call.")
    retry_backoff_cap_seconds: float = Field(default=0.5, gt=0)
    health_check_interval_seconds: float = Field(default=5.0, ge=0)
    reconnect_backoff_max_seconds: float = Field(
        default=10.0, gt=0, description="Longest wait between reconnect probes while degraded."
    )

    def resolve_url(self, environ: Mapping[str, str] | None = None) -> str:
        """The Redis URL: `url` if set, else the variable named by `urlEnv`."""
        if self.url:
            return self.url
        env = os.environ if environ is None else environ
        found = env.get(self.url_env)
        if not found:
            raise ValueError(
                f"memory.redis: neither `url` nor the environment variable {self.url_env!r} is set"
            )
        return found


class WorkingMemorySettings(ConfigSection):
    """The in-process tier: one bounded LRU per conversation on each replica."""

    capacity: int = Field(default=256, ge=1, description="Entries per conversation.")
    max_conversations: int = Field(
        default=1024, ge=1, description="Conversations whose working memory a replica keeps."
    )


class LongTermSettings(ConfigSection):
    """The Redis key-value tier."""

    ttl_seconds: int | None = Field(
        default=None, ge=1, description="Default expiry of a long-term memory; none = forever."
    )
    compress_above_bytes: int = Field(
        default=4096, ge=0, description="Values whose JSON is larger are stored zlib-compressed."
    )
    max_value_bytes: int = Field(
        default=16 * 1024 * 1024, ge=1, description="Largest value (uncompressed JSON) accepted."
    )


class EmbedderSettings(ConfigSection):
    """Which embedder turns episode text into vectors."""

    kind: EmbedderKind = "hashing"
    dimensions: int = Field(default=384, ge=8, le=8192)
    model: str | None = Field(default=None, description="Model name for `openai`.")
    url: str | None = Field(default=None, description="Base URL of an OpenAI-compatible API.")
    api_key_env: str | None = Field(
        default=None, description="Environment variable holding the API key for `openai`."
    )
    timeout_seconds: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _openai_needs_endpoint(self) -> EmbedderSettings:
        if self.kind == "openai" and (not self.url or not self.model):
            raise ValueError("embedder kind `openai` needs both `url` and `model`")
        if self.kind == "sentenceTransformer" and self.dimensions != 384:
            raise ValueError("embedder kind `sentenceTransformer` (all-MiniLM-L6-v2) has 384 dims")
        return self


class IndexSettings(ConfigSection):
    """Parameters of each replica's approximate (usearch HNSW) index.

    The defaults measured recall@10 of about 0.99 on 100k clustered 384-d vectors
    (benchmarks/bench_memory.py); `f16` halves memory and build time against `f32`
    at no measurable recall cost, while `i8` lost recall there.
    """

    connectivity: int = Field(default=16, ge=2, le=128)
    expansion_add: int = Field(default=64, ge=8, le=4096)
    expansion_search: int = Field(default=128, ge=8, le=4096)
    dtype: Literal["f32", "f16", "i8"] = "f16"


class EpisodicSettings(ConfigSection):
    """The semantic tier: episodes with embeddings, searched by meaning."""

    enabled: bool = True
    embedder: EmbedderSettings = EmbedderSettings()
    index: IndexSettings = IndexSettings()
    recall_min_score: float = Field(
        default=0.5, ge=-1.0, le=1.0, description="Least cosine similarity a recall accepts."
    )


class RoutingRule(ConfigSection):
    """Which tiers a memory goes to when its importance reaches `minImportance`."""

    min_importance: float = Field(ge=0.0, le=1.0)
    key_pattern: str | None = Field(
        default=None, description="Optional glob on the key (fnmatch); none matches every key."
    )
    tiers: tuple[Tier, ...] = Field(min_length=1)
    ttl_seconds: int | None = Field(
        default=None, ge=1, description="Overrides longTerm.ttlSeconds for memories this routes."
    )


def _default_rules() -> tuple[RoutingRule, ...]:
    return (
        RoutingRule(min_importance=0.7, tiers=("working", "longTerm", "episodic")),
        RoutingRule(min_importance=0.3, tiers=("working", "longTerm")),
        RoutingRule(min_importance=0.0, tiers=("working",)),
    )


class RoutingSettings(ConfigSection):
    """The rules `remember()` follows; the first rule that matches wins.

    A rule matches when the memory's importance is at least `minImportance` and its
    key matches `keyPattern` (if any). Rules are tried in the order written.
    """

    rules: tuple[RoutingRule, ...] = Field(default_factory=_default_rules, min_length=1)


class RetentionSettings(ConfigSection):
    """How much of a conversation's event log is kept behind its latest snapshot."""

    max_events: int | None = Field(default=None, ge=1)
    max_age_seconds: int | None = Field(default=None, ge=1)


class StateSettings(ConfigSection):
    """Event-sourced conversation state."""

    snapshot_every: int = Field(default=50, ge=1, description="Snapshot after this many events.")
    retention: RetentionSettings = RetentionSettings()


class MemoryConfig(ConfigSection):
    """The whole memory section: Redis, the three tiers, routing and conversation state."""

    redis: RedisSettings = RedisSettings()
    key_prefix: str = Field(default="agentpool", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    pool: str = Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    working_memory: WorkingMemorySettings = WorkingMemorySettings()
    long_term: LongTermSettings = LongTermSettings()
    episodic: EpisodicSettings = EpisodicSettings()
    routing: RoutingSettings = RoutingSettings()
    state: StateSettings = StateSettings()
