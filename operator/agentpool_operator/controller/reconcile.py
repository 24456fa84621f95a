"""One reconcile of one pool: render, apply what differs, delete what is no longer wanted,
write status when it changed, record Events. Level-triggered and idempotent: it reads only
the view (the watch streams' cache) and writes only differences, so a pool with nothing
to change costs no request."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import structlog
from pydantic import ValidationError

from agentpool_operator import api
from agentpool_operator.controller.compare import needs_apply
from agentpool_operator.controller.status import events, pool_status, status_changed
from agentpool_operator.controller.view import Body, ClusterView
from agentpool_operator.kube import KubeApi, KubeError
from agentpool_operator.metrics import RECONCILE_SECONDS, RECONCILES
from agentpool_operator.render import names
from agentpool_operator.render.children import (
    CHILD_KINDS,
    DesiredState,
    desired_state,
    initial_replicas,
)
from agentpool_operator.render.config import Caller, Problem, RenderSettings
from agentpool_operator.render.references import KeyReference, ObjectVersion
from agentpool_operator.render.tools import callers_of

log = structlog.get_logger(__name__)

PoolKey = tuple[str, str]


@dataclass
class Outcome:
    """What one reconcile did (for logs, metrics and tests)."""

    writes: list[str] = field(default_factory=list)


def spec_version(body: Body) -> tuple[str, ...]:
    """What a parse or render of an object depends on: its spec (the generation) and its
    labels and annotations. Not its resourceVersion: that moves with every status write,
    and the reconcile writes status."""
    meta = body.get("metadata", {})
    marks = json.dumps([meta.get("labels"), meta.get("annotations")], sort_keys=True)
    return str(meta.get("uid", "")), str(meta.get("generation", "")), marks


class ParseCache:
    """The parsed model of each pool and tool, one version per object (the latest): a
    namespace's pools and tools are read on every reconcile there, and parsing is the
    costly part of reading them."""

    def __init__(self) -> None:
        self._pools: dict[str, tuple[tuple[str, ...], api.AgentPool | None]] = {}
        self._tools: dict[str, tuple[tuple[str, ...], api.AgentTool | None]] = {}

    def pool(self, body: Body) -> api.AgentPool:
        """The pool (a pool that does not parse is an error of this reconcile)."""
        found = self._one(self._pools, api.AgentPool, body)
        if found is None:
            return api.AgentPool.model_validate(_without_status(body))  # raises, naming why
        result: api.AgentPool = found
        return result

    def pools(self, bodies: list[Body]) -> Iterator[api.AgentPool]:
        """Lazily: most reconciles never look at the other pools."""
        return (p for p in (self._one(self._pools, api.AgentPool, b) for b in bodies) if p)

    def tools(self, bodies: list[Body]) -> list[api.AgentTool]:
        return [t for t in (self._one(self._tools, api.AgentTool, b) for b in bodies) if t]

    def forget(self, uid: str) -> None:
        self._pools.pop(uid, None)
        self._tools.pop(uid, None)

    def _one(self, cache: dict[str, Any], model: Any, body: Body) -> Any:
        version = spec_version(body)
        uid = version[0]
        known = cache.get(uid)
        if known is not None and known[0] == version:
            return known[1]
        try:
            parsed = model.model_validate(_without_status(body))
        except ValidationError as exc:
            # The CRD refuses what the models refuse; an object stored before a schema
            # change can still disagree. Such an object is as good as missing.
            name = body.get("metadata", {}).get("name")
            log.warning("object does not parse", kind=model.__name__, name=name, error=str(exc))
            parsed = None
        cache[uid] = (version, parsed)
        return parsed


def _without_status(body: Body) -> Body:
    # The status is the operator's own output; the model of a pool is its input.
    return {k: v for k, v in body.items() if k != "status"}


@dataclass(frozen=True)
class _RenderInputs:
    """Everything desired_state reads, by version: equal inputs render equal children."""

    pool: tuple[tuple[str, ...], int | None]
    tools: tuple[tuple[str, ...], ...]
    callers: tuple[Caller, ...]
    references: tuple[tuple[str, str, str | None], ...]


def _referenced_versions(
    refs: Iterable[KeyReference], known: Mapping[tuple[str, str], ObjectVersion]
) -> tuple[tuple[str, str, str | None], ...]:
    """Each reference with the version of its object (None: missing)."""
    return tuple(
        (r.kind, r.name, v.resource_version if (v := known.get((r.kind, r.name))) else None)
        for r in refs
    )


class ReconcileError(Exception):
    """Some children could not be applied (the pool's status says which); retry later."""


def _namespace_terminating(exc: KubeError) -> bool:
    return exc.status == 403 and "being terminated" in exc.message


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
        self._parsed = ParseCache()
        self._uids: dict[PoolKey, str] = {}
        # Most reconciles come from a child's status changing: the pool, its tools and its
        # references are as before, and so is the render (the costly part of a reconcile).
        self._rendered: dict[PoolKey, tuple[_RenderInputs, DesiredState]] = {}
        self._written: dict[PoolKey, tuple[str, dict[str, Any]]] = {}
        """The last status written per pool, with the pool's uid: the watch stream shows
        it a moment later, and a reconcile in between must not judge from the older one."""

    @property
    def parsed(self) -> ParseCache:
        """The parsed pools and tools, shared with the token-reviewer binding."""
        return self._parsed

    def references(self, key: PoolKey) -> frozenset[tuple[str, str]] | None:
        """Secrets and ConfigMaps (kind, name) the pool referenced when last rendered;
        None when it was never rendered."""
        rendered = self._rendered.get(key)
        if rendered is None:
            return None
        return frozenset((r.kind, r.name) for r in rendered[1].references)

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

    def _desired(self, key: PoolKey, pool: api.AgentPool, body: Body) -> DesiredState:
        namespace, name = key
        tool_bodies = self._view.tools(namespace)
        tools = self._parsed.tools(tool_bodies)
        callers = callers_of(name, lambda: self._parsed.pools(self._view.pools(namespace)), tools)
        known = self._view.objects(namespace)
        previous = self._rendered.get(key)
        refs = previous[1].references if previous is not None else ()
        inputs = _RenderInputs(
            pool=(spec_version(body), pool.spec.replicas),
            tools=tuple(sorted(spec_version(b) for b in tool_bodies)),
            callers=callers,
            references=_referenced_versions(refs, known),
        )
        if previous is not None and previous[0] == inputs:
            return previous[1]
        desired = desired_state(pool, tools, known, self._settings, callers)
        # Key the entry on the references this render found (the next lookup checks them).
        inputs = _RenderInputs(
            pool=inputs.pool,
            tools=inputs.tools,
            callers=inputs.callers,
            references=_referenced_versions(desired.references, known),
        )
        self._rendered[key] = (inputs, desired)
        return desired

    async def _reconcile(self, key: PoolKey) -> Outcome:
        namespace, name = key
        body = self._view.pool(namespace, name)
        outcome = Outcome()
        if body is None or body.get("metadata", {}).get("deletionTimestamp"):
            self._written.pop(key, None)
            self._rendered.pop(key, None)
            uid = self._uids.pop(key, None)
            if uid is not None:
                self._parsed.forget(uid)
            return outcome  # the garbage collector removes the children
        pool = self._parsed.pool(body)
        self._uids[key] = pool.metadata.uid or ""
        bound = log.bind(pool=f"{namespace}/{name}")
        live = dict(self._view.children(namespace, name))
        deployment = live.get("Deployment")
        if pool.spec.replicas is None:
            current = deployment.get("spec", {}).get("replicas") if deployment else None
            replicas = initial_replicas(pool, current if isinstance(current, int) else None)
            # The body's version, not the parsed model's (that one may predate a status).
            version = str(body["metadata"]["resourceVersion"])
            if await self._kube.init_replicas(namespace, name, version, replicas):
                outcome.writes.append("AgentPool/replicas")
                pool = pool.model_copy(
                    update={"spec": pool.spec.model_copy(update={"replicas": replicas})}
                )
            else:
                return outcome  # the pool changed meanwhile: its event queues it again
        desired = self._desired(key, pool, body)
        created: list[str] = []
        failures: list[Problem] = []
        rolled = False
        for child in desired.children:
            kind = child["kind"]
            current = live.get(kind)
            if not needs_apply(child, current):
                continue
            if kind == "Deployment" and current is not None:
                old = current["spec"]["template"]["metadata"].get("annotations", {})
                rolled = old.get(names.CONFIG_HASH_ANNOTATION) != desired.config_hash
            try:
                applied = await self._kube.apply(child)
            except KubeError as exc:
                if _namespace_terminating(exc):
                    return outcome  # the pool goes with its namespace
                # The pool says why in its status and an Event; the worker retries it
                # with a backoff. The other children are still applied.
                failures.append(
                    Problem("ApplyFailed", f"{kind} {child['metadata']['name']}: {exc}")
                )
                continue
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
        if failures:
            desired = replace(desired, problems=(*failures, *desired.problems))
        status = pool_status(pool, desired, live.get("Deployment"), previous, self._clock())
        if status_changed(previous, status):
            await self._kube.apply_pool_status(namespace, name, status)
            self._written[key] = (pool.metadata.uid or "", status)
            outcome.writes.append("AgentPool/status")
        for event in events(previous, status, created=created, rolled=rolled):
            try:
                await self._kube.event(
                    pool, type_=event.type, reason=event.reason, message=event.message
                )
            except KubeError as exc:  # an Event is a courtesy: never a reason to retry
                bound.info("event not recorded", reason=event.reason, error=str(exc))
                continue
            outcome.writes.append(f"Event/{event.reason}")
        if outcome.writes:
            bound.info("reconciled", writes=outcome.writes, config_hash=desired.config_hash)
        if failures:
            raise ReconcileError("; ".join(f.message for f in failures))
        return outcome
