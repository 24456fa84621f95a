"""Redis names: one pool's names never collide with another pool's or another tenant's."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_runtime.config import PoolIdentity
from agent_runtime.config.limits import MEMORY_KEY_MAX_CHARS, TENANT_MAX_CHARS
from agent_runtime.memory.errors import InvalidMemoryError
from agent_runtime.memory.keys import KeySpace, check_key, check_tenant

labels = st.from_regex(r"\A[a-z]([-a-z0-9]{0,10}[a-z0-9])?\Z")
identities = st.builds(PoolIdentity, namespace=labels, name=labels)
tenants = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.:@-]{0,20}\Z")


@given(a=identities, b=identities, tenant_a=tenants, tenant_b=tenants, key=st.text(min_size=1))
def test_names_are_distinct_for_distinct_pools_and_tenants(
    a: PoolIdentity, b: PoolIdentity, tenant_a: str, tenant_b: str, key: str
) -> None:
    keys_a, keys_b = KeySpace("agentpool", a), KeySpace("agentpool", b)
    same = (a, tenant_a) == (b, tenant_b)
    assert (keys_a.long_term(tenant_a, key) == keys_b.long_term(tenant_b, key)) == same
    # No pool's names start inside another pool's space.
    assert not keys_a.root.startswith(keys_b.root + ":")
    for name in (keys_a.breaker_prefix, keys_a.cache_prefix, keys_a.memory_invalidation_channel):
        assert name.startswith(keys_a.root + ":")
        assert name.startswith(keys_b.root + ":") == (a == b)


def test_a_namespace_and_a_name_cannot_be_confused() -> None:
    one = KeySpace("p", PoolIdentity(namespace="ab", name="c"))
    other = KeySpace("p", PoolIdentity(namespace="a", name="bc"))
    assert one.root != other.root


@pytest.mark.parametrize("tenant", ["", "-x", "a/b", "a b", "é", "x" * (TENANT_MAX_CHARS + 1)])
def test_unusable_tenants_are_refused(tenant: str) -> None:
    with pytest.raises(InvalidMemoryError, match="tenant"):
        check_tenant(tenant)


def test_the_longest_tenant_and_key_are_accepted_and_one_more_is_not() -> None:
    assert check_tenant("t" * TENANT_MAX_CHARS)
    assert check_key("k" * MEMORY_KEY_MAX_CHARS)
    with pytest.raises(InvalidMemoryError, match=str(MEMORY_KEY_MAX_CHARS)):
        check_key("k" * (MEMORY_KEY_MAX_CHARS + 1))
