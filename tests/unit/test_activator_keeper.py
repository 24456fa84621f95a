"""The activator slice keeper's decision (pure): a slice exactly while a pool that may
scale to zero has its Service and no ready pod endpoint; corrected when the activator
moves; deleted as soon as a pod is ready."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from agentpool_operator import api
from agentpool_operator.activator.keeper import plan
from agentpool_operator.activator.slices import activator_slice, slice_name
from agentpool_operator.render import names
from tests.unit.api_strategies import BASE_POOL

ADDRESS, PORT = "10.1.2.3", 8081


def _pool(min_replicas: int, mode: str = "Operator") -> api.AgentPool:
    scaling: dict[str, Any] = {"mode": mode, "minReplicas": min_replicas, "maxReplicas": 3}
    if mode == "None":
        scaling = {"mode": "None"}
    return api.AgentPool.model_validate(
        {
            "metadata": {"name": "support", "namespace": "shop", "uid": "u-1"},
            "spec": {**BASE_POOL, "scaling": scaling},
        }
    )


def _pod_slice(ready: bool) -> dict[str, Any]:
    return {
        "metadata": {"name": "support-x1", "uid": "s-1", "labels": {}},
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["10.0.0.9"], "conditions": {"ready": ready}}],
    }


def _ours(pool: api.AgentPool, address: str = ADDRESS, port: int = PORT) -> dict[str, Any]:
    body = activator_slice("shop", "support", names.owner_reference(pool), [address], port)
    body["metadata"]["uid"] = "a-1"
    return body


@given(
    min_replicas=st.integers(0, 2),
    mode=st.sampled_from(["Operator", "HPA", "None"]),
    service=st.booleans(),
    pods=st.sampled_from(["none", "unready", "ready"]),
    present=st.booleans(),
)
def test_a_slice_exactly_while_a_pool_that_may_scale_to_zero_has_no_ready_pod(
    min_replicas: int, mode: str, service: bool, pods: str, present: bool
) -> None:
    if mode == "HPA":
        min_replicas = max(1, min_replicas)
    pool = _pool(min_replicas, mode)
    slices = [] if pods == "none" else [_pod_slice(pods == "ready")]
    if present:
        slices.append(_ours(pool))
    action = plan(pool, service, slices, [ADDRESS], PORT)
    wanted = mode == "Operator" and min_replicas == 0 and service and pods != "ready"
    has_after = action.apply is not None or (present and not action.delete)
    assert has_after == wanted
    if wanted and present:
        assert action == type(action)()  # already right: no write at all
    if not wanted and present:
        assert action.delete == ((slice_name("support"), "a-1"),)


def test_a_moved_activator_gets_its_slice_corrected() -> None:
    pool = _pool(0)
    action = plan(pool, True, [_ours(pool, address="10.9.9.9")], [ADDRESS], PORT)
    assert action.apply is not None
    assert action.apply["endpoints"] == [{"addresses": [ADDRESS], "conditions": {"ready": True}}]
    assert action.delete == ()  # the same object, applied over


def test_the_slice_is_owned_by_the_pool() -> None:
    pool = _pool(0)
    action = plan(pool, True, [], [ADDRESS], PORT)
    assert action.apply is not None
    [owner] = action.apply["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("AgentPool", "support", "u-1")
