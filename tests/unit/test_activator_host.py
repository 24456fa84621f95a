"""The activator's Host parsing: every Service name form of a pool names that pool; a bare
name, an address or a malformed name is refused with a message that says why."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentpool_operator.activator.host import HostError, PoolAddress, pool_from_host

labels = st.from_regex(r"\A[a-z]([-a-z0-9]{0,20}[a-z0-9])?\Z")
ports = st.integers(min_value=1, max_value=65535)


@given(
    pool=labels,
    namespace=labels,
    suffix=st.sampled_from(["", ".svc", ".svc.cluster.local", ".svc.corp.example"]),
    port=st.none() | ports,
    upper=st.booleans(),
)
def test_every_service_name_form_names_the_pool(
    pool: str, namespace: str, suffix: str, port: int | None, upper: bool
) -> None:
    host = f"{pool}.{namespace}{suffix}" + (f":{port}" if port is not None else "")
    assert pool_from_host(host.upper() if upper else host) == PoolAddress(namespace, pool)


@given(pool=labels, port=st.none() | ports)
def test_a_bare_name_is_refused_for_naming_no_namespace(pool: str, port: int | None) -> None:
    host = pool + (f":{port}" if port is not None else "")
    with pytest.raises(HostError, match="names no namespace"):
        pool_from_host(host)


@given(st.tuples(*(st.integers(0, 255) for _ in range(4))), st.none() | ports)
def test_an_ip_address_is_refused(octets: tuple[int, ...], port: int | None) -> None:
    host = ".".join(map(str, octets)) + (f":{port}" if port is not None else "")
    with pytest.raises(HostError):
        pool_from_host(host)


@pytest.mark.parametrize(
    ("host", "why"),
    [
        (None, "no Host header"),
        ("", "no Host header"),
        ("[::1]:8080", "an address"),
        ("support.shop:http", "invalid port"),
        ("support.shop.example.com", "not a Service name"),
        ("Support_1.shop", "not a valid DNS name"),
        ("-support.shop", "not a valid DNS name"),
        ("support..svc", "not a valid DNS name"),
    ],
)
def test_malformed_hosts_are_refused_saying_why(host: str | None, why: str) -> None:
    with pytest.raises(HostError, match=why):
        pool_from_host(host)
