"""The kopf shell: watch streams feed indexes (the reconcile's view of the cluster) and
event handlers that queue the pools a change concerns. Nothing here writes: kopf's event
and index handlers store no progress or diff-base annotation, so a quiet cluster sees no
request from the operator.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from typing import Any

import kopf
import structlog
from pydantic import ValidationError

from agentpool_operator import api
from agentpool_operator.controller.queue import WorkQueue
from agentpool_operator.controller.reconcile import PoolKey, ReconcileError, Reconciler
from agentpool_operator.controller.reviewers import ReviewerBinding
from agentpool_operator.controller.tool_status import ToolReconciler
from agentpool_operator.controller.view import Body
from agentpool_operator.kube import KubeError
from agentpool_operator.metrics import POOLS
from agentpool_operator.render import names
from agentpool_operator.render.references import ObjectVersion
from agentpool_operator.render.tools import names_tool

log = structlog.get_logger(__name__)

CHILD_RESOURCES = (
    ("", "v1", "serviceaccounts", "ServiceAccount"),
    ("", "v1", "configmaps", "ConfigMap"),
    ("apps", "v1", "deployments", "Deployment"),
    ("", "v1", "services", "Service"),
    ("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget"),
    ("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy"),
    ("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler"),
)
CHILD_INDEXES = tuple(f"children_{plural}_idx" for _, _, plural, _ in CHILD_RESOURCES)
OWNED = {names.MANAGED_BY_LABEL: names.MANAGED_BY}


def plain(body: Mapping[str, Any]) -> Body:
    """A copy of a watched object without its managedFields (the largest part of it,
    which the reconcile never reads)."""
    copied: Body = {k: v for k, v in body.items() if k != "metadata"}
    meta = {k: v for k, v in body.get("metadata", {}).items() if k != "managedFields"}
    copied["metadata"] = meta
    return copied


class IndexView:
    """The ClusterView over kopf's indexes (set once the operator has started)."""

    def __init__(self) -> None:
        self.indexes: dict[str, kopf.Index[Any, Any]] = {}

    def _values(self, index: str, key: Any) -> Iterable[Any]:
        found = self.indexes.get(index)
        if found is None or key not in found:
            return ()
        return list(found[key])

    def pool(self, namespace: str | None, name: str) -> Body | None:
        values = list(self._values("pools_idx", (namespace, name)))
        return values[0] if values else None

    def pool_keys(self, namespace: str | None = None) -> list[PoolKey]:
        index = self.indexes.get("pools_idx")
        if index is None:
            return []
        return [key for key in index if namespace is None or key[0] == namespace]

    def pool_count(self) -> int:
        index = self.indexes.get("pools_idx")
        return 0 if index is None else len(index)

    def pools(self, namespace: str) -> list[Body]:
        return [b for key in self.pool_keys(namespace) for b in self._values("pools_idx", key)]

    def tools(self, namespace: str) -> list[Body]:
        return list(self._values("tools_idx", namespace))

    def tool(self, namespace: str, name: str) -> Body | None:
        return next((t for t in self.tools(namespace) if t["metadata"]["name"] == name), None)

    def objects(self, namespace: str) -> Mapping[tuple[str, str], ObjectVersion]:
        found: dict[tuple[str, str], ObjectVersion] = {}
        for index in ("secrets_idx", "configmaps_idx"):
            for kind, name, version, keys in self._values(index, namespace):
                found[(kind, name)] = ObjectVersion(version, keys)
        return found

    def endpoint_slices(self, namespace: str, pool: str) -> list[Body]:
        """The EndpointSlices of the pool's Service (the controller's, which carry the
        Service's labels, and the activator's); watched only with the activator on."""
        return list(self._values("endpointslices_idx", (namespace, pool)))

    def children(self, namespace: str | None, pool: str) -> Mapping[str, Body]:
        found: dict[str, Body] = {}
        for index in CHILD_INDEXES:
            for kind, body in self._values(index, (namespace, pool)):
                found[kind] = body
        return found


