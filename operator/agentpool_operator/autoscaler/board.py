"""The last load the autoscaler loop read for each pool: what the custom-metrics API
serves to an HPA (mode HPA) and what the status reports."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PoolLoad:
    """One pool's load at one tick."""

    demand: int
    """Active turns plus refused callers plus queued tasks (with that signal)."""
    load_percent: int
    """Demand over ready capacity (ready replicas x concurrencyPerReplica), in percent;
    demand x 100 when no replica is ready, so that an empty pool with work reads as full."""
    ready: int
    """Ready replicas at that tick."""
    at: float
    """Unix time of the tick."""


class LoadBoard:
    """Pool key ("namespace/name") -> its last load. Written by the loop only."""

    def __init__(self) -> None:
        self._loads: dict[str, PoolLoad] = {}

    def put(self, key: str, load: PoolLoad) -> None:
        self._loads[key] = load

    def forget(self, key: str) -> None:
        self._loads.pop(key, None)

    def get(self, key: str) -> PoolLoad | None:
        return self._loads.get(key)

    def keys(self) -> list[str]:
        return sorted(self._loads)
