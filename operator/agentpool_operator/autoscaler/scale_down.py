"""A scale-down that cuts no turn: pick the idlest replicas, mark them for deletion,
ask them to drain, and only then lower replicas.

Two ticks at least: the first marks the chosen pods (`pod-deletion-cost`, so the
ReplicaSet deletes these and no others) and writes their drain requests; a later one,
once they all report draining (or a few seconds passed), writes the lower replicas. A
chosen pod takes no new turn from then on; the preStop hook waits for those it runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from agent_runtime.config.load import LoadSample

DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
CHOSEN_COST = "-1000"
"""Below any cost a user would set: the ReplicaSet removes the chosen pods first."""

ACK_TIMEOUT_SECONDS = 3.0
"""How long a scale-down waits for the chosen replicas to report draining before it
lowers replicas anyway (a replica that does not answer is no turn to protect)."""

REQUEST_SECONDS = 60.0
"""How long a drain request stands: past it a replica that was not removed (the
operator died between the two steps) takes turns again."""


@dataclass(frozen=True)
class PendingScaleDown:
    """A scale-down between its two steps."""

    target: int
    """The replicas it will write."""
    from_replicas: int
    """The replicas when it began (a change by anyone else cancels it)."""
    pods: tuple[str, ...]
    """The replicas asked to drain."""
    asked_at: float
    reason: str


def choose(samples: Mapping[str, LoadSample], count: int, now: float, stale: float) -> list[str]:
    """The `count` idlest reporting replicas (fewest active turns; already draining
    first; by name for a stable choice)."""
    fresh = [(pod, s) for pod, s in samples.items() if now - s.at <= stale]
    fresh.sort(key=lambda item: (not item[1].draining, item[1].active_turns, item[0]))
    return [pod for pod, _ in fresh[:count]]


def acknowledged(
    pending: PendingScaleDown, samples: Mapping[str, LoadSample], now: float, stale: float
) -> bool:
    """Whether the second step may go: every chosen replica drains or is gone, or the
    wait is over."""
    if now - pending.asked_at >= ACK_TIMEOUT_SECONDS:
        return True
    for pod in pending.pods:
        sample = samples.get(pod)
        if sample is not None and now - sample.at <= stale and not sample.draining:
            return False
    return True
