"""Episodic memory: experiences with embeddings, persisted in Redis, searched by meaning.

Redis holds the truth: per tenant, a hash of episode documents, a hash of their
vectors and a hash from key to episode id; every change is also appended to one
pool-wide Stream. Each replica keeps an approximate index per tenant and brings it
up to date incrementally by reading the Stream from where it stopped, after a full
load on first use. Searches only ever see one tenant's index, so tenants never see
each other's episodes.

Two ways to stay current:

- `follow` (the runtime runs it as a task): a blocking XREAD tails the Stream and
  applies each change as it is written. While it keeps up, a search reads nothing to
  sync: this takes a Redis round trip off every turn's memory recall (every chat turn
  searches). A search waits for a change the follower is applying, and syncs itself
  when this replica wrote something the follower has not applied yet, so a replica
  reads its own writes; another replica's change shows once its Stream entry reaches
  the follower (the same moment Redis answers the writer, plus one vector read).
- without a follower (or while it is down: Redis gone, a read past its deadline), each
  search syncs first (one XRANGE).

The Stream is not trimmed: a replica that starts later rebuilds from the hashes, and
entries are small (~60 bytes), but a pool with tens of millions of changes would want
a compaction step (not implemented).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import structlog
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError
from redis.asyncio import Redis

from agent_runtime.cancellation import stop_if_cancelled
from agent_runtime.config.memory import IndexSettings
from agent_runtime.memory import codec
from agent_runtime.memory.embeddings import Embedder, Vectors
from agent_runtime.memory.errors import (
    CorruptRecordError,
    InvalidMemoryError,
    StoreUnavailableError,
)
from agent_runtime.memory.health import UNREACHABLE_ERRORS, RedisHealth
from agent_runtime.memory.keys import KeySpace, check_key, check_tenant
from agent_runtime.memory.vector_index import VectorIndex

log = structlog.get_logger(__name__)

SYNC_BATCH = 1000
FOLLOW_GRACE_SECONDS = 0.5
"""How long past its blocking read's own deadline the follower still vouches for the
indexes: a read that has not answered by then is stuck, and searches sync again."""

_FOLLOW_ERRORS: tuple[type[BaseException], ...] = (*UNREACHABLE_ERRORS, StoreUnavailableError)

StreamId = tuple[int, int]


def _stream_id(raw: str | bytes) -> StreamId:
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


class Episode(BaseModel):
    """One experience: what happened (text), what to keep (data), and its importance."""

    model_config = ConfigDict(frozen=True)

    id: int
    tenant: str
    key: str | None = None
    text: str
    data: JsonValue = None
    importance: float = Field(ge=0.0, le=1.0)
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    created_at: float


class EpisodeHit(BaseModel):
    """An episode found by a search, with its cosine similarity to the query."""

    model_config = ConfigDict(frozen=True)

    episode: Episode
    score: float


# Adds an episode; a key already in use moves to the new episode and the old one goes.
# Returns the id of the log entry of the add.
_ADD = """
local old = false
if ARGV[4] ~= '' then
  old = redis.call('HGET', KEYS[3], ARGV[4])
  redis.call('HSET', KEYS[3], ARGV[4], ARGV[1])
end
if old then
  redis.call('HDEL', KEYS[1], old)
  redis.call('HDEL', KEYS[2], old)
  redis.call('XADD', KEYS[4], '*', 'op', 'del', 'tenant', ARGV[5], 'id', old)
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('SADD', KEYS[5], ARGV[5])
return redis.call('XADD', KEYS[4], '*', 'op', 'add', 'tenant', ARGV[5], 'id', ARGV[1])
"""

# Deletes an episode by id (ARGV[1]) or, when ARGV[1] is '', by key (ARGV[3]); returns its
# log entry's id, or 0 when there was no such episode.
_DELETE = """
local id = ARGV[1]
if id == '' then
  id = redis.call('HGET', KEYS[3], ARGV[3])
  if not id then return 0 end
end
local doc = redis.call('HGET', KEYS[1], id)
if not doc then return 0 end
redis.call('HDEL', KEYS[1], id)
redis.call('HDEL', KEYS[2], id)
if ARGV[3] ~= '' and redis.call('HGET', KEYS[3], ARGV[3]) == id then
  redis.call('HDEL', KEYS[3], ARGV[3])
