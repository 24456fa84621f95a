"""Working memory: a bounded LRU with access counts, checked against a simple model."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_runtime.memory.working import WorkingMemory, WorkingMemoryRegistry

keys = st.sampled_from([f"k{i}" for i in range(12)])
operations = st.lists(
    st.one_of(
        st.tuples(st.just("put"), keys, st.integers()),
        st.tuples(st.just("get"), keys, st.none()),
        st.tuples(st.just("delete"), keys, st.none()),
    ),
    max_size=200,
)


@given(capacity=st.integers(min_value=1, max_value=8), ops=operations)
def test_behaves_like_an_lru_model_and_never_exceeds_capacity(
    capacity: int, ops: list[tuple[str, str, int | None]]
) -> None:
    memory: WorkingMemory[int] = WorkingMemory(capacity)
    model: list[tuple[str, int]] = []  # least recently used first
    counts: dict[str, int] = {}
    for op, key, value in ops:
        held = dict(model)
        if op == "put":
            assert value is not None
            evicted = memory.put(key, value)
            model = [(k, v) for k, v in model if k != key] + [(key, value)]
            if key not in held:
                counts[key] = 0
            expected_evicted = None
            if len(model) > capacity:
                expected_evicted = model.pop(0)[0]
                counts.pop(expected_evicted)
            assert evicted == expected_evicted
        elif op == "get":
            assert memory.get(key) == held.get(key)
            if key in held:
                model = [(k, v) for k, v in model if k != key] + [(key, held[key])]
                counts[key] += 1
        else:
            assert memory.delete(key) == (key in held)
            model = [(k, v) for k, v in model if k != key]
            counts.pop(key, None)
        assert len(memory) <= capacity
        assert memory.keys() == [k for k, _ in model]
        assert {k: memory.access_count(k) for k in memory} == counts


def test_peek_does_not_refresh_recency_or_count() -> None:
    memory: WorkingMemory[str] = WorkingMemory(2)
    memory.put("a", "1")
    memory.put("b", "2")
    assert memory.peek("a") == "1"
    assert memory.access_count("a") == 0
    assert memory.put("c", "3") == "a"


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        WorkingMemory(0)


def test_registry_bounds_conversations_and_drops_a_key_everywhere_in_a_tenant() -> None:
    registry: WorkingMemoryRegistry[int] = WorkingMemoryRegistry(capacity=4, max_conversations=2)
    registry.open("tenant-a", "c1").put("k", 1)
    registry.open("tenant-a", "c2").put("k", 2)
    registry.open("tenant-b", "c1").put("k", 3)  # evicts tenant-a/c1
    assert len(registry) == 2
    assert registry.find("tenant-a", "c1") is None
    assert registry.drop_key("tenant-a", "k") == 1
    found = registry.find("tenant-b", "c1")
    assert found is not None
    assert found.get("k") == 3


def test_registry_scopes_cannot_collide_through_separators() -> None:
    registry: WorkingMemoryRegistry[int] = WorkingMemoryRegistry(capacity=4, max_conversations=8)
    registry.open("a/b", None).put("k", 1)
    assert registry.find("a", "b") is None
    registry.open("a", "b").put("k", 2)
    first = registry.find("a/b", None)
    assert first is not None
    assert first.get("k") == 1


def test_registry_drops_only_matching_entries_everywhere() -> None:
    registry: WorkingMemoryRegistry[int] = WorkingMemoryRegistry(capacity=8, max_conversations=8)
    registry.open("a", "c1").put("even", 2)
    registry.open("a", "c1").put("odd", 3)
    registry.open("b", None).put("even", 4)
    assert registry.drop_matching(lambda value: value % 2 == 0) == 2
    first, second = registry.find("a", "c1"), registry.find("b", None)
    assert first is not None
    assert first.keys() == ["odd"]
    assert second is None  # left empty: released with its tenant's bookkeeping
    assert registry.tenants() == 1


@settings(max_examples=50)
@given(
    st.lists(
        st.tuples(st.sampled_from("abcdefgh"), st.sampled_from(["c1", "c2", None]), st.text()),
        max_size=60,
    ),
    st.integers(1, 6),
)
def test_a_tenants_bookkeeping_goes_with_its_last_entry(
    puts: list[tuple[str, str | None, str]], max_conversations: int
) -> None:
    registry: WorkingMemoryRegistry[int] = WorkingMemoryRegistry(
        capacity=4, max_conversations=max_conversations
    )
    for tenant, conversation, key in puts:
        registry.open(tenant, conversation).put(key, 1)
        assert registry.tenants() <= max_conversations  # evicted scopes take theirs along
    for tenant, _conversation, key in puts:
        registry.drop_key(tenant, key)
    assert registry.tenants() == 0
    assert len(registry) == 0
