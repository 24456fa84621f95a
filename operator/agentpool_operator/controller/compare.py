"""Whether a live object already holds everything the operator would apply.

The reconcile skips an apply whose desired state the live object already has, so a quiet
cluster sees no write from the operator. The live object holds more than was applied
(server defaults, other managers' fields, status), so the test is "desired is contained in
live": every field the operator sets has its value there. Values the API server writes
back in another spelling count as equal: an omitted empty value (the API omits "", false,
0, [] and {}), and quantities ("0.5" is stored as "500m").
"""

from __future__ import annotations

from typing import Any

from agentpool_operator.api import quantity_value

_QUANTITY_KEYS = frozenset({"requests", "limits", "sizeLimit"})


def _same_quantity(desired: object, live: object) -> bool:
    if not isinstance(desired, str | int) or not isinstance(live, str | int):
        return False
    try:
        return quantity_value(desired) == quantity_value(live)
    except ValueError:
        return False


def contains(live: object, desired: object, *, quantities: bool = False) -> bool:
    """Whether `live` has every field of `desired` with the same value."""
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return False
        for key, want in desired.items():
            if key not in live:
                if want in ("", False, 0, [], {}, None):
                    continue
                return False
            nested_quantities = quantities or key in _QUANTITY_KEYS
            if not contains(live[key], want, quantities=nested_quantities):
                return False
        return True
    if isinstance(desired, list):
        # Items another manager appended (a webhook's sidecar) are not the operator's.
        if not isinstance(live, list) or len(live) < len(desired):
            return False
        return all(
            contains(lv, dv, quantities=quantities)
            for lv, dv in zip(live[: len(desired)], desired, strict=True)
        )
    if desired == live and type(desired) is type(live):
        return True
    return quantities and _same_quantity(desired, live)


def needs_apply(desired: dict[str, Any], live: dict[str, Any] | None) -> bool:
    """Whether `desired` must be applied: the object is missing or differs."""
    if live is None:
        return True
    return not (
        contains(live.get("metadata", {}), desired["metadata"])
        and contains(
            {k: v for k, v in live.items() if k != "metadata"},
            {k: v for k, v in desired.items() if k != "metadata"},
        )
    )
