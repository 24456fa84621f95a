"""Checks on JSON values that cross the runtime's edges (request bodies, tool answers).

Iterative, so a hostile value cannot exhaust the interpreter's recursion limit while it
is being checked.
"""

from __future__ import annotations

import math
from typing import Any, Final

MAX_RESULT_DEPTH: Final = 128
"""The deepest tool answer passed on (deeper ones are a 502 `responseTooLarge`)."""

MAX_BODY_DEPTH: Final = 64
"""The deepest request body accepted (deeper ones are a 422)."""


def nesting_exceeds(value: Any, limit: int) -> bool:
    """Whether lists/dicts nest deeper than `limit` levels."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth >= limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def first_unrepresentable(value: Any) -> str | None:
    """A description of the first value JSON cannot carry faithfully, or None.

    Non-finite numbers (NaN, Infinity: Python's decoder accepts them, RFC 8259 does not)
    and strings holding unpaired UTF-16 surrogates (`"\\ud800"`: they cannot be encoded
    as UTF-8, so they would fail later when stored or echoed).
    """
    stack: list[tuple[Any, str]] = [(value, "$")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return f"{path}: non-finite number"
        if isinstance(item, str):
            if _lone_surrogate(item):
                return f"{path}: unpaired surrogate in a string"
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and _lone_surrogate(key):
                    return f"{path}: unpaired surrogate in a key"
                stack.append((child, f"{path}.{str(key)[:32]}"))
        elif isinstance(item, list | tuple):
            stack.extend((child, f"{path}[{i}]") for i, child in enumerate(item))
    return None
