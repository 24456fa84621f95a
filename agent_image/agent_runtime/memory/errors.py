"""The errors the memory tiers and the conversation store raise, for callers to catch."""

from __future__ import annotations


class AgentMemoryError(Exception):
    """Base of every memory and state error (not the builtin `MemoryError`)."""


class InvalidMemoryError(AgentMemoryError, ValueError):
    """A key, tenant or value the memory cannot keep unchanged (bad input)."""


class CorruptRecordError(AgentMemoryError):
    """Data read from Redis is not what this runtime writes; it is never executed."""


class StoreUnavailableError(AgentMemoryError):
    """Redis is unreachable: the operation was refused rather than silently dropped.

    A write that raises this was not acknowledged; the caller may retry it later.
    """
