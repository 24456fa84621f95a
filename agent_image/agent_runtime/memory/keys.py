"""Redis key names: every key is scoped by prefix and pool, and memories by namespace.

Parts chosen by users (namespaces, keys, conversation ids) are percent-encoded, so a
`:` inside one can never forge another tenant's key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from agent_runtime.config.limits import MEMORY_KEY_MAX_CHARS, TENANT_MAX_CHARS, TENANT_PATTERN
from agent_runtime.memory.errors import InvalidMemoryError

_TENANT = re.compile(TENANT_PATTERN)


def _part(text: str) -> str:
    return quote(text, safe="")


def check_length(what: str, value: str, limit: int) -> str:
    """Return `value` if it has 1..`limit` characters, else raise `InvalidMemoryError`."""
    if not value or len(value) > limit:
        raise InvalidMemoryError(f"{what} must be 1..{limit} characters, got {len(value)}")
    return value


def check_namespace(namespace: str) -> str:
    """Return `namespace` if usable, else raise `InvalidMemoryError`."""
    check_length("namespace", namespace, TENANT_MAX_CHARS)
    if not _TENANT.fullmatch(namespace):
        raise InvalidMemoryError(f"namespace {namespace!r} does not match {TENANT_PATTERN}")
    return namespace


def check_key(key: str) -> str:
    """Return `key` if usable, else raise `InvalidMemoryError`."""
    return check_length("memory key", key, MEMORY_KEY_MAX_CHARS)


@dataclass(frozen=True)
class KeySpace:
    """Builds the Redis keys of one pool."""

    prefix: str
    pool: str

    @property
    def root(self) -> str:
        return f"{_part(self.prefix)}:{_part(self.pool)}"

    def _ns(self, namespace: str) -> str:
        return f"{self.root}:ns:{_part(check_namespace(namespace))}"

    def long_term(self, namespace: str, key: str) -> str:
        return f"{self._ns(namespace)}:lt:{_part(check_key(key))}"

    def episode_docs(self, namespace: str) -> str:
        return f"{self._ns(namespace)}:ep:docs"

    def episode_vectors(self, namespace: str) -> str:
        return f"{self._ns(namespace)}:ep:vecs"

    def episode_keys(self, namespace: str) -> str:
        return f"{self._ns(namespace)}:ep:keys"

    @property
    def episode_log(self) -> str:
        return f"{self.root}:ep:log"

    @property
    def episode_sequence(self) -> str:
        return f"{self.root}:ep:seq"

    @property
    def episode_namespaces(self) -> str:
        return f"{self.root}:ep:namespaces"

    def conversation_events(self, conversation_id: str) -> str:
        return f"{self.root}:conv:{_part(conversation_id)}:events"

    def conversation_snapshot(self, conversation_id: str) -> str:
        return f"{self.root}:conv:{_part(conversation_id)}:snapshot"

    def conversation_version(self, conversation_id: str) -> str:
        return f"{self.root}:conv:{_part(conversation_id)}:version"
