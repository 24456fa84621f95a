"""Working memory: the in-process first tier, a bounded LRU with access counts.

Hand-written rather than `functools.lru_cache`/`cachetools` because the tier needs
per-entry access counts, explicit deletes and eviction reports; an OrderedDict keeps
every operation O(1).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import quote, unquote

V = TypeVar("V")


@dataclass(slots=True)
class WorkingEntry(Generic[V]):
    """One entry and how often it has been read."""

    value: V
    access_count: int = 0


class WorkingMemory(Generic[V]):
    """A bounded mapping that evicts the least recently used entry when full."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"working memory capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._entries: OrderedDict[str, WorkingEntry[V]] = OrderedDict()

    def get(self, key: str) -> V | None:
        """The value under `key` (marking it recently used), or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        entry.access_count += 1
        return entry.value

    def peek(self, key: str) -> V | None:
        """The value under `key` without touching recency or access counts."""
        entry = self._entries.get(key)
        return None if entry is None else entry.value

    def put(self, key: str, value: V) -> str | None:
        """Store `value`; return the key evicted to make room, if any."""
        entry = self._entries.get(key)
        if entry is not None:
            entry.value = value
            self._entries.move_to_end(key)
            return None
        self._entries[key] = WorkingEntry(value)
        if len(self._entries) > self.capacity:
            evicted, _ = self._entries.popitem(last=False)
            return evicted
        return None

    def delete(self, key: str) -> bool:
        """Remove `key`; True if it was there."""
        return self._entries.pop(key, None) is not None

    def access_count(self, key: str) -> int:
        """How many times `get` found `key` since it was stored (0 if absent)."""
        entry = self._entries.get(key)
        return 0 if entry is None else entry.access_count

    def keys(self) -> list[str]:
        """Keys from least to most recently used."""
        return list(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))


class WorkingMemoryRegistry(Generic[V]):
    """The working memories of one replica: one per (tenant, conversation), bounded.

    The least recently used conversation's working memory is dropped when more than
    `max_conversations` are live; it is a cache, so nothing durable is lost.
    """

    def __init__(self, *, capacity: int, max_conversations: int) -> None:
        self.capacity = capacity
        self._scopes: WorkingMemory[WorkingMemory[V]] = WorkingMemory(max_conversations)
        self._by_tenant: dict[str, set[str]] = {}

    @staticmethod
    def _scope(tenant: str, conversation: str | None) -> str:
        # Percent-encoding keeps "/" out of both parts, so scopes never collide.
        return f"{quote(tenant, safe='')}/{quote(conversation or '', safe='')}"

    def find(self, tenant: str, conversation: str | None) -> WorkingMemory[V] | None:
        """The working memory of a conversation if this replica has one."""
        return self._scopes.get(self._scope(tenant, conversation))

    def open(self, tenant: str, conversation: str | None) -> WorkingMemory[V]:
        """The working memory of a conversation, created on first use."""
        scope = self._scope(tenant, conversation)
        found = self._scopes.get(scope)
        if found is not None:
            return found
        created: WorkingMemory[V] = WorkingMemory(self.capacity)
        evicted = self._scopes.put(scope, created)
        if evicted is not None:
            self._unindex(unquote(evicted.split("/", 1)[0]), evicted)
        self._by_tenant.setdefault(tenant, set()).add(scope)
        return created

    def _unindex(self, tenant: str, scope: str) -> None:
        # A tenant's bookkeeping goes with its last scope: memory stays flat however
        # many distinct tenants pass through a replica.
        scopes = self._by_tenant.get(tenant)
        if scopes is not None:
            scopes.discard(scope)
            if not scopes:
                del self._by_tenant[tenant]

    def drop_key(self, tenant: str, key: str) -> int:
        """Remove `key` from every conversation of `tenant`; return how many held it.

        A conversation's working memory left empty is dropped with it.
        """
        dropped = 0
        for scope in list(self._by_tenant.get(tenant, ())):
            memory = self._scopes.peek(scope)
            if memory is not None and memory.delete(key):
                dropped += 1
            if memory is None or not memory:
                self._scopes.delete(scope)
                self._unindex(tenant, scope)
        return dropped

    def tenants(self) -> int:
        """How many tenants this replica keeps working memory for."""
        return len(self._by_tenant)

    def drop_matching(self, predicate: Callable[[V], bool]) -> int:
        """Remove every entry, in every conversation, whose value matches; return how many."""
        dropped = 0
        for scope in list(self._scopes):
            memory = self._scopes.peek(scope)
            if memory is None:
                continue
            for key in list(memory):
                value = memory.peek(key)
                if value is not None and predicate(value):
                    memory.delete(key)
                    dropped += 1
            if not memory:
                self._scopes.delete(scope)
                self._unindex(unquote(scope.split("/", 1)[0]), scope)
        return dropped

    def __len__(self) -> int:
        return len(self._scopes)
