"""Long-term memory: JSON records in Redis, scoped by pool and tenant, optional TTL."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError
from redis.asyncio import Redis

from agent_runtime.memory import codec
from agent_runtime.memory.errors import CorruptRecordError
from agent_runtime.memory.health import RedisHealth
from agent_runtime.memory.keys import KeySpace


class MemoryRecord(BaseModel):
    """One remembered value with what the hierarchy knows about it."""

    model_config = ConfigDict(frozen=True)

    tenant: str
    key: str
    value: JsonValue
    importance: float = Field(ge=0.0, le=1.0)
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    created_at: float = Field(description="Unix time the memory was remembered.")
    expires_at: float | None = Field(default=None, description="Unix time it expires, if any.")


def encode_record(
    record: MemoryRecord, *, compress_above: int, max_bytes: int = codec.DEFAULT_MAX_BYTES
) -> bytes:
    """The bytes stored for `record` (JSON, compressed past `compress_above`)."""
    document: dict[str, Any] = {
        "v": 1,
        "tenant": record.tenant,
        "key": record.key,
        "value": record.value,
        "importance": record.importance,
        "metadata": record.metadata,
        "createdAt": record.created_at,
        "expiresAt": record.expires_at,
    }
    return codec.encode(document, compress_above=compress_above, max_bytes=max_bytes)


def decode_record(payload: bytes, *, max_bytes: int = codec.DEFAULT_MAX_BYTES) -> MemoryRecord:
    """The record `encode_record` wrote; `CorruptRecordError` for anything else."""
    document = codec.decode(payload, max_bytes=max_bytes)
    if not isinstance(document, dict) or document.get("v") != 1:
        raise CorruptRecordError("long-term record has an unknown layout")
    try:
        return MemoryRecord(
            tenant=document["tenant"],
            key=document["key"],
            value=document["value"],
            importance=document["importance"],
            metadata=document["metadata"],
            created_at=document["createdAt"],
            expires_at=document["expiresAt"],
        )
    except (KeyError, ValidationError) as exc:
        raise CorruptRecordError(f"long-term record is malformed: {exc}") from exc


class LongTermMemory:
    """The Redis tier of the hierarchy (one instance serves every tenant of a pool)."""

    def __init__(
        self,
        client: Redis,
        keys: KeySpace,
        health: RedisHealth,
        *,
        compress_above_bytes: int = 4096,
        max_value_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self._client = client
        self._keys = keys
        self._health = health
        self._compress_above = compress_above_bytes
        self._max_bytes = max_value_bytes

    async def put(self, record: MemoryRecord, *, ttl_seconds: int | None = None) -> None:
        """Store `record` (replacing any previous value); raises if Redis is unreachable."""
        payload = encode_record(
            record, compress_above=self._compress_above, max_bytes=self._max_bytes
        )
        name = self._keys.long_term(record.tenant, record.key)

        async def write() -> object:
            return await self._client.set(name, payload, ex=ttl_seconds)

        await self._health.call(write, what=f"long-term write of {record.key!r}")

    async def get(self, tenant: str, key: str) -> MemoryRecord | None:
        """The record under (tenant, key), or None."""
        name = self._keys.long_term(tenant, key)

        async def read() -> bytes | None:
            found = await self._client.get(name)
            return found.encode() if isinstance(found, str) else found

        payload = await self._health.call(read, what=f"long-term read of {key!r}")
        if payload is None:
            return None
        record = decode_record(payload, max_bytes=self._max_bytes)
        if record.tenant != tenant or record.key != key:
            raise CorruptRecordError(f"long-term record under {name!r} names another key")
        return record

    async def delete(self, tenant: str, key: str) -> bool:
        """Remove (tenant, key); True if it existed."""
        name = self._keys.long_term(tenant, key)

        async def remove() -> int:
            removed: int = await self._client.delete(name)
            return removed

        return bool(await self._health.call(remove, what=f"long-term delete of {key!r}"))
