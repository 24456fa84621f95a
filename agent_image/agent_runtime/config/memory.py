"""The memory section of the runtime config: Redis, the memory tiers, routing and state.

The operator renders this section (camelCase, like Kubernetes) into the pool's
ConfigMap; `MemoryConfig` is the top-level model. Secrets never appear in the document:
the Redis URL and embedding API keys are named by environment variables that the
operator fills from secret references.

Redis is optional. Without it the pool keeps working memory (in each replica); the
long-term and episodic tiers need Redis and are refused when it is absent.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import Field, model_validator

from agent_runtime.config.limits import ENV_VAR_PATTERN
from agent_runtime.config.section import ConfigSection

Tier = Literal["working", "longTerm", "episodic"]
"""The memory tiers, by the names the config and recall results use."""

EmbedderKind = Literal["hashing", "sentenceTransformer", "openai"]


class RedisSettings(ConfigSection):
    """Where Redis is and how the runtime talks to it."""

    url: str | None = Field(default=None, description="Redis URL; prefer urlEnv for secrets.")
    url_env: str = Field(
        default="AGENTPOOL_REDIS_URL",
        pattern=ENV_VAR_PATTERN,
        description="Environment variable holding the Redis URL when `url` is not set.",
    )
    socket_timeout_seconds: float = Field(
        default=2.0, gt=0, description="Deadline of one Redis command."
    )
    connect_timeout_seconds: float = Field(
        default=1.0, gt=0, description="Deadline of opening a connection."
    )
    retry_attempts: int = Field(default=2, ge=0, le=10, description="redis-py retries per call.")
    retry_backoff_cap_seconds: float = Field(
        default=0.5, gt=0, description="Longest wait between redis-py's retries."
    )
    health_check_interval_seconds: float = Field(
        default=5.0, ge=0, description="Idle connections are checked after this long."
    )
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

    enabled: bool = Field(default=True, description="Keep long-term memories (needs redis).")
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

    kind: EmbedderKind = Field(
        default="hashing",
        description="hashing (offline, by words), sentenceTransformer (all-MiniLM-L6-v2, "
        "local) or openai (an OpenAI-compatible embeddings API).",
    )
    dimensions: int = Field(default=384, ge=8, le=8192, description="Vector dimensions.")
    model: str | None = Field(default=None, description="Model name for `openai`.")
    url: str | None = Field(default=None, description="Base URL of an OpenAI-compatible API.")
    api_key_env: str | None = Field(
        default=None,
        pattern=ENV_VAR_PATTERN,
        description="Environment variable holding the API key for `openai`.",
    )
    timeout_seconds: float = Field(default=10.0, gt=0, description="Deadline of one request.")

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

    connectivity: int = Field(default=16, ge=2, le=128, description="Edges per graph node.")
    expansion_add: int = Field(
        default=64, ge=8, le=4096, description="Search breadth while adding."
    )
    expansion_search: int = Field(
        default=128, ge=8, le=4096, description="Search breadth while searching."
    )
    dtype: Literal["f32", "f16", "i8"] = Field(
        default="f16", description="How vectors are stored in the index."
    )


class EpisodicSettings(ConfigSection):
    """The semantic tier: episodes with embeddings, searched by meaning."""

    enabled: bool = Field(default=True, description="Keep episodes (needs redis).")
    embedder: EmbedderSettings = Field(
        default_factory=EmbedderSettings, description="What turns text into vectors."
    )
    index: IndexSettings = Field(
        default_factory=IndexSettings, description="Each replica's approximate index."
    )
    recall_min_score: float = Field(
        default=0.5, ge=-1.0, le=1.0, description="Least cosine similarity a recall accepts."
    )
    recall_limit: int = Field(
        default=3, ge=1, le=50, description="Episodes recalled into the prompt of a turn."
    )


class RoutingRule(ConfigSection):
    """Which tiers a memory goes to when its importance reaches `minImportance`."""

    min_importance: float = Field(ge=0.0, le=1.0, description="Least importance it matches.")
    key_pattern: str | None = Field(
        default=None, description="Optional glob on the key (fnmatch); none matches every key."
    )
    tiers: tuple[Tier, ...] = Field(
        min_length=1, description="Where a matching memory goes; disabled tiers are skipped."
    )
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

    rules: tuple[RoutingRule, ...] = Field(
        default_factory=_default_rules, min_length=1, description="Tried in order."
    )


class RetentionSettings(ConfigSection):
    """How much of a conversation's event log is kept behind its latest snapshot."""

    max_events: int | None = Field(
        default=None, ge=1, description="Events kept per conversation; null: all."
    )
    max_age_seconds: int | None = Field(
        default=None, ge=1, description="Oldest event kept; null: no age limit."
    )


class StateSettings(ConfigSection):
    """Event-sourced conversation state."""

    snapshot_every: int = Field(default=50, ge=1, description="Snapshot after this many events.")
    retention: RetentionSettings = Field(
        default_factory=RetentionSettings, description="What is trimmed behind a snapshot."
    )


class MemoryConfig(ConfigSection):
    """The whole memory section: Redis, the three tiers, routing and conversation state.

    Whose memory it is comes from the document's `pool` identity, stated once there.
    """

    redis: RedisSettings | None = Field(
        default=None,
        description="Where Redis is; null: working memory only (long-term and episodic "
        "tiers, conversation state and anything shared between replicas need Redis).",
    )
    key_prefix: str = Field(
        default="agentpool",
        min_length=1,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="First part of every Redis key, channel and stream name.",
    )
    working_memory: WorkingMemorySettings = Field(
        default_factory=WorkingMemorySettings, description="The in-process tier."
    )
    long_term: LongTermSettings = Field(
        default_factory=LongTermSettings, description="The Redis key-value tier."
    )
    episodic: EpisodicSettings = Field(
        default_factory=EpisodicSettings, description="The semantic tier."
    )
    routing: RoutingSettings = Field(
        default_factory=RoutingSettings, description="Which tiers a memory goes to."
    )
    state: StateSettings = Field(
        default_factory=StateSettings, description="Event-sourced conversation state."
    )

    @model_validator(mode="after")
    def _redis_tiers_need_redis(self) -> MemoryConfig:
        if self.redis is None:
            for field, settings in (("longTerm", self.long_term), ("episodic", self.episodic)):
                if settings.enabled:
                    raise ValueError(
                        f"memory.{field}.enabled needs memory.redis: without Redis only "
                        f"working memory is kept (set {field}.enabled: false, or configure redis)"
                    )
        enabled = self.enabled_tiers()
        for i, rule in enumerate(self.routing.rules):
            if not set(rule.tiers) & enabled:
                raise ValueError(
                    f"memory.routing.rules.{i} routes only to disabled tiers {list(rule.tiers)}: "
                    "what it matches would be kept nowhere"
                )
        return self

    def enabled_tiers(self) -> set[Tier]:
        """The tiers this configuration keeps memories in."""
        tiers: set[Tier] = {"working"}
        if self.long_term.enabled:
            tiers.add("longTerm")
        if self.episodic.enabled:
            tiers.add("episodic")
        return tiers


def working_memory_only() -> MemoryConfig:
    """The memory of a pool without Redis: each replica's working memory, nothing else."""
    return MemoryConfig(
        long_term=LongTermSettings(enabled=False), episodic=EpisodicSettings(enabled=False)
    )