end
return redis.call('XADD', KEYS[4], '*', 'op', 'del', 'tenant', ARGV[2], 'id', id)
"""


def _vector_bytes(vector: Vectors) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def _episode_document(episode: Episode) -> dict[str, Any]:
    return {"v": 1, **episode.model_dump(mode="python")}


def _decode_episode(payload: bytes) -> Episode:
    document = codec.decode(payload)
    if not isinstance(document, dict) or document.pop("v", None) != 1:
        raise CorruptRecordError("episode record has an unknown layout")
    try:
        return Episode.model_validate(document)
    except ValidationError as exc:
        raise CorruptRecordError(f"episode record is malformed: {exc}") from exc


class EpisodicMemory:
    """Episodes of one pool, for every tenant; one instance per replica."""

    def __init__(
        self,
        client: Redis,
        keys: KeySpace,
        health: RedisHealth,
        embedder: Embedder,
        *,
        index_settings: IndexSettings | None = None,
        compress_above_bytes: int = 4096,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._keys = keys
        self._health = health
        self.embedder = embedder
        self._index_settings = index_settings or IndexSettings()
        self._compress_above = compress_above_bytes
        self._clock = clock
        self._indexes: dict[str, VectorIndex] = {}
        self._cursor: str | None = None
        self._written: StreamId = (0, 0)
        """The newest log entry this replica wrote (`following`: read your own writes)."""
        self._followed_until = 0.0
        """`time.monotonic()` until which the follower vouches for the indexes."""
        # One sync at a time: concurrent searches would otherwise each read and apply
        # the same log entries (N-fold Redis reads and index writes under load).
        self._sync_lock = asyncio.Lock()
        self._add = client.register_script(_ADD)
        self._delete = client.register_script(_DELETE)

    def _index(self, tenant: str) -> VectorIndex:
        index = self._indexes.get(tenant)
        if index is None:
            index = VectorIndex(self.embedder.dimensions, self._index_settings)
            self._indexes[tenant] = index
        return index

    def index_size(self, tenant: str) -> int:
        """How many episodes of `tenant` this replica's index holds."""
        index = self._indexes.get(tenant)
        return 0 if index is None else len(index)

    def _script_keys(self, tenant: str) -> list[str]:
        return [
            self._keys.episode_docs(tenant),
            self._keys.episode_vectors(tenant),
            self._keys.episode_keys(tenant),
            self._keys.episode_log,
            self._keys.episode_tenants,
        ]

    async def add(
        self,
        tenant: str,
        text: str,
        data: object = None,
        *,
        key: str | None = None,
        importance: float = 0.5,
        metadata: Mapping[str, object] | None = None,
    ) -> Episode:
        """Embed and persist an episode; with `key`, it replaces that key's episode."""
        check_tenant(tenant)
        if key is not None:
            check_key(key)
        if not text.strip():
            raise InvalidMemoryError("an episode needs non-empty text to embed")
        vectors = await self.embedder.embed([text])

        async def next_id() -> int:
            return int(await self._client.incr(self._keys.episode_sequence))

        episode_id = await self._health.call(next_id, what="episode id allocation")
        episode = Episode(
            id=episode_id,
            tenant=tenant,
            key=key,
            text=text,
            data=codec.canonical_json(data),
            importance=importance,
            metadata=codec.canonical_json(dict(metadata or {})),
            created_at=self._clock(),
        )
        payload = codec.encode(_episode_document(episode), compress_above=self._compress_above)

        async def write() -> object:
            return await self._add(
                keys=self._script_keys(tenant),
                args=[episode_id, payload, _vector_bytes(vectors[0]), key or "", tenant],
            )

        entry = await self._health.call(write, what=f"episode write in {tenant!r}")
        self._note_written(entry)
        return episode

    async def delete(self, tenant: str, episode_id: int) -> bool:
        """Remove one episode by id; True if it existed."""
        return await self._remove(tenant, str(episode_id), "")

    async def forget_key(self, tenant: str, key: str) -> bool:
        """Remove the episode remembered under `key`; True if there was one."""
        return await self._remove(tenant, "", check_key(key))

    async def _remove(self, tenant: str, episode_id: str, key: str) -> bool:
        async def remove() -> object:
            return await self._delete(
                keys=self._script_keys(tenant)[:4], args=[episode_id, tenant, key]
            )

        entry = await self._health.call(remove, what=f"episode delete in {tenant!r}")
        if not entry:
            return False
        self._note_written(entry)
        return True

    def _note_written(self, entry: object) -> None:
        if isinstance(entry, str | bytes):
            self._written = max(self._written, _stream_id(entry))

    async def get(self, tenant: str, episode_id: int) -> Episode | None:
        """One episode by id, or None."""
        found = await self._fetch(tenant, [episode_id])
        return found.get(episode_id)

    async def get_by_key(self, tenant: str, key: str) -> Episode | None:
        """The episode remembered under `key`, or None."""
        name = self._keys.episode_keys(tenant)

        async def lookup() -> Any:
            return await self._client.hget(name, check_key(key))

        found = await self._health.call(lookup, what=f"episode lookup of {key!r}")
        return None if found is None else await self.get(tenant, int(found))

    async def _fetch(
        self, tenant: str, ids: list[int], *, skip: bool = False
    ) -> dict[int, Episode]:
        """The episodes of `tenant` by id; a corrupt one raises `CorruptRecordError`, or with
        `skip` (a search) is left out and logged."""
        if not ids:
            return {}
        name = self._keys.episode_docs(tenant)

        async def read() -> list[Any]:
            found: list[Any] = await self._client.hmget(name, [str(i) for i in ids])
            return found

        payloads = await self._health.call(read, what=f"episode read in {tenant!r}")
        episodes = {}
        for episode_id, payload in zip(ids, payloads, strict=True):
            if payload is None:
                continue
            try:
                episode = _decode_episode(payload)
                if episode.tenant != tenant:
                    raise CorruptRecordError(f"episode {episode_id} is filed under another tenant")
            except CorruptRecordError as exc:
                if not skip:
                    raise
                log.warning("skipped a corrupt episode", tenant=tenant, error=str(exc))
                continue
            episodes[episode_id] = episode
        return episodes

    async def search(
        self, tenant: str, query: str, k: int = 5, *, exact: bool = False, sync: bool = True
    ) -> list[EpisodeHit]:
        """The `k` episodes of `tenant` most similar to `query`, best first."""
        check_tenant(tenant)
        if sync:
            await self._catch_up()
        if tenant not in self._indexes:
            # Nothing to compare with: no query vector (with a remote embedder, no call).
            return []
        vectors = await self.embedder.embed([query])
        return await self.search_vector(tenant, vectors[0], k, exact=exact, sync=False)

    async def search_vector(
        self,
        tenant: str,
        vector: Vectors,
        k: int = 5,
        *,
        exact: bool = False,
        sync: bool = True,
    ) -> list[EpisodeHit]:
        """Like `search` with a ready query vector; `exact=True` uses brute force."""
        check_tenant(tenant)
        if sync:
            await self._catch_up()
        index = self._indexes.get(tenant)
        if index is None:
            return []
        # Ask for a few extra: an episode deleted since the last sync is skipped below.
        hits = index.exact_search(vector, k + 4) if exact else index.search(vector, k + 4)
        episodes = await self._fetch(tenant, [episode_id for episode_id, _ in hits], skip=True)
        found = [
            EpisodeHit(episode=episodes[episode_id], score=score)
            for episode_id, score in hits
            if episode_id in episodes
        ]
        return found[:k]

    async def sync(self) -> int:
        """Bring this replica's indexes up to date with Redis; return the changes applied."""
        async with self._sync_lock:
            return await self._sync()

    @property
    def following(self) -> bool:
        """Whether the follower keeps the indexes current, this replica's writes included
        (searches then sync nothing)."""
        return (
            self._cursor is not None
            and time.monotonic() < self._followed_until
            and self._written <= _stream_id(self._cursor)
        )

    async def _catch_up(self) -> None:
        """What a search does first: nothing while the follower keeps up (but wait for a
        change it is applying), else a sync."""
        if not self.following:
            await self.sync()
        elif self._sync_lock.locked():
            async with self._sync_lock:
                pass

    async def follow(self, *, block_seconds: float = 1.0, max_backoff: float = 5.0) -> None:
        """Tail the log and apply every change as it comes (run as a task; never returns).

        `block_seconds` bounds each blocking read: keep it under the client's socket
        timeout. On a Redis error the follower stops vouching for the indexes (searches
        sync again), backs off and starts over from a sync.
        """
        backoff = 0.1
        while True:
            try:
                await self.sync()  # the full load on first use; after a gap, what it missed
                backoff = 0.1
                await self._tail(block_seconds)
            except asyncio.CancelledError:
                raise
            except _FOLLOW_ERRORS as exc:
                log.warning("episode index follower lost redis", error=str(exc))
            except Exception:  # a bug must not end following for good: searches sync meanwhile
                log.exception("episode index follower failed")
            finally:
                self._followed_until = 0.0
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, max_backoff)

    async def _tail(self, block_seconds: float) -> None:
        block_ms = max(1, int(block_seconds * 1000))
        while True:
            cursor = self._cursor or "0-0"
            self._followed_until = time.monotonic() + block_seconds + FOLLOW_GRACE_SECONDS
            # Not under the lock: a search must not wait for the blocking read.
            read = functools.partial(
                self._client.xread,
                {self._keys.episode_log: cursor},
                count=SYNC_BATCH,
                block=block_ms,
            )
            found: Any = await self._health.call(read, what="episode log follow")
            stop_if_cancelled()
            if not found:
                continue
            # Taken before anything else runs (a free asyncio lock is taken without a
            # suspension): a search from here on waits until the changes are applied.
            async with self._sync_lock:
                applied = _stream_id(self._cursor) if self._cursor else (0, 0)
                entries = [e for e in found[0][1] if _stream_id(e[0]) > applied]
                await self._apply(entries)

    async def _sync(self) -> int:
        if self._cursor is None:
            return await self._full_load()
        applied = 0
        while True:
            read = functools.partial(
                self._client.xrange,
                self._keys.episode_log,
                min=f"({self._cursor}",
                count=SYNC_BATCH,
            )
            found: Any = await self._health.call(read, what="episode index sync")
            entries: list[Any] = list(found or [])
            applied += await self._apply(entries)
            if len(entries) < SYNC_BATCH:
                return applied

    async def _apply(self, entries: list[Any]) -> int:
        if not entries:
            return 0
        wanted: dict[str, list[int]] = defaultdict(list)
        changes: list[tuple[str, str, int]] = []
        for entry_id, fields in entries:
            try:
                op, tenant = fields[b"op"].decode(), fields[b"tenant"].decode()
                episode_id = int(fields[b"id"])
            except (KeyError, ValueError, AttributeError):
                # Not what this runtime writes: skip the entry, keep every tenant's index.
                log.warning("skipped a malformed episode log entry", entry=repr(entry_id)[:64])
                continue
            changes.append((op, tenant, episode_id))
            if op == "add":
                wanted[tenant].append(episode_id)
        vectors = {t: await self._read_vectors(t, ids) for t, ids in wanted.items()}
        for op, tenant, episode_id in changes:
            vector = vectors.get(tenant, {}).get(episode_id)
            if op == "add" and vector is not None:
                self._index(tenant).add([episode_id], vector[None, :])
            elif op == "del" and tenant in self._indexes:
                index = self._indexes[tenant]
                index.remove([episode_id])
                if not len(index):
                    del self._indexes[tenant]  # the tenant's last episode went: so does its index
        self._cursor = entries[-1][0].decode()
        return len(changes)

    async def _read_vectors(self, tenant: str, ids: list[int]) -> dict[int, Vectors]:
        name = self._keys.episode_vectors(tenant)

        async def read() -> list[Any]:
            found: list[Any] = await self._client.hmget(name, [str(i) for i in ids])
            return found

        raw = await self._health.call(read, what="episode vector read")
        found: dict[int, Vectors] = {}
        for episode_id, blob in zip(ids, raw, strict=True):
            vector = None if blob is None else self._usable_vector(tenant, episode_id, blob)
            if vector is not None:
                found[episode_id] = vector
        return found

    def _to_vector(self, blob: bytes) -> Vectors:
        if not isinstance(blob, bytes) or len(blob) != 4 * self.embedder.dimensions:
            size = len(blob) // 4 if isinstance(blob, bytes) else "?"
            raise CorruptRecordError(
                f"stored episode vector has {size} dimensions; "
                f"the embedder makes {self.embedder.dimensions}"
            )
        vector = np.frombuffer(blob, dtype="<f4").astype(np.float32)
        if not np.isfinite(vector).all():
            raise CorruptRecordError("stored episode vector holds non-finite numbers")
        return vector

    def _usable_vector(self, tenant: str, episode_id: object, blob: bytes) -> Vectors | None:
        """The vector, or None (logged) when it is corrupt: one bad vector leaves that
        episode out of the index and touches no other episode or tenant."""
        try:
            return self._to_vector(blob)
        except CorruptRecordError as exc:
            log.warning(
                "skipped a corrupt episode vector",
                tenant=tenant,
                episode=str(episode_id)[:32],
                error=str(exc),
            )
            return None

    async def _full_load(self) -> int:
        # Note the Stream position first: changes racing with the scan are replayed
        # afterwards, and replaying an add or a delete twice is harmless.
        async def position() -> tuple[Any, Any]:
            last = await self._client.xrevrange(self._keys.episode_log, count=1)
            members = await self._client.smembers(self._keys.episode_tenants)
            return last, members

        last, members = await self._health.call(position, what="episode index load")
        self._indexes.clear()
        loaded = 0
        for raw_tenant in members:
            tenant = raw_tenant.decode()
            loaded += await self._load_tenant(tenant)
        self._cursor = last[0][0].decode() if last else "0-0"
        return loaded

    async def _load_tenant(self, tenant: str) -> int:
        name = self._keys.episode_vectors(tenant)
        cursor = 0
        index = self._index(tenant)
        loaded = 0
        while True:
            scan = functools.partial(self._client.hscan, name, cursor, count=1000)
            scanned: Any = await self._health.call(scan, what="episode index load")
            cursor, batch = scanned
            usable: dict[int, Vectors] = {}
            for raw_id, blob in (batch or {}).items():
                vector = self._usable_vector(tenant, raw_id, blob)
                if vector is not None and raw_id.isdigit():
                    usable[int(raw_id)] = vector
            if usable:
                index.add(list(usable), np.stack(list(usable.values())))
                loaded += len(usable)
            if cursor == 0:
                if not len(index):
                    self._indexes.pop(tenant, None)
                return loaded
