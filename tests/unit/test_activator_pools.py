"""The activator's view of the pools over the operator's indexes: which pools it may
wake, whether their Service routes to it now (the slice, then a grace after it goes),
their ready endpoints; a request waiting for a change is woken by the slice watch."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from agentpool_operator.activator.host import PoolAddress
from agentpool_operator.activator.pools import ClusterPools, PoolsUnknownError
from agentpool_operator.activator.slices import Endpoint, activator_slice
from tests.unit.api_strategies import BASE_POOL

POOL = PoolAddress("shop", "support")
OWNER = {"apiVersion": "agentpool.dev/v1alpha1", "kind": "AgentPool", "name": "support"}


def _pool(min_replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "agentpool.dev/v1alpha1",
        "kind": "AgentPool",
        "metadata": {"name": "support", "namespace": "shop", "uid": f"u-{min_replicas}"},
        "spec": {**BASE_POOL, "scaling": {"minReplicas": min_replicas, "maxReplicas": 2}},
    }


class View:
    def __init__(self) -> None:
        self.pools: dict[tuple[str, str], dict[str, Any]] = {}
        self.slices: list[dict[str, Any]] = []

    def pool(self, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self.pools.get((namespace or "", name))

    def endpoint_slices(self, namespace: str, pool: str) -> Sequence[dict[str, Any]]:
        return self.slices


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def _ours() -> dict[str, Any]:
    return activator_slice("shop", "support", OWNER, ["10.1.1.1"], 8081)


def test_an_unknown_pool_has_no_route_and_a_known_one_its_redis() -> None:
    view = View()
    pools = ClusterPools(view, {"shop/support": "redis://r:6379"}.get)
    assert pools.route(POOL) is None
    view.pools[("shop", "support")] = _pool(0)
    route = pools.route(POOL)
    assert route is not None
    assert route.activated
    assert route.redis_url == "redis://r:6379"
    assert not route.routed_here  # no slice
    view.pools[("shop", "support")] = _pool(1)
    found = pools.route(POOL)
    assert found is not None
    assert not found.activated


def test_routed_here_while_the_slice_exists_and_for_the_grace_after() -> None:
    view, clock = View(), Clock()
    view.pools[("shop", "support")] = _pool(0)
    pools = ClusterPools(view, lambda _: None, grace=10, clock=clock)
    slice_ = _ours()
    view.slices = [slice_]
    pools.notify("shop", "support", slice_, deleted=False)
    assert pools.route(POOL).routed_here  # type: ignore[union-attr]

    view.slices = []
    pools.notify("shop", "support", slice_, deleted=True)
    clock.now += 9
    assert pools.route(POOL).routed_here  # type: ignore[union-attr]
    clock.now += 2
    assert not pools.route(POOL).routed_here  # type: ignore[union-attr]


def test_ready_endpoints_come_from_the_controllers_slices() -> None:
    view = View()
    view.pools[("shop", "support")] = _pool(0)
    view.slices = [
        _ours(),
        {
            "metadata": {"name": "support-abc"},
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": ["10.0.0.7"], "conditions": {"ready": True}}],
        },
    ]
    route = ClusterPools(view, lambda _: None).route(POOL)
    assert route is not None
    assert list(route.endpoints) == [Endpoint("10.0.0.7", 8080)]


async def test_a_waiter_is_woken_by_a_slice_change_and_not_before() -> None:
    pools = ClusterPools(View(), lambda _: None)
    waiter = asyncio.create_task(pools.changed(30))
    await asyncio.sleep(0)
    assert not waiter.done()
    pools.notify("shop", "support", {"metadata": {}}, deleted=False)
    await asyncio.wait_for(waiter, timeout=5)


def test_before_the_first_listing_the_pools_are_unknown() -> None:
    view = View()
    view.pools[("shop", "support")] = _pool(0)
    pools = ClusterPools(view, lambda _: None)
    pools.indexed = asyncio.Event()
    with pytest.raises(PoolsUnknownError):
        pools.route(POOL)
    pools.indexed.set()
    assert pools.route(POOL) is not None
