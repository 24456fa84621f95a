"""Which tiers a memory goes to: the pool's routing rules, applied purely."""

from __future__ import annotations

from fnmatch import fnmatchcase

from agent_runtime.config.memory import RoutingRule, RoutingSettings


def route(routing: RoutingSettings, key: str, importance: float) -> RoutingRule | None:
    """The first rule matching (key, importance), or None if no rule does."""
    for rule in routing.rules:
        if importance < rule.min_importance:
            continue
        if rule.key_pattern is not None and not fnmatchcase(key, rule.key_pattern):
            continue
        return rule
    return None
