"""What the activator knows of each pool: whether it may wake it, where its Redis is,
whether the pool's Service routes to the activator now, and the pool's ready endpoints.

`ClusterPools` reads the operator's own indexes (the pools and their EndpointSlices,
filled by kopf's watches): nothing here calls the API server, and a request waiting for
a pool to wake is woken by the EndpointSlice watch (`notify`), not by polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from agentpool_operator import api
from agentpool_operator.activator.host import PoolAddress
from agentpool_operator.activator.slices import Endpoint, is_activator_slice, ready_endpoints
from agentpool_operator.controller.reconcile import ParseCache

Body = dict[str, Any]

SLICE_GRACE_SECONDS = 10.0
"""How long after its activator slice is deleted a pool is still served: a client whose
proxy has not yet caught up with the deletion still gets an answer."""


@dataclass(frozen=True)
class PoolRoute:
    """One pool, as the activator sees it now."""

    activated: bool
    """The pool may scale to zero and the activator wakes it (mode Operator, minReplicas 0)."""
    routed_here: bool
    """Its Service routes to the activator: its activator slice exists, or was deleted
    less than SLICE_GRACE_SECONDS ago."""
    redis_url: str | None
    """Where its wake requests go (None: the pool has no Redis; nothing can wake it)."""
    endpoints: Sequence[Endpoint]
    """Its ready pod endpoints."""


class PoolsUnknownError(Exception):
    """The operator has not listed the pools yet (a leader that just started)."""


class Pools(Protocol):
    def route(self, pool: PoolAddress) -> PoolRoute | None:
        """The pool's route; None when no such pool exists; PoolsUnknownError before the
        pools are known."""

    async def changed(self, within: float) -> None:
        """Return at the next change of any pool's slices, or after `within` seconds."""


class SliceView(Protocol):
    """The operator's indexes, as far as the activator reads them."""

    def pool(self, namespace: str | None, name: str) -> Body | None: ...

    def endpoint_slices(self, namespace: str, pool: str) -> Sequence[Body]: ...


def may_scale_to_zero(pool: api.AgentPool) -> bool:
    """Whether the operator's autoscaler may take the pool to no replica."""
    scaling = pool.spec.scaling
    return scaling.mode == "Operator" and scaling.min_replicas == 0


class ClusterPools:
    """`Pools` over the operator's indexes; `notify` is called by the slice watch."""

    def __init__(
        self,
        view: SliceView,
        redis_url: Callable[[str], str | None],
        *,
        grace: float = SLICE_GRACE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._view = view
        self._redis_url = redis_url
        self._grace = grace
        self._clock = clock
        self._parsed = ParseCache()
        self._gone_at: dict[tuple[str, str], float] = {}
        self._changed = asyncio.Event()
        self.indexed: asyncio.Event | None = None
        """Set once the operator's indexes hold their first listing (None: from the start)."""

    def notify(self, namespace: str, pool: str, body: Mapping[str, Any], deleted: bool) -> None:
        """A slice of the pool changed (call in the event loop)."""
        if is_activator_slice(body):
            if deleted or (body.get("metadata") or {}).get("deletionTimestamp"):
                self._gone_at[(namespace, pool)] = self._clock()
            else:
                self._gone_at.pop((namespace, pool), None)
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self, within: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout=max(0.0, within))

    def route(self, pool: PoolAddress) -> PoolRoute | None:
        if self.indexed is not None and not self.indexed.is_set():
            raise PoolsUnknownError
        body = self._view.pool(pool.namespace, pool.name)
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            return None
        parsed = next(iter(self._parsed.pools([body])), None)
        slices = self._view.endpoint_slices(pool.namespace, pool.name)
        present = any(
            is_activator_slice(s) and not (s.get("metadata") or {}).get("deletionTimestamp")
            for s in slices
        )
        gone_at = self._gone_at.get((pool.namespace, pool.name))
        recent = gone_at is not None and self._clock() - gone_at < self._grace
        return PoolRoute(
            activated=parsed is not None and may_scale_to_zero(parsed),
            routed_here=present or recent,
            redis_url=self._redis_url(str(pool)),
            endpoints=ready_endpoints(slices),
        )
