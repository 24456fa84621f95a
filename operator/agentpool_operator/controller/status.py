"""A pool's status from what the reconcile rendered and what its Deployment reports; and
the Events a change of status deserves. Pure: time is passed in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agentpool_operator import api
from agentpool_operator.controller.conditions import render_conditions
from agentpool_operator.render import names
from agentpool_operator.render.children import DesiredState

OWNED_CONDITIONS = ("Ready", "Progressing", "Degraded", "ToolsResolved", "Paused")
"""The conditions the reconcile writes; the autoscaler writes the others."""


def _int(source: Mapping[str, Any], key: str) -> int:
    value = source.get(key)
    return value if isinstance(value, int) else 0


def _paused(pool: api.AgentPool) -> tuple[str, str, str]:
    annotations = pool.metadata.annotations
    pinned = annotations.get(api.PAUSED_REPLICAS_ANNOTATION)
    if pinned is not None:
        return "True", "PinnedByAnnotation", f"replicas pinned to {pinned} by annotation"
    if annotations.get(api.PAUSED_ANNOTATION, "").lower() == "true":
        return "True", "PausedByAnnotation", "autoscaling paused by annotation"
    return "False", "NotPaused", ""


def _rollout(deployment: Mapping[str, Any] | None) -> tuple[int, int, int, int, bool]:
    """(desired, replicas, ready, updated, settled) of the Deployment."""
    if deployment is None:
        return 0, 0, 0, 0, False
    spec = deployment.get("spec", {})
    status = deployment.get("status", {})
    desired = _int(spec, "replicas") if "replicas" in spec else 1
    replicas, ready, updated = (
        _int(status, k) for k in ("replicas", "readyReplicas", "updatedReplicas")
    )
    observed = _int(status, "observedGeneration") >= _int(
        deployment.get("metadata", {}), "generation"
    )
    settled = observed and updated >= desired and replicas == updated
    return desired, replicas, ready, updated, settled


def pool_status(
    pool: api.AgentPool,
    desired: DesiredState,
    deployment: Mapping[str, Any] | None,
    previous: Mapping[str, Any],
    now: datetime,
) -> dict[str, Any]:
    """The fields of the pool's status the reconcile owns."""
    want, replicas, ready, updated, settled = _rollout(deployment)
    if pool.spec.replicas is not None:
        want = pool.spec.replicas
    tool_problems = [p for p in desired.problems if p.reason == "ToolNotFound"]
    conditions: list[tuple[str, str, str, str]] = []
    if deployment is None:
        conditions.append(("Ready", "False", "Creating", "the Deployment is being created"))
    elif want == 0:
        conditions.append(("Ready", "True", "ScaledToZero", "no replicas wanted"))
    elif ready >= want:
        conditions.append(("Ready", "True", "AllReplicasReady", f"{ready}/{want} replicas ready"))
    else:
        conditions.append(("Ready", "False", "ReplicasNotReady", f"{ready}/{want} replicas ready"))
    if settled:
        conditions.append(
            ("Progressing", "False", "Stable", "every replica runs the current config")
        )
    else:
        conditions.append(
            (
                "Progressing",
                "True",
                "RollingOut",
                f"{updated}/{want} replicas run the current config",
            )
        )
    if desired.problems:
        first = desired.problems[0]
        message = "; ".join(p.message for p in desired.problems)
        conditions.append(("Degraded", "True", first.reason, message))
    else:
        conditions.append(("Degraded", "False", "AsExpected", ""))
    if tool_problems:
        conditions.append(
            ("ToolsResolved", "False", "ToolNotFound", "; ".join(p.message for p in tool_problems))
        )
    else:
        conditions.append(
            ("ToolsResolved", "True", "Resolved", f"{len(desired.tools)} AgentTools resolved")
        )
    conditions.append(("Paused", *_paused(pool)))
    rendered = render_conditions(conditions, previous, pool.metadata.generation, now)
    generation = pool.metadata.generation
    status_doc: dict[str, Any] = {
        "replicas": replicas,
        "readyReplicas": ready,
        "updatedReplicas": updated,
        "desiredReplicas": want,
        "selector": names.selector_string(pool.metadata.name),
        "configHash": desired.config_hash,
        "tools": [
            {"name": t.metadata.name, "implementation": t.spec.implementation}
            for t in desired.tools
        ],
        "conditions": rendered,
    }
    if generation is not None:
        status_doc = {"observedGeneration": generation, **status_doc}
    return status_doc


def status_changed(previous: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether writing `new` would change the pool's status."""
    for key, value in new.items():
        if key == "conditions":
            continue
        if previous.get(key, [] if key == "tools" else None) != value:
            return True
    before = {c.get("type"): c for c in previous.get("conditions", []) if isinstance(c, dict)}
    for condition in new["conditions"]:
        old = before.get(condition["type"])
        if old is None or any(old.get(k) != v for k, v in condition.items()):
            return True
    return False


@dataclass(frozen=True)
class PoolEvent:
    type: str  # Normal or Warning
    reason: str
    message: str


def _condition(status: Mapping[str, Any], type_: str) -> Mapping[str, Any]:
    for c in status.get("conditions", []):
        if isinstance(c, dict) and c.get("type") == type_:
            return c
    return {}


def events(
    previous: Mapping[str, Any],
    new: Mapping[str, Any],
    *,
    created: Sequence[str],
    rolled: bool,
) -> list[PoolEvent]:
    """The Events a user should see for this reconcile: children created, pods rolled,
    degraded (or degraded for another reason), recovered, ready."""
    found: list[PoolEvent] = []
    if created:
        found.append(PoolEvent("Normal", "Created", "created " + ", ".join(created)))
    if rolled:
        found.append(
            PoolEvent(
                "Normal", "RollingUpdate", f"config {new.get('configHash')}: rolling the pods"
            )
        )
    old_degraded, degraded = _condition(previous, "Degraded"), _condition(new, "Degraded")
    if degraded.get("status") == "True" and (
        old_degraded.get("status") != "True" or old_degraded.get("reason") != degraded.get("reason")
    ):
        found.append(
            PoolEvent("Warning", str(degraded["reason"]), str(degraded.get("message", "")))
        )
    if degraded.get("status") == "False" and old_degraded.get("status") == "True":
        found.append(
            PoolEvent("Normal", "Recovered", f"no longer degraded ({old_degraded.get('reason')})")
        )
    old_ready, ready = _condition(previous, "Ready"), _condition(new, "Ready")
    if ready.get("status") == "True" and old_ready.get("status") != "True":
        found.append(PoolEvent("Normal", "Ready", str(ready.get("message", ""))))
    return found
