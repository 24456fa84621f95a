"""Who things are for, in tests: pool identities and the context of tool calls."""

from __future__ import annotations

from agent_runtime.config import PoolIdentity
from agent_runtime.tools.tool import CallContext

CONTEXT = CallContext(tenant="tests")
"""The context of a tool call made by a test that does not care about tenants."""


def identity(name: str, namespace: str = "tests") -> PoolIdentity:
    """The identity of a test pool called `name` (in namespace `tests` unless told)."""
    return PoolIdentity(namespace=namespace, name=name)
