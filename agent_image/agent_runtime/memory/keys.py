"""Redis names: every key, stream and channel of a pool, scoped by its identity.

Every name starts with `{prefix}:{namespace}:{pool}` (the Kubernetes namespace and the
pool's name), so two pools called `support` in two namespaces sharing one Redis never
share a key; memories are further scoped by tenant. Every part is percent-encoded, so a
`:` inside one can never forge another pool's or tenant's key.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from urllib.parse import quote

from agent_runtime.config.identity import PoolIdentity
from agent_runtime.config.limits import (
    IDEMPOTENCY_KEY_MAX_CHARS,
    MEMORY_KEY_MAX_CHARS,
    TENANT_MAX_CHARS,
    TENANT_PATTERN,
)
from agent_runtime.config.load import drain_key, load_key, pool_root, task_queue_keys
from agent_runtime.memory.errors import InvalidMemoryError

_TENANT = re.compile(TENANT_PATTERN)


def _part(text: str) -> str:
    return quote(text, safe="")


def check_length(what: str, value: str, limit: int) -> str:
    """Return `value` if it has 1..`limit` characters, else raise `InvalidMemoryError`."""
    if not value or len(value) > limit:
        raise InvalidMemoryError(f"{what} must be 1..{limit} characters, got {len(value)}")
    return value


def check_tenant(tenant: str) -> str:
    """Return `tenant` if usable, else raise `InvalidMemoryError`."""
    check_length("tenant", tenant, TENANT_MAX_CHARS)
    if not _TENANT.fullmatch(tenant):
        raise InvalidMemoryError(f"tenant {tenant!r} does not match {TENANT_PATTERN}")
    return tenant


def check_key(key: str) -> str:
    """Return `key` if usable, else raise `InvalidMemoryError`."""
    return check_length("memory key", key, MEMORY_KEY_MAX_CHARS)


def check_idempotency_key(key: str) -> str:
    """Return `key` if usable, else raise `InvalidMemoryError`."""
    return check_length("idempotency key", key, IDEMPOTENCY_KEY_MAX_CHARS)


@dataclass(frozen=True)
class KeySpace:
    """Builds the Redis names of one pool: memory, conversations, breakers, cache."""

    prefix: str
    pool: PoolIdentity

    @functools.cached_property
    def root(self) -> str:
        """What every name of this pool starts with (computed once: every name uses it)."""
        return pool_root(self.prefix, self.pool)

    @property
    def load(self) -> str:
        """The hash of the pool's load samples (layout: `agent_runtime.config.load`)."""
        return load_key(self.prefix, self.pool)

    @property
    def drain(self) -> str:
        """The hash of the autoscaler's drain requests (layout: `agent_runtime.config.load`)."""
        return drain_key(self.prefix, self.pool)

    @property
    def memory_invalidation_channel(self) -> str:
        """The pub/sub channel on which replicas announce changed memories."""
        return f"{self.root}:memory:invalidate"

    @property
    def breaker_prefix(self) -> str:
        """The start of the shared circuit breakers' keys (the breaker's name follows)."""
        return f"{self.root}:breaker:"

    @property
    def cache_prefix(self) -> str:
        """The start of the shared tool-cache keys (tool and call hash follow)."""
        return f"{self.root}:cache:"

    def _tenant(self, tenant: str) -> str:
        return f"{self.root}:tenant:{_part(check_tenant(tenant))}"

    def long_term(self, tenant: str, key: str) -> str:
        return f"{self._tenant(tenant)}:lt:{_part(check_key(key))}"

    def episode_docs(self, tenant: str) -> str:
        return f"{self._tenant(tenant)}:ep:docs"

    def episode_vectors(self, tenant: str) -> str:
        return f"{self._tenant(tenant)}:ep:vecs"

    def episode_keys(self, tenant: str) -> str:
        return f"{self._tenant(tenant)}:ep:keys"

    @property
    def episode_log(self) -> str:
        return f"{self.root}:ep:log"

    @property
    def episode_sequence(self) -> str:
        return f"{self.root}:ep:seq"

    @property
    def episode_tenants(self) -> str:
        return f"{self.root}:ep:tenants"

    def conversation_events(self, conversation_id: str) -> str:
        return f"{self.root}:conv:{_part(conversation_id)}:events"

    def conversation_snapshot(self, conversation_id: str) -> str:
        return f"{self.root}:conv:{_part(conversation_id)}:snapshot"

    def conversation_version(self, conversation_id: str) -> str:
        return f"{self.root}:conv:{_part(conversation_id)}:version"

    def conversation_tenant(self, conversation_id: str) -> str:
        """The tenant that owns the conversation (set once, by its first turn)."""
        return f"{self.root}:conv:{_part(conversation_id)}:tenant"

    def conversation_writer(self, conversation_id: str) -> str:
        """The lease of the one turn writing the conversation now."""
        return f"{self.root}:conv:{_part(conversation_id)}:writer"

    # The task queue (agent_runtime.tasks): one stream per pool, one consumer group.

    @property
    def task_stream(self) -> str:
        """The stream every replica of the pool takes tasks from."""
        return task_queue_keys(self.prefix, self.pool)[0]

    @property
    def task_dead_letters(self) -> str:
        """The stream of tasks given up after too many deliveries."""
        return f"{self.root}:tasks:dead"

    @property
    def task_prefix(self) -> str:
        """The start of each task's record (the task id follows)."""
        return f"{self.root}:tasks:task:"

    def task(self, task_id: str) -> str:
        return f"{self.task_prefix}{_part(task_id)}"

    def task_idempotency(self, tenant: str, key: str) -> str:
        """Which task a tenant's idempotency key created."""
        return f"{self._tenant(tenant)}:tasks:idem:{_part(check_idempotency_key(key))}"

    def task_conversation_holder(self, conversation_id: str) -> str:
        """The one task of a conversation that is queued or running."""
        return f"{self.root}:tasks:conv:{_part(conversation_id)}:holder"

    def task_conversation_waiting(self, conversation_id: str) -> str:
        """The conversation's tasks waiting behind its holder, oldest first."""
        return f"{self.root}:tasks:conv:{_part(conversation_id)}:waiting"

    @property
    def task_waiting_count(self) -> str:
        """How many tasks wait behind another task of their conversation."""
        return task_queue_keys(self.prefix, self.pool)[1]
