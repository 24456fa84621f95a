"""The activator's EndpointSlice (pure): what kube-proxy and the EndpointSlice
controller read of it, and the ready endpoints of a pool's slices."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from agentpool_operator.activator.slices import (
    ACTIVATOR,
    Endpoint,
    activator_slice,
    is_activator_slice,
    ready_endpoints,
    slice_matches,
)

OWNER = {"apiVersion": "agentpool.dev/v1alpha1", "kind": "AgentPool", "name": "p", "uid": "u"}
ipv4 = st.ip_addresses(v=4).map(str)
names = st.from_regex(r"\A[a-z]([-a-z0-9]{0,30}[a-z0-9])?\Z")


@given(
    pool=names,
    namespace=names,
    addresses=st.lists(ipv4, min_size=1, max_size=3),
    port=st.integers(1, 65535),
)
def test_the_slice_routes_the_services_port_to_the_activator(
    pool: str, namespace: str, addresses: list[str], port: int
) -> None:
    body = activator_slice(namespace, pool, OWNER, addresses, port)
    labels = body["metadata"]["labels"]
    # kube-proxy joins it to the Service's; the EndpointSlice controller leaves it alone.
    assert labels["kubernetes.io/service-name"] == pool
    assert labels["endpointslice.kubernetes.io/managed-by"] == ACTIVATOR
    # The operator's watch of its children's slices sees it (as the controller's ones).
    assert labels["app.kubernetes.io/managed-by"] == "agentpool-operator"
    assert labels["agentpool.dev/pool"] == pool
    assert body["metadata"]["ownerReferences"] == [OWNER]
    assert body["addressType"] == "IPv4"
    assert body["ports"] == [{"name": "http", "port": port, "protocol": "TCP"}]
    assert sorted(a for e in body["endpoints"] for a in e["addresses"]) == sorted(set(addresses))
    assert all(e["conditions"]["ready"] for e in body["endpoints"])
    assert is_activator_slice(body)
    assert slice_matches(body, body)
    assert ready_endpoints([body]) == []  # the activator is never a pod endpoint


def test_an_ipv6_address_makes_an_ipv6_slice() -> None:
    body = activator_slice("ns", "p", OWNER, ["fd00::1", "10.0.0.1"], 8081)
    assert body["addressType"] == "IPv6"
    assert [e["addresses"] for e in body["endpoints"]] == [["fd00::1"]]
    assert Endpoint("fd00::1", 8080).url == "http://[fd00::1]:8080"


def test_a_moved_activator_is_a_different_slice() -> None:
    body = activator_slice("ns", "p", OWNER, ["10.0.0.1"], 8081)
    assert not slice_matches(body, activator_slice("ns", "p", OWNER, ["10.0.0.2"], 8081))
    assert not slice_matches(body, activator_slice("ns", "p", OWNER, ["10.0.0.1"], 8082))


def _controller_slice(*endpoints: dict[str, Any], port: int = 8080) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "p-abcde",
            "labels": {"endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": list(endpoints),
    }


def test_ready_endpoints_are_the_ready_pods_on_the_services_port() -> None:
    pod = {"kind": "Pod", "name": "p-1"}
    slices = [
        _controller_slice(
            {"addresses": ["10.0.0.5"], "conditions": {"ready": True}, "targetRef": pod},
            {"addresses": ["10.0.0.6"], "conditions": {"ready": False}},
            {"addresses": ["10.0.0.7"], "conditions": {}},  # no condition: ready
            {"addresses": [], "conditions": {"ready": True}},
        ),
        activator_slice("ns", "p", OWNER, ["10.9.9.9"], 8081),
    ]
    assert ready_endpoints(slices) == [
        Endpoint("10.0.0.5", 8080, "p-1"),
        Endpoint("10.0.0.7", 8080, None),
    ]


def test_a_slice_being_deleted_or_without_the_port_has_no_ready_endpoint() -> None:
    deleting = _controller_slice({"addresses": ["10.0.0.5"]})
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    other_port = _controller_slice({"addresses": ["10.0.0.5"]})
    other_port["ports"][0]["name"] = "metrics"
    assert ready_endpoints([deleting, other_port]) == []
