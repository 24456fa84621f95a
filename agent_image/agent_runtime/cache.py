"""Tool-result caching: a TTL + LRU cache with single-flight and an optional Redis tier.

Keys are the tool name plus the canonical JSON of the arguments (sorted keys, no
whitespace), so `{"a": 1, "b": 2}` and `{"b": 2, "a": 1}` share an entry. Concurrent
misses on one key compute once: the first caller starts the computation in its own
task and everyone (the first caller included) awaits it, so a caller that is cancelled
does not fail the others. Cached values are shared between callers: treat them as
immutable.

Why hand-written: the LRU+TTL core is a dozen lines over `OrderedDict`; the libraries
that offer it (cachetools) have no async single-flight, no per-tool invalidation and no
shared tier, and those are the parts that matter here.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from agent_runtime.resilience.clock import Clock, monotonic

log = structlog.get_logger("agent_runtime.cache")

_SEPARATOR: Final = "\x1f"


class _Missing:
    __slots__ = ()


MISSING: Final = _Missing()
"""What `TtlLruCache.get` returns for an absent or expired key."""


def canonical_arguments(arguments: Mapping[str, Any]) -> str:
    """The arguments as canonical JSON: sorted keys, no whitespace, UTF-8 kept."""
    return json.dumps(
        arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def cache_key(tool: str, tenant: str, arguments: Mapping[str, Any]) -> str:
    """The cache key of one call: tool name, tenant and canonical arguments."""
    return f"{tool}{_SEPARATOR}{tenant}{_SEPARATOR}{canonical_arguments(arguments)}"


def tool_of(key: str) -> str:
    """The tool name a key belongs to."""
    return key.split(_SEPARATOR, 1)[0]


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Counters since the cache was made, and its current size."""

    hits: int
    misses: int
    evictions: int
    expirations: int
    shared_hits: int
    size: int
    max_entries: int

    @property
    def hit_ratio(self) -> float:
        """Hits over lookups (0 before any lookup)."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0


class TtlLruCache:
    """At most `max_entries` values, each expiring after its TTL; least recently used go first."""

    def __init__(
        self,
        max_entries: int,
        *,
        clock: Clock = monotonic,
        on_evict: Callable[[str], None] | None = None,
    ) -> None:
        if max_entries < 1:
            raise ValueError("a cache holds at least one entry")
        self.max_entries = max_entries
        self._clock = clock
        self._on_evict = on_evict
        self._entries: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._by_tool: dict[str, set[str]] = {}
        self.hits = self.misses = self.evictions = self.expirations = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> Any:
        """The live value, or `MISSING` (counted as a hit or a miss)."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return MISSING
        if entry[0] <= self._clock():
            self._drop(key)
            self.expirations += 1
            self.misses += 1
            return MISSING
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[1]

    def put(self, key: str, value: Any, ttl: float) -> None:
        """Store `value` for `ttl` seconds, evicting the least recently used if full."""
        if key in self._entries:
            self._entries.move_to_end(key)
        else:
            self._by_tool.setdefault(tool_of(key), set()).add(key)
        self._entries[key] = (self._clock() + ttl, value)
        while len(self._entries) > self.max_entries:
            oldest = next(iter(self._entries))
            self._drop(oldest)
            self.evictions += 1
            if self._on_evict is not None:
                self._on_evict(tool_of(oldest))

    def invalidate(self, key: str) -> bool:
        """Forget one key; whether it was there."""
        if key not in self._entries:
            return False
        self._drop(key)
        return True

    def invalidate_tool(self, tool: str) -> int:
        """Forget every entry of one tool; how many there were."""
        keys = self._by_tool.pop(tool, set())
        for key in keys:
            del self._entries[key]
        return len(keys)

    def _drop(self, key: str) -> None:
        del self._entries[key]
        keys = self._by_tool.get(tool_of(key))
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_tool[tool_of(key)]


Compute = Callable[[], Awaitable[Any]]


