"""Pool identities for tests: every pool lives in a Kubernetes namespace."""

from __future__ import annotations

from agent_runtime.config import PoolIdentity


def identity(name: str, namespace: str = "tests") -> PoolIdentity:
    """The identity of a test pool called `name` (in namespace `tests` unless told)."""
    return PoolIdentity(namespace=namespace, name=name)
