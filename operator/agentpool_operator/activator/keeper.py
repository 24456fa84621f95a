"""Keeps each pool's activator EndpointSlice: present while a pool that may scale to zero
has no ready endpoint, gone as soon as it has one (`slices.py` says why a slice of our
own routes the pool's Service here without touching the Service).

The decision is pure (`plan`); the loop runs on the leader, reads the operator's
indexes, and acts on every change of a pool's slices and at least every second (a pool's
scaling settings change through the pool, which the next pass sees).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from agentpool_operator import api
from agentpool_operator.activator.pools import may_scale_to_zero
from agentpool_operator.activator.slices import (
    API_VERSION,
    activator_slice,
    is_activator_slice,
    ready_endpoints,
    slice_matches,
    slice_name,
)
from agentpool_operator.controller.reconcile import ParseCache
from agentpool_operator.kube import KubeApi, KubeError
from agentpool_operator.render import names

log = structlog.get_logger(__name__)

Body = dict[str, Any]


@dataclass(frozen=True)
class SliceAction:
    """What to do with one pool's activator slice."""

    apply: Body | None = None
    """The slice to create or correct."""
    delete: tuple[tuple[str, str], ...] = field(default=())
    """Activator slices to delete, as (name, uid)."""


def plan(
    pool: api.AgentPool,
    service_exists: bool,
    slices: Sequence[Mapping[str, Any]],
    addresses: Sequence[str],
    port: int,
) -> SliceAction:
    """The pool's activator slice: wanted while the pool may scale to zero, its Service
    exists and no pod endpoint of it is ready."""
    namespace = pool.metadata.namespace
    assert namespace is not None
    ours = [s for s in slices if is_activator_slice(s)]
    wanted = None
    if may_scale_to_zero(pool) and service_exists and not ready_endpoints(slices):
        wanted = activator_slice(
            namespace, pool.metadata.name, names.owner_reference(pool), addresses, port
        )
    name = slice_name(pool.metadata.name)
    stale = tuple(
        (s["metadata"]["name"], s["metadata"]["uid"])
        for s in ours
        if wanted is None or s["metadata"]["name"] != name
    )
    current = next((s for s in ours if s["metadata"]["name"] == name), None)
    if wanted is not None and (current is None or not slice_matches(current, wanted)):
        return SliceAction(apply=wanted, delete=stale)
    return SliceAction(delete=stale)


class KeeperView(Protocol):
    def pool_keys(self, namespace: str | None = None) -> list[tuple[str, str]]: ...

    def pool(self, namespace: str | None, name: str) -> Body | None: ...

    def children(self, namespace: str | None, pool: str) -> Mapping[str, Body]: ...

    def endpoint_slices(self, namespace: str, pool: str) -> Sequence[Body]: ...


class Changes(Protocol):
    async def changed(self, within: float) -> None: ...


class SliceKeeper:
    def __init__(
        self,
        view: KeeperView,
        kube: KubeApi,
        changes: Changes,
        addresses: Sequence[str],
        port: int,
        *,
        interval: float = 1.0,
    ) -> None:
        self._view = view
        self._kube = kube
        self._changes = changes
        self._addresses = tuple(addresses)
        self._port = port
        self._interval = interval
        self._parsed = ParseCache()

    async def run(self) -> None:
        while True:
            try:
                await self.sync()
            except Exception:
                log.exception("activator slices not kept")
            await self._changes.changed(self._interval)

    async def sync(self) -> None:
        """One pass over every pool."""
        actions = []
        for namespace, name in self._view.pool_keys():
            body = self._view.pool(namespace, name)
            if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
                continue
            pool = next(iter(self._parsed.pools([body])), None)
            if pool is None:
                continue
            service = "Service" in self._view.children(namespace, name)
            slices = self._view.endpoint_slices(namespace, name)
            action = plan(pool, service, slices, self._addresses, self._port)
            if action.apply is not None or action.delete:
                actions.append(self._act(namespace, name, action))
        for result in await asyncio.gather(*actions, return_exceptions=True):
            if isinstance(result, KubeError):
                log.warning("activator slice not written", error=str(result))
            elif isinstance(result, BaseException):
                log.error("activator slice not written", error=repr(result))

    async def _act(self, namespace: str, pool: str, action: SliceAction) -> None:
        for name, uid in action.delete:
            await self._kube.delete(API_VERSION, "EndpointSlice", namespace, name, uid)
            log.info("pool ready: its Service no longer routes to the activator", pool=pool)
        if action.apply is not None:
            await self._kube.apply(action.apply)
            log.info(
                "pool has no ready endpoint: its Service routes to the activator",
                pool=f"{namespace}/{pool}",
            )
