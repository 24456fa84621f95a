"""Everything a pool should have in the cluster, from what the operator knows: the pool,
the AgentTools of its namespace, the Secrets and ConfigMaps there, and its own settings.

`desired_state` is the one entry point of the reconcile into rendering; it is pure and
deterministic (hypothesis checks that, the owner references, the labels and the names).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentpool_operator import api
from agentpool_operator.render import availability, network, workload
from agentpool_operator.render.config import Caller, Problem, RenderSettings, runtime_config
from agentpool_operator.render.references import (
    KeyReference,
    ObjectVersion,
    config_hash,
    missing_references,
    references,
)
from agentpool_operator.render.tools import resolve_tools

CHILD_KINDS: tuple[tuple[str, str], ...] = (
    ("v1", "ServiceAccount"),
    ("v1", "ConfigMap"),
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("policy/v1", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
)
"""Every kind a pool may own, in the order they are applied (the Deployment after what
its pods mount)."""


@dataclass(frozen=True)
class DesiredState:
    """What the cluster should hold for one pool."""

    children: tuple[dict[str, Any], ...]
    """The children to apply, in CHILD_KINDS order; kinds not here are to be deleted."""
    config_hash: str
    tools: tuple[api.AgentTool, ...]
    problems: tuple[Problem, ...]
    references: tuple[KeyReference, ...]
    """The Secrets and ConfigMaps of the namespace the pods need."""


def initial_replicas(pool: api.AgentPool, current: int | None) -> int:
    """What spec.replicas starts as when nobody has written it: the Deployment's current
    size when there is one (a reconcile never undoes a scale), else minReplicas (1 in mode
    None, and at least 1: a new pool answers its first request)."""
    scaling = pool.spec.scaling
    if scaling.mode == "None":
        return current if current is not None else 1
    low, high = scaling.min_replicas, scaling.max_replicas
    wanted = current if current is not None else max(1, low)
    return min(max(wanted, low), high)


def desired_state(
    pool: api.AgentPool,
    namespace_tools: Iterable[api.AgentTool],
    known: Mapping[tuple[str, str], ObjectVersion],
    settings: RenderSettings,
    callers: Sequence[Caller] = (),
) -> DesiredState:
    """The children of `pool`. `known` maps (kind, name) of the namespace's Secrets and
    ConfigMaps to their versions; `namespace_tools` are the AgentTools of its namespace;
    `callers` the pools that call it as a tool."""
    resolution = resolve_tools(pool.spec.tools, namespace_tools)
    rendered = runtime_config(pool, resolution.tools, settings, callers)
    refs = references(pool, rendered)
    digest = config_hash(rendered.config, refs, known)
    replicas = pool.spec.replicas
    port = settings.agent_port
    candidates = (
        workload.service_account(pool),
        workload.config_map(pool, rendered),
        workload.deployment(
            pool,
            rendered,
            config_hash=digest,
            replicas=replicas,
            image=settings.agent_image,
            port=port,
        ),
        network.service(pool, port),
        availability.disruption_budget(pool, replicas),
        network.network_policy(
            pool, port, settings.operator_namespace, sorted({c.pool for c in callers})
        ),
        availability.horizontal_autoscaler(pool),
    )
    return DesiredState(
        children=tuple(c for c in candidates if c is not None),
        config_hash=digest,
        tools=resolution.tools,
        problems=(
            *resolution.problems,
            *rendered.problems,
            *missing_references(refs, known),
        ),
        references=refs,
    )