class ToolCache:
    """The runtime's tool-result cache: local TTL-LRU, single-flight, optional Redis tier.

    Entries are per tenant: a call made for one tenant is never answered from another's.
    With `redis`, values (which must then be JSON) are also stored under
    `<shared_prefix><tool>:<sha256 of tenant and arguments>` so other replicas reuse them
    (`shared_prefix` is the pool's `KeySpace.cache_prefix`, so pools never share entries);
    Redis trouble degrades to the local tier and is logged. `on_evict` is told the tool name of
    every entry the size bound pushes out (the registry counts them in a metric).
    """

    def __init__(
        self,
        max_entries: int = 4096,
        *,
        redis: Redis | None = None,
        clock: Clock = monotonic,
        shared_prefix: str | None = None,
        on_evict: Callable[[str], None] | None = None,
    ) -> None:
        if redis is not None and shared_prefix is None:
            raise ValueError("a shared cache needs the pool's key prefix (`shared_prefix`)")
        self.local = TtlLruCache(max_entries, clock=clock, on_evict=on_evict)
        self._redis = redis
        self._prefix = shared_prefix or ""
        self._inflight: dict[str, asyncio.Task[Any]] = {}
        self._generations: dict[str, int] = {}
        self._shared_hits = 0

    def stats(self) -> CacheStats:
        """Hit, miss and eviction counts, and the size."""
        local = self.local
        return CacheStats(
            hits=local.hits + self._shared_hits,
            misses=local.misses - self._shared_hits,
            evictions=local.evictions,
            expirations=local.expirations,
            shared_hits=self._shared_hits,
            size=len(local),
            max_entries=local.max_entries,
        )

    async def get_or_compute(
        self, tool: str, tenant: str, arguments: Mapping[str, Any], ttl: float, compute: Compute
    ) -> tuple[Any, bool]:
        """The cached value and True, or the computed (and now cached) value and False."""
        key = cache_key(tool, tenant, arguments)
        value = self.local.get(key)
        if value is not MISSING:
            return value, True
        task = self._inflight.get(key)
        if task is None:
            generation = self._generations.get(tool, 0)
            task = asyncio.ensure_future(self._fill(tool, key, ttl, compute, generation))
            self._inflight[key] = task
            task.add_done_callback(self._settled)
        return await asyncio.shield(task)

    def _settled(self, task: asyncio.Task[Any]) -> None:
        for key, running in list(self._inflight.items()):
            if running is task:
                del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved here: a computation nobody awaits any more must not warn

    async def invalidate(
        self, tool: str, arguments: Mapping[str, Any] | None = None, *, tenant: str | None = None
    ) -> int:
        """Forget one call's entry (with `arguments` and `tenant`) or every entry of `tool`;
        return how many local entries went."""
        self._generations[tool] = self._generations.get(tool, 0) + 1
        if arguments is not None:
            if tenant is None:
                raise ValueError("forgetting one call's entry needs its tenant")
            key = cache_key(tool, tenant, arguments)
            removed = int(self.local.invalidate(key))
            shared_keys = [self._shared_key(key)]
        else:
            removed = self.local.invalidate_tool(tool)
            shared_keys = []
        if self._redis is not None:
            try:
                if not shared_keys:
                    pattern = f"{self._prefix}{tool}:*"
                    shared_keys = [k async for k in self._redis.scan_iter(match=pattern)]
                if shared_keys:
                    await self._redis.unlink(*shared_keys)
            except (RedisError, OSError) as exc:
                log.warning("shared cache not invalidated", tool=tool, error=str(exc))
        return removed

    async def _fill(
        self, tool: str, key: str, ttl: float, compute: Compute, generation: int
    ) -> tuple[Any, bool]:
        shared = await self._shared_get(key)
        if shared is not MISSING:
            self._shared_hits += 1
            self.local.put(key, shared, ttl)
            return shared, True
        value = await compute()
        if self._generations.get(tool, 0) == generation:  # not invalidated meanwhile
            self.local.put(key, value, ttl)
            await self._shared_put(key, value, ttl)
        return value, False

    def _shared_key(self, key: str) -> str:
        tool, _, arguments = key.partition(_SEPARATOR)
        return f"{self._prefix}{tool}:{hashlib.sha256(arguments.encode()).hexdigest()}"

    async def _shared_get(self, key: str) -> Any:
        if self._redis is None:
            return MISSING
        try:
            raw = await self._redis.get(self._shared_key(key))
        except (RedisError, OSError) as exc:
            log.warning("shared cache unreadable", error=str(exc))
            return MISSING
        return MISSING if raw is None else json.loads(raw)

    async def _shared_put(self, key: str, value: Any, ttl: float) -> None:
        if self._redis is None:
            return
        try:
            payload = json.dumps(value, separators=(",", ":"))
        except (TypeError, ValueError):
            return  # not JSON: local tier only
        try:
            await self._redis.set(self._shared_key(key), payload, px=max(int(ttl * 1000), 1))
        except (RedisError, OSError) as exc:
            log.warning("shared cache unwritable", error=str(exc))
