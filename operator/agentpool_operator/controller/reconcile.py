"""One reconcile of one pool: render, apply what differs, delete what is no longer wanted,
write status when it changed, record Events. Level-triggered and idempotent: it reads only
the view (the watch streams' cache) and writes only differences, so a pool with nothing
to change costs no request."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from pydantic import ValidationError

from agentpool_operator import api
from agentpool_operator.controller.compare import needs_apply
from agentpool_operator.controller.status import events, pool_status, status_changed
from agentpool_operator.controller.view import Body, ClusterView
from agentpool_operator.kube import KubeApi
from agentpool_operator.metrics import RECONCILE_SECONDS, RECONCILES
from agentpool_operator.render import names
from agentpool_operator.render.children import CHILD_KINDS, desired_state, initial_replicas
from agentpool_operator.render.config import RenderSettings

log = structlog.get_logger(__name__)

PoolKey = tuple[str, str]


@dataclass
class Outcome:
    """What one reconcile did (for logs, metrics and tests)."""

    writes: list[str] = field(default_factory=list)
    references: frozenset[tuple[str, str]] = frozenset()


def _parse_tools(bodies: list[Body]) -> list[api.AgentTool]:
    tools = []
    for body in bodies:
        try:
            tools.append(api.AgentTool.model_validate(body))
        except ValidationError as exc:
            # The CRD refuses what the models refuse; an object stored before a schema
            # change can still disagree. Such a tool is as good as missing.
            log.warning("AgentTool does not parse", tool=body["metadata"]["name"], error=str(exc))
    return tools


class Reconciler:
    """Reconciles pools from a view, writing through a KubeApi."""

    def __init__(
        self,
        view: ClusterView,
        kube: KubeApi,
        settings: RenderSettings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._view = view
        self._kube = kube
        self._settings = settings
        self._clock = clock
        self._written: dict[PoolKey, tuple[str, dict[str, Any]]] = {}
        """The last status written per pool, with the pool's uid: the watch stream shows
        it a moment later, and a reconcile in between must not judge from the older one."""
        self.references: dict[PoolKey, frozenset[tuple[str, str]]] = {}
        """Secrets and ConfigMaps (kind, name) each pool referenced when last reconciled."""

    async def reconcile(self, key: PoolKey) -> Outcome:
        started = time.perf_counter()
        result = "error"
        try:
            outcome = await self._reconcile(key)
            result = "changed" if outcome.writes else "unchanged"
            return outcome
        finally:
            RECONCILES.labels(result).inc()
            RECONCILE_SECONDS.observe(time.perf_counter() - started)

    async def _reconcile(self, key: PoolKey) -> Outcome:
        namespace, name = key
        body = self._view.pool(namespace, name)
        outcome = Outcome()
        if body is None or body.get("metadata", {}).get("deletionTimestamp"):
            self.references.pop(key, None)
            self._written.pop(key, None)
            return outcome  # the garbage collector removes the children
        pool = api.AgentPool.model_validate(body)
        bound = log.bind(pool=f"{namespace}/{name}")
        live = dict(self._view.children(namespace, name))
        deployment = live.get("Deployment")
        if pool.spec.replicas is None:
            current = deployment.get("spec", {}).get("replicas") if deployment else None
            replicas = initial_replicas(pool, current if isinstance(current, int) else None)
            assert pool.metadata.resource_version is not None
            if await self._kube.init_replicas(
                namespace, name, pool.metadata.resource_version, replicas
            ):
                outcome.writes.append("AgentPool/replicas")
                pool = pool.model_copy(
                    update={"spec": pool.spec.model_copy(update={"replicas": replicas})}
                )
            else:
                return outcome  # the pool changed meanwhile: its event queues it again
        desired = desired_state(
            pool,
            _parse_tools(self._view.tools(namespace)),
            self._view.objects(namespace),
            self._settings,
        )
        outcome.references = frozenset((r.kind, r.name) for r in desired.references)
        self.references[key] = outcome.references
        created: list[str] = []
        rolled = False
        for child in desired.children:
            kind = child["kind"]
            current = live.get(kind)
            if not needs_apply(child, current):
                continue
            if kind == "Deployment" and current is not None:
                old = current["spec"]["template"]["metadata"].get("annotations", {})
                rolled = old.get(names.CONFIG_HASH_ANNOTATION) != desired.config_hash
            applied = await self._kube.apply(child)
            outcome.writes.append(f"{kind}/apply")
            if current is None:
                created.append(f"{kind} {child['metadata']['name']}")
            live[kind] = applied
        wanted = {c["kind"] for c in desired.children}
        for api_version, kind in CHILD_KINDS:
            stale = live.get(kind)
            if kind in wanted or stale is None:
                continue
            meta = stale["metadata"]
            await self._kube.delete(api_version, kind, namespace, meta["name"], meta["uid"])
            outcome.writes.append(f"{kind}/delete")
        previous: dict[str, Any] = body.get("status") or {}
        written = self._written.get(key)
        if written is not None and written[0] == pool.metadata.uid:
            previous = {**previous, **written[1]}
        status = pool_status(pool, desired, live.get("Deployment"), previous, self._clock())
        if status_changed(previous, status):
            await self._kube.apply_pool_status(namespace, name, status)
            self._written[key] = (pool.metadata.uid or "", status)
            outcome.writes.append("AgentPool/status")
        for event in events(previous, status, created=created, rolled=rolled):
            await self._kube.event(
                pool, type_=event.type, reason=event.reason, message=event.message
            )
            outcome.writes.append(f"Event/{event.reason}")
        if outcome.writes:
            bound.info("reconciled", writes=outcome.writes, config_hash=desired.config_hash)
        return outcome
