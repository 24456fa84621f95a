"""The status fields and conditions the autoscaler owns (under its own field manager),
and the Events a user should see for them.

Written only when something a user reads changed: a scale, a condition, a cooldown
deadline, or the load (at most every `LOAD_REFRESH_SECONDS`, so that 500 busy pools do
not cost 500 writes a second). An idle pool costs no write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from agentpool_operator.controller.conditions import ConditionTuple, render_conditions, timestamp
from agentpool_operator.controller.status import PoolEvent

MANAGER = "agentpool-autoscaler"
"""The field manager of the autoscaler's writes (status and the scale subresource)."""

OWNED_CONDITIONS = ("ScalingActive", "ScalingLimited", "Fallback")
LOAD_FIELDS = ("demand", "loadPercent")
LOAD_REFRESH_SECONDS = 15.0


def at(unix: float) -> str:
    return timestamp(datetime.fromtimestamp(unix, UTC))


def status_doc(
    *,
    demand: int | None,
    load_percent: int | None,
    last_scale: tuple[str, str] | None,
    up_blocked_until: float | None,
    down_blocked_until: float | None,
    conditions: Sequence[ConditionTuple],
    previous: Mapping[str, Any],
    generation: int | None,
    now: float,
) -> dict[str, Any]:
    """The autoscaler's part of a pool's status (absent fields are removed by the apply)."""
    doc: dict[str, Any] = {}
    if demand is not None:
        doc["demand"] = demand
    if load_percent is not None:
        doc["loadPercent"] = load_percent
    if last_scale is not None:
        doc["lastScaleTime"], doc["lastScaleReason"] = last_scale
    if up_blocked_until is not None and up_blocked_until > now:
        doc["scaleUpBlockedUntil"] = at(up_blocked_until)
    if down_blocked_until is not None and down_blocked_until > now:
        doc["scaleDownBlockedUntil"] = at(down_blocked_until)
    doc["conditions"] = render_conditions(
        conditions, previous, generation, datetime.fromtimestamp(now, UTC)
    )
    return doc


_FIELDS = (
    "demand",
    "loadPercent",
    "lastScaleTime",
    "lastScaleReason",
    "scaleUpBlockedUntil",
    "scaleDownBlockedUntil",
)


def differences(previous: Mapping[str, Any], new: Mapping[str, Any]) -> set[str]:
    """The autoscaler's fields whose written value would change."""
    changed = {f for f in _FIELDS if previous.get(f) != new.get(f)}
    before = {c.get("type"): c for c in previous.get("conditions", []) if isinstance(c, dict)}
    for condition in new["conditions"]:
        old = before.get(condition["type"])
        if old is None or any(old.get(k) != v for k, v in condition.items()):
            changed.add("conditions")
    return changed


def worth_writing(changed: set[str], last_written: float | None, now: float) -> bool:
    """Load alone is refreshed at most every LOAD_REFRESH_SECONDS; anything else at once."""
    if not changed:
        return False
    if changed - set(LOAD_FIELDS):
        return True
    return last_written is None or now - last_written >= LOAD_REFRESH_SECONDS


def condition_events(previous: Mapping[str, Any], new: Mapping[str, Any]) -> list[PoolEvent]:
    """Warnings when the autoscaler loses its signal or falls back, and the recovery."""
    found: list[PoolEvent] = []
    before = {c.get("type"): c for c in previous.get("conditions", []) if isinstance(c, dict)}
    for condition in new["conditions"]:
        old = before.get(condition["type"], {})
        status, reason = condition["status"], condition["reason"]
        if old.get("status") == status and old.get("reason") == reason:
            continue
        kind = condition["type"]
        if kind == "ScalingActive" and status == "False" and reason != "Paused":
            found.append(PoolEvent("Warning", reason, condition["message"]))
        elif kind == "ScalingActive" and status == "True" and old.get("status") == "False":
            found.append(PoolEvent("Normal", "ScalingResumed", condition["message"]))
        elif kind == "Fallback" and status == "True":
            found.append(PoolEvent("Warning", "FallbackReplicas", condition["message"]))
    return found
