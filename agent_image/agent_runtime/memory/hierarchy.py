"""The memory hierarchy: remember routes by the pool's rules, recall walks the tiers.

`recall` tries working memory (this replica, this conversation), then long-term
memory (promoting a hit into working memory), then episodic memory (the episode
remembered under the key, else the closest episode by meaning); every answer says
which tier gave it. `forget` removes a key from every tier.

When Redis is unreachable the hierarchy keeps answering from working memory and
refuses (with `StoreUnavailableError`) any write that needs Redis; it never keeps a
write only in process while claiming it was stored. A pool configured without Redis
has working memory only: the routing rules' other tiers are skipped.

Working memory is per replica. An overwrite or a `forget` clears the key from this
replica's working memories at once and, through `Invalidator` (pub/sub), from the
other replicas' within the delivery latency, provided each replica runs
`watch_invalidations()` as a background task.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog
from pydantic import BaseModel, ConfigDict, Field, JsonValue
from redis.asyncio import Redis

from agent_runtime.config.identity import PoolIdentity
from agent_runtime.config.memory import MemoryConfig, RoutingSettings, Tier
from agent_runtime.memory import codec
from agent_runtime.memory.embeddings import Embedder, build_embedder
from agent_runtime.memory.episodic import EpisodeHit, EpisodicMemory
from agent_runtime.memory.errors import InvalidMemoryError, StoreUnavailableError
from agent_runtime.memory.health import MemoryStatus, RedisHealth
from agent_runtime.memory.invalidation import Invalidator
from agent_runtime.memory.keys import KeySpace, check_key, check_tenant
from agent_runtime.memory.longterm import LongTermMemory, MemoryRecord
from agent_runtime.memory.routing import route
from agent_runtime.memory.working import WorkingMemoryRegistry

log = structlog.get_logger(__name__)


class Recollection(BaseModel):
    """What `recall` found, and which tier answered."""

    model_config = ConfigDict(frozen=True)

    tier: Tier
    tenant: str
    key: str | None
    value: JsonValue
    importance: float
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    score: float | None = Field(default=None, description="Similarity, for episodic answers.")


@dataclass(frozen=True, slots=True)
class WorkingItem:
    """A working-memory entry; `durable` if Redis holds it too (so it can be re-read)."""

    record: MemoryRecord
    durable: bool


class MemoryHierarchy:
    """The three tiers of one pool behind remember / recall / forget."""

    def __init__(
        self,
        *,
        working: WorkingMemoryRegistry[WorkingItem],
        long_term: LongTermMemory | None,
        episodic: EpisodicMemory | None,
        routing: RoutingSettings,
        health: RedisHealth | None,
        invalidator: Invalidator | None = None,
        default_ttl_seconds: int | None = None,
        episodic_min_score: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.working = working
        self.long_term = long_term
        self.episodic = episodic
        self.routing = routing
        self.health = health
        self.invalidator = invalidator
        self._default_ttl = default_ttl_seconds
        self._min_score = episodic_min_score
        self._clock = clock

    @classmethod
    def working_only(cls, config: MemoryConfig) -> MemoryHierarchy:
        """The hierarchy of a pool without Redis: working memory, nothing else."""
        return cls(
            working=WorkingMemoryRegistry(
                capacity=config.working_memory.capacity,
                max_conversations=config.working_memory.max_conversations,
            ),
            long_term=None,
            episodic=None,
            routing=config.routing,
            health=None,
        )

    @classmethod
    def from_config(
        cls,
        config: MemoryConfig,
        pool: PoolIdentity,
        client: Redis,
        health: RedisHealth,
        *,
        embedder: Embedder | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> MemoryHierarchy:
        """Build the hierarchy the pool's config describes, on an existing client."""
        assert config.redis is not None, "a pool without redis uses working_only()"
        keys = KeySpace(config.key_prefix, pool)
        episodic = None
        if config.episodic.enabled:
            episodic = EpisodicMemory(
                client,
                keys,
                health,
                embedder or build_embedder(config.episodic.embedder, environ),
                index_settings=config.episodic.index,
                compress_above_bytes=config.long_term.compress_above_bytes,
            )
        return cls(
            working=WorkingMemoryRegistry(
                capacity=config.working_memory.capacity,
                max_conversations=config.working_memory.max_conversations,
            ),
            long_term=LongTermMemory(
                client,
                keys,
                health,
                compress_above_bytes=config.long_term.compress_above_bytes,
                max_value_bytes=config.long_term.max_value_bytes,
            )
            if config.long_term.enabled
            else None,
            episodic=episodic,
            routing=config.routing,
            health=health,
            invalidator=Invalidator(
                client, keys, health, max_backoff=config.redis.reconnect_backoff_max_seconds
            ),
            default_ttl_seconds=config.long_term.ttl_seconds,
            episodic_min_score=config.episodic.recall_min_score,
        )

    def status(self) -> MemoryStatus:
        """Degraded or not, for `/readyz`."""
        if self.health is None:
            return MemoryStatus(degraded=False, detail="no redis configured: working memory only")
        return self.health.status()

    async def watch_invalidations(self) -> None:
        """Apply other replicas' overwrites and forgets to this one (run as a task)."""
        if self.invalidator is None:
            return
        await self.invalidator.run(
            drop_key=self.working.drop_key,
            drop_durable=lambda: self.working.drop_matching(lambda item: item.durable),
        )

    async def follow_episodes(self, *, block_seconds: float = 1.0) -> None:
        """Keep the episode indexes current as episodes change (run as a task; see
        `EpisodicMemory.follow`): memory searches then cost no Redis round trip."""
        if self.episodic is None:
            return
        await self.episodic.follow(block_seconds=block_seconds)

    async def remember(
        self,
        key: str,
        value: object,
        *,
        tenant: str,
        importance: float = 0.5,
        conversation: str | None = None,
        metadata: Mapping[str, object] | None = None,
        text: str | None = None,
    ) -> tuple[Tier, ...]:
        """Store `value` under `key` in the tiers the routing rules choose; return them.

        `value` must be plain JSON (checked: anything JSON would alter is refused).
        `text` is what episodic memory embeds (default: the key and the value).
        Raises `InvalidMemoryError` for bad input (nothing stored) and
        `StoreUnavailableError` when a chosen tier needs Redis and Redis is
        unreachable. A write that raised is not acknowledged: it may have reached
        some tiers, and retrying it is safe (the same key is simply overwritten).
        """
        check_tenant(tenant)
        check_key(key)
        if not 0.0 <= importance <= 1.0:
            raise InvalidMemoryError(f"importance must be within [0, 1], got {importance}")
        rule = route(self.routing, key, importance)
        if rule is None:
            return ()
        tiers = tuple(t for t in rule.tiers if self._keeps(t))
        now = self._clock()
        ttl = rule.ttl_seconds or self._default_ttl
        record = MemoryRecord(
            tenant=tenant,
            key=key,
            value=codec.canonical_json(value),
            importance=importance,
            metadata=_metadata(metadata),
            created_at=now,
            expires_at=None if ttl is None else now + ttl,
        )
        if "longTerm" in tiers and self.long_term is not None:
            await self.long_term.put(record, ttl_seconds=ttl)
        if "episodic" in tiers and self.episodic is not None:
            await self.episodic.add(
                tenant,
                text or _episode_text(key, record.value),
                record.value,
                key=key,
                importance=importance,
                metadata=record.metadata,
            )
        durable = "longTerm" in tiers or "episodic" in tiers
        if durable and self.invalidator is not None:
            await self.invalidator.publish(tenant, key)
        # Older copies elsewhere on this replica would shadow the new value.
        self.working.drop_key(tenant, key)
        if "working" in tiers:
            item = WorkingItem(record=record, durable="longTerm" in tiers)
            self.working.open(tenant, conversation).put(key, item)
        return tiers

    async def recall(
        self,
        key: str,
        *,
        tenant: str,
        conversation: str | None = None,
        query: str | None = None,
    ) -> Recollection | None:
        """The memory under `key`: working, then long-term, then episodic.

        With Redis unreachable only working memory answers; a key it does not hold is
        `StoreUnavailableError` (503), not None (404).
        `query` is the text for the episodic search (default: the key).
        """
        check_tenant(tenant)
        check_key(key)
        working = self.working.find(tenant, conversation)
        held = working.get(key) if working is not None else None
        if working is not None and held is not None:
            if not self._expired(held.record):
                return _from_record("working", held.record)
            working.delete(key)
        try:
            return await self._recall_stored(key, tenant, conversation, query)
        except StoreUnavailableError:
            # Not in working memory and the stores cannot be asked: "unavailable", never a
            # false "not found" the caller would act on.
            log.warning("recall needs redis, which is unreachable", tenant=tenant)
            raise

    async def _recall_stored(
        self, key: str, tenant: str, conversation: str | None, query: str | None
    ) -> Recollection | None:
        record = None if self.long_term is None else await self.long_term.get(tenant, key)
        if record is not None:
            item = WorkingItem(record=record, durable=True)
            self.working.open(tenant, conversation).put(key, item)
            return _from_record("longTerm", record)
        if self.episodic is None:
            return None
        episode = await self.episodic.get_by_key(tenant, key)
        if episode is not None:
            return Recollection(
                tier="episodic",
                tenant=tenant,
                key=episode.key,
                value=episode.data,
                importance=episode.importance,
                metadata=episode.metadata,
                score=1.0,
            )
        hits = await self.episodic.search(tenant, query or key, k=1)
        if not hits or hits[0].score < self._min_score:
            return None
        return _from_hit(tenant, hits[0])

    async def search(self, query: str, *, tenant: str, k: int = 5) -> list[Recollection]:
        """The `k` episodes of `tenant` closest in meaning to `query`."""
        if self.episodic is None:
            return []
        hits = await self.episodic.search(check_tenant(tenant), query, k=k)
        return [_from_hit(tenant, hit) for hit in hits]

    async def forget(self, key: str, *, tenant: str) -> tuple[Tier, ...]:
        """Remove `key` from every tier; return the tiers that held it.

        This replica's working memories are cleared first, so even when Redis is
        unreachable (and `StoreUnavailableError` is raised) the key stops being served.
        """
        check_tenant(tenant)
        check_key(key)
        removed: list[Tier] = []
        if self.working.drop_key(tenant, key):
            removed.append("working")
        if self.long_term is not None and await self.long_term.delete(tenant, key):
            removed.append("longTerm")
        if self.episodic is not None and await self.episodic.forget_key(tenant, key):
            removed.append("episodic")
        if self.invalidator is not None:
            await self.invalidator.publish(tenant, key)
        return tuple(removed)

    def _keeps(self, tier: Tier) -> bool:
        if tier == "longTerm":
            return self.long_term is not None
        if tier == "episodic":
            return self.episodic is not None
        return True

    def _expired(self, record: MemoryRecord) -> bool:
        return record.expires_at is not None and record.expires_at <= self._clock()


def _metadata(metadata: Mapping[str, object] | None) -> dict[str, JsonValue]:
    copy = codec.canonical_json(dict(metadata or {}))
    if not isinstance(copy, dict):
        raise InvalidMemoryError("metadata must be a JSON object")
    return copy


def _episode_text(key: str, value: JsonValue) -> str:
    rendered = value if isinstance(value, str) else codec.canonical_text(value)
    return f"{key}: {rendered}"


def _from_hit(tenant: str, hit: EpisodeHit) -> Recollection:
    return Recollection(
        tier="episodic",
        tenant=tenant,
        key=hit.episode.key,
        value=hit.episode.data,
        importance=hit.episode.importance,
        metadata=hit.episode.metadata,
        score=hit.score,
    )


def _from_record(tier: Tier, record: MemoryRecord) -> Recollection:
    return Recollection(
        tier=tier,
        tenant=record.tenant,
        key=record.key,
        value=record.value,
        importance=record.importance,
        metadata=record.metadata,
    )
