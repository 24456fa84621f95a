"""The load section of the runtime config: the scaling signal each replica publishes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agent_runtime.config.section import ConfigSection

LoadSignal = Literal["activeTurns", "activeTurnsAndQueuedTasks"]
"""What counts as demand: turns running, or those plus tasks waiting in the queue."""


class LoadSettings(ConfigSection):
    """What each replica publishes for the autoscaler, and how often."""

    signal: LoadSignal = Field(
        default="activeTurns",
        description="activeTurns, or activeTurnsAndQueuedTasks (needs memory.redis: the "
        "task queue lives there).",
    )
    publish_interval_seconds: float = Field(
        default=1.0, gt=0, le=60, description="How often a replica publishes its load."
    )
