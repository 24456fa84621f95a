"""The scaling policy of mode Operator: pure, so that hypothesis can check it.

`decide(spec, capacity, current, observation, history, now)` is the whole policy: time is
passed in, the history it needs next time is returned in the `Decision`, nothing is
mutated. The autoscaler loop (`autoscaler/loop.py`) owns everything that talks to Redis
or the API server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agent_runtime.config.load import LoadSample
from agentpool_operator import api

Direction = Literal["Up", "Down"]


@dataclass(frozen=True)
class Current:
    """The pool as the API server reports it at this tick."""

    replicas: int
    """spec.replicas (what was last written)."""
    ready: int
    """Ready agent pods (status.readyReplicas)."""


@dataclass(frozen=True)
class Observation:
    """What one tick read of one pool's load."""

    samples: tuple[LoadSample, ...] | None
    """Every replica's last sample (stale ones included: `decide` applies the rule);
    None when the load could not be read (Redis unreachable)."""
    queued_tasks: int = 0
    """Tasks waiting in the pool's queue, read from the queue itself (0 with signal
    ActiveTurns): this is what wakes a pool that has no replica."""
    stale_after: float = 5.0
    """Seconds after which a sample belongs to a replica that stopped reporting."""


@dataclass(frozen=True)
class Point:
    """One tick's reading, kept for the windows."""

    at: float
    up: int
    """Replicas the load asks for, with silent replicas counted empty."""
    down: int
    """Replicas the load asks for, with silent replicas counted full."""


@dataclass(frozen=True)
class ScaleEvent:
    """A change the autoscaler wrote (for the step limits' periods)."""

    at: float
    before: int
    after: int


@dataclass(frozen=True)
class History:
    """What `decide` remembers between ticks; a new one for an operator that just started."""

    started_at: float
    """When this operator began watching the pool: no scale-down before a full
    scale-down window of samples has been seen since."""
    points: tuple[Point, ...] = ()
    events: tuple[ScaleEvent, ...] = ()
    failures: int = 0
    """Consecutive ticks whose load could not be read."""
    last_demand_at: float | None = None
    """The last tick that saw any demand (for the cooldown to zero)."""


@dataclass(frozen=True)
class Decision:
    """What the pool should have now, and why."""

    replicas: int
    reason: str
    """One sentence for the status, the Event and the log."""
    history: History
    demand: int | None = None
    """Active turns plus queued tasks; None when unknown."""
    load_percent: int | None = None
    """Demand over ready capacity, in percent; None when unknown or nothing is ready."""
    limited: bool = False
    """The load asks for a size outside minReplicas..maxReplicas (condition ScalingLimited)."""
    load_known: bool = True
    """False while the load cannot be read (condition ScalingActive False)."""
    fallback: bool = False
    """The declared fallback size applies (condition Fallback)."""
    up_blocked_until: float | None = None
    down_blocked_until: float | None = None


def decide(
    spec: api.ScalingSpec,
    capacity: int,
    current: Current,
    observation: Observation,
    history: History,
    now: float,
) -> Decision:
    """The replicas the pool should have at `now`."""
    raise NotImplementedError