class Controller:
    """The queue, the workers and the reconciler of one operator process."""

    def __init__(
        self,
        reconciler: Reconciler,
        view: IndexView,
        workers: int,
        resync_seconds: float = 600.0,
        tools: ToolReconciler | None = None,
        reviewers: ReviewerBinding | None = None,
        loops: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
    ) -> None:
        self.queue: WorkQueue[PoolKey] = WorkQueue()
        self.tool_queue: WorkQueue[PoolKey] = WorkQueue()
        self.view = view
        self.reconciler = reconciler
        self.tools = tools
        self.reviewers = reviewers
        self._workers = workers
        self._tasks: list[asyncio.Task[None]] = []
        self._resync = resync_seconds
        self._loops = tuple(loops)
        self.indexed = asyncio.Event()
        """Set by the first event handler kopf calls: the indexes are populated."""

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._work(), name=f"worker-{i}") for i in range(self._workers)
        ]
        self._tasks.append(asyncio.create_task(self._resync_all(), name="resync"))
        if self.tools is not None:
            self._tasks.append(asyncio.create_task(self._work_tools(), name="tools"))
            self._tasks.append(asyncio.create_task(self.tools.discoverer.run(), name="discovery"))
        if self.reviewers is not None:
            self._tasks.append(asyncio.create_task(self.reviewers.run(), name="token-reviewers"))
        # Started once the indexes exist (this runs in kopf's startup handler).
        self._tasks.extend(asyncio.create_task(self._after_indexing(loop)) for loop in self._loops)

    async def _after_indexing(self, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        # kopf fills every index from its initial listing before it calls any event
        # handler; a loop that read the indexes earlier would see pools without their
        # Secrets or Deployments (a resync would render a "missing" Secret, the autoscaler
        # count no ready replica).
        await self.indexed.wait()
        await loop()

    async def _resync_all(self) -> None:
        await self.indexed.wait()
        # One timer for all pools (not one per object): catches anything a watch missed.
        while True:
            await asyncio.sleep(self._resync)
            for key in self.view.pool_keys():
                self.queue.add(key)
            if self.reviewers is not None:
                self.reviewers.resync()

    async def stop(self) -> None:
        if self.tools is not None:
            await self.tools.discoverer.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _work(self) -> None:
        await _drain(self.queue, self.reconciler.reconcile, "pool")

    async def _work_tools(self) -> None:
        assert self.tools is not None
        await _drain(self.tool_queue, self.tools.reconcile, "tool")

    # ------------------------------------------------------------------ what to queue

    def changed(self, *, pools_or_tools: bool) -> None:
        """Any watched object changed (the indexes hold a full listing by now); a pool or
        tool may change who reviews tokens."""
        if self.reviewers is None:
            return
        if pools_or_tools:
            self.reviewers.touch()
        else:
            self.reviewers.indexes_ready()

    def pools_using_tool(self, namespace: str, tool_body: Mapping[str, Any]) -> list[PoolKey]:
        try:
            tool = api.AgentTool.model_validate(tool_body)
        except ValidationError:
            tool = None
        name = tool_body["metadata"]["name"]
        found = []
        for body in self.view.pools(namespace):
            resolved = {t.get("name") for t in (body.get("status") or {}).get("tools", [])}
            selection = api.ToolSelection.model_validate(
                (body.get("spec") or {}).get("tools") or {}
            )
            if name in resolved or (tool is not None and names_tool(selection, tool)):
                found.append((namespace, body["metadata"]["name"]))
        return found

    def pools_called_by(self, namespace: str, pool_body: Mapping[str, Any]) -> list[PoolKey]:
        try:
            selection = api.ToolSelection.model_validate(
                (pool_body.get("spec") or {}).get("tools") or {}
            )
        except ValidationError:
            return []
        found = []
        for body in self.view.tools(namespace):
            target = ((body.get("spec") or {}).get("agent") or {}).get("poolName")
            if not isinstance(target, str):
                continue
            try:
                tool = api.AgentTool.model_validate(body)
            except ValidationError:
                continue
            if names_tool(selection, tool):
                found.append((namespace, target))
        return found

    def pools_referencing(self, namespace: str, kind: str, name: str) -> list[PoolKey]:
        found = []
        for key in self.view.pool_keys(namespace):
            refs = self.reconciler.references(key)
            if refs is None or (kind, name) in refs:
                found.append(key)
        return found


async def _drain(
    queue: WorkQueue[PoolKey], reconcile: Callable[[PoolKey], Awaitable[object]], what: str
) -> None:
    """Take keys from `queue` for ever; a failure is retried with a backoff, and never
    stops the worker (a bug in one object's reconcile must not stop the others')."""
    while True:
        key = await queue.get()
        name = f"{key[0]}/{key[1]}"
        try:
            await reconcile(key)
            queue.forget(key)
        except asyncio.CancelledError:
            raise
        except (KubeError, ReconcileError) as exc:
            delay = queue.retry(key)
            log.warning("reconcile failed", kind=what, name=name, error=str(exc), retry_in=delay)
        except Exception:
            delay = queue.retry(key)
            log.exception("reconcile crashed", kind=what, name=name, retry_in=delay)
        finally:
            queue.done(key)


def _ns(namespace: str | None) -> str:
    # Every kind watched here is namespaced.
    assert namespace is not None
    return namespace


SliceListener = Callable[[str, str, Mapping[str, Any], bool], None]
"""Told of every change of a pool's EndpointSlices: (namespace, pool, slice, deleted)."""


def register(
    registry: kopf.OperatorRegistry,
    controller: Controller,
    *,
    watch_timeout: int | None = None,
    slices: SliceListener | None = None,
) -> None:
    """Register the indexes and event handlers of the operator on `registry`; with
    `slices` (the activator on), also the pools' EndpointSlices."""
    group, version = api.GROUP, api.VERSION
    if slices is not None:
        _register_slices(registry, controller, slices)

    @kopf.index(group, version, "agentpools", id="pools_idx", registry=registry)
    def pools_idx(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
        return {(_ns(namespace), name): plain(body)}

    @kopf.index(group, version, "agenttools", id="tools_idx", registry=registry)
    def tools_idx(namespace: str | None, body: kopf.Body, **_: Any) -> dict[Any, Any]:
        return {_ns(namespace): plain(body)}

    @kopf.index("", "v1", "secrets", id="secrets_idx", registry=registry)
    def secrets_idx(
        namespace: str | None, name: str, meta: kopf.Meta, body: kopf.Body, **_: Any
    ) -> dict[Any, Any]:
        keys = frozenset((body.get("data") or {}).keys()) | frozenset(
            (body.get("stringData") or {}).keys()
        )
        return {_ns(namespace): ("Secret", name, meta.get("resourceVersion", ""), keys)}

    @kopf.index("", "v1", "configmaps", id="configmaps_idx", registry=registry)
    def configmaps_idx(
        namespace: str | None, name: str, meta: kopf.Meta, body: kopf.Body, **_: Any
    ) -> dict[Any, Any] | None:
        if meta.labels.get(names.MANAGED_BY_LABEL) == names.MANAGED_BY:
            return None  # the operator's own (children_configmaps_idx holds them)
        keys = frozenset((body.get("data") or {}).keys()) | frozenset(
            (body.get("binaryData") or {}).keys()
        )
        return {_ns(namespace): ("ConfigMap", name, meta.get("resourceVersion", ""), keys)}

    for group_, version_, plural, kind in CHILD_RESOURCES:
        _register_child(registry, controller, group_, version_, plural, kind)

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # A registry of our own has none of kopf's default login handlers.
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    async def start(settings: kopf.OperatorSettings, **kwargs: Any) -> None:
        # kopf hands its indexes to operator-level handlers only: keep them for the view.
        controller.view.indexes = {k: v for k, v in kwargs.items() if k.endswith("_idx")}
        settings.posting.enabled = False  # the operator records its own Events
        settings.peering.standalone = True  # one active replica, by our Lease
        if watch_timeout is not None:
            settings.watching.server_timeout = watch_timeout
        controller.start()

    @kopf.on.cleanup(registry=registry)
    async def stop(**_: Any) -> None:
        await controller.stop()

    @kopf.on.event(group, version, "agentpools", registry=registry)
    def pool_changed(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> None:
        controller.indexed.set()
        POOLS.set(controller.view.pool_count())
        controller.queue.add((_ns(namespace), name))
        controller.changed(pools_or_tools=True)
        # The pools it calls let its ServiceAccount in: their auth config follows.
        for key in controller.pools_called_by(_ns(namespace), body):
            controller.queue.add(key)

    @kopf.on.event(group, version, "agenttools", registry=registry)
    def tool_changed(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> None:
        controller.indexed.set()
        controller.tool_queue.add((_ns(namespace), name))
        controller.changed(pools_or_tools=True)
        for key in controller.pools_using_tool(_ns(namespace), body):
            controller.queue.add(key)
        target = ((body.get("spec") or {}).get("agent") or {}).get("poolName")
        if isinstance(target, str):
            controller.queue.add((_ns(namespace), target))

    @kopf.on.event("", "v1", "secrets", registry=registry)
    def secret_changed(namespace: str | None, name: str, **_: Any) -> None:
        controller.indexed.set()
        controller.changed(pools_or_tools=False)
        for key in controller.pools_referencing(_ns(namespace), "Secret", name):
            controller.queue.add(key)

    @kopf.on.event("", "v1", "configmaps", registry=registry)
    def configmap_changed(
        namespace: str | None, name: str, labels: Mapping[str, str], **_: Any
    ) -> None:
        controller.indexed.set()
        controller.changed(pools_or_tools=False)
        if labels.get(names.MANAGED_BY_LABEL) == names.MANAGED_BY:
            return  # a child: children_idx's handler queues its pool
        for key in controller.pools_referencing(_ns(namespace), "ConfigMap", name):
            controller.queue.add(key)


def _register_child(
    registry: kopf.OperatorRegistry,
    controller: Controller,
    group: str,
    version: str,
    plural: str,
    kind: str,
) -> None:
    def child_index(
        namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any
    ) -> dict[Any, Any] | None:
        pool = labels.get(names.POOL_LABEL)
        if pool is None:
            return None
        kept = plain(body)
        if kind != "Deployment":
            kept.pop("status", None)  # only the Deployment's status is read (replica counts)
        return {(_ns(namespace), pool): (kind, kept)}

    def child_changed(namespace: str | None, labels: Mapping[str, str], **_: Any) -> None:
        controller.indexed.set()
        pool = labels.get(names.POOL_LABEL)
        if pool is not None:
            controller.queue.add((_ns(namespace), pool))

    kopf.index(
        group, version, plural, id=f"children_{plural}_idx", labels=OWNED, registry=registry
    )(child_index)
    kopf.on.event(group, version, plural, id=f"{plural}_changed", labels=OWNED, registry=registry)(
        child_changed
    )


def _register_slices(
    registry: kopf.OperatorRegistry, controller: Controller, listener: SliceListener
) -> None:
    """The EndpointSlices of the pools' Services, by pool (the EndpointSlice controller
    copies the Service's labels, the operator's among them, onto its slices)."""

    @kopf.index(
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        id="endpointslices_idx",
        labels=OWNED,
        registry=registry,
    )
    def endpointslices_idx(
        namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any
    ) -> dict[Any, Any] | None:
        pool = labels.get(names.POOL_LABEL)
        if pool is None:
            return None
        return {(_ns(namespace), pool): plain(body)}

    # Async: kopf runs a sync handler in a thread, and the listener wakes waiting requests
    # (asyncio events) in the loop.
    @kopf.on.event(
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        id="endpointslices_changed",
        labels=OWNED,
        registry=registry,
    )
    async def endpointslice_changed(
        namespace: str | None,
        labels: Mapping[str, str],
        body: kopf.Body,
        type: str | None,  # kopf's name for the event's type
        **_: Any,
    ) -> None:
        controller.indexed.set()
        pool = labels.get(names.POOL_LABEL)
        if pool is not None:
            listener(_ns(namespace), pool, body, type == "DELETED")
