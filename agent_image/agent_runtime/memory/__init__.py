"""The memory hierarchy: working (in process), long-term and episodic (Redis) tiers.

Build it from the pool's config with `MemoryHierarchy.from_config(config, pool, client,
health)` where `client = create_redis(config.redis)` and
`health = create_health(pool, client, config.redis)`; a pool without Redis uses
`MemoryHierarchy.working_only(config)`.
"""

from agent_runtime.memory.connection import create_health, create_redis
from agent_runtime.memory.embeddings import (
    Embedder,
    HashingEmbedder,
    OpenAIEmbedder,
    SentenceTransformerEmbedder,
    build_embedder,
)
from agent_runtime.memory.episodic import Episode, EpisodeHit, EpisodicMemory
from agent_runtime.memory.errors import (
    AgentMemoryError,
    CorruptRecordError,
    InvalidMemoryError,
    StoreUnavailableError,
)
from agent_runtime.memory.health import MemoryStatus, RedisHealth
from agent_runtime.memory.hierarchy import MemoryHierarchy, Recollection, WorkingItem
from agent_runtime.memory.invalidation import Invalidator
from agent_runtime.memory.keys import KeySpace
from agent_runtime.memory.longterm import LongTermMemory, MemoryRecord
from agent_runtime.memory.working import WorkingMemory, WorkingMemoryRegistry

__all__ = [
    "AgentMemoryError",
    "CorruptRecordError",
    "Embedder",
    "Episode",
    "EpisodeHit",
    "EpisodicMemory",
    "HashingEmbedder",
    "InvalidMemoryError",
    "Invalidator",
    "KeySpace",
    "LongTermMemory",
    "MemoryHierarchy",
    "MemoryRecord",
    "MemoryStatus",
    "OpenAIEmbedder",
    "Recollection",
    "RedisHealth",
    "SentenceTransformerEmbedder",
    "StoreUnavailableError",
    "WorkingItem",
    "WorkingMemory",
    "WorkingMemoryRegistry",
    "build_embedder",
    "create_health",
    "create_redis",
]
