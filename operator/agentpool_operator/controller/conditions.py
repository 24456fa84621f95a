"""Conditions in the metav1.Condition shape, as both kinds' statuses write them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

ConditionTuple = tuple[str, str, str, str]
"""(type, status, reason, message)."""


def timestamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def render_conditions(
    conditions: Sequence[ConditionTuple],
    previous: Mapping[str, Any],
    generation: int | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """The conditions as written; a condition whose status did not change keeps its
    lastTransitionTime (so an unchanged status renders identically: nothing to write)."""
    before = {c.get("type"): c for c in previous.get("conditions", []) if isinstance(c, dict)}
    rendered: list[dict[str, Any]] = []
    for type_, status, reason, message in conditions:
        old = before.get(type_)
        since = (
            old["lastTransitionTime"]
            if old is not None and old.get("status") == status and "lastTransitionTime" in old
            else timestamp(now)
        )
        condition: dict[str, Any] = {
            "type": type_,
            "status": status,
            "reason": reason,
            "message": message,
            "lastTransitionTime": since,
        }
        if generation is not None:
            condition["observedGeneration"] = generation
        rendered.append(condition)
    return rendered
