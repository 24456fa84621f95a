"""The tool cache: TTL + LRU bounds against a reference model, keys, invalidation,
single-flight."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_runtime.cache import MISSING, ToolCache, TtlLruCache, cache_key
from tests.support.fake_time import FakeTime

keys = st.sampled_from([f"t\x1f{i}" for i in range(6)] + [f"u\x1f{i}" for i in range(3)])
operations = st.lists(
    st.one_of(
        st.tuples(st.just("put"), keys, st.integers(), st.floats(0.1, 5)),
        st.tuples(st.just("get"), keys),
        st.tuples(st.just("wait"), st.floats(0, 3)),
        st.tuples(st.just("drop"), keys),
        st.tuples(st.just("drop_tool"), st.sampled_from(["t", "u"])),
    ),
    max_size=60,
)


@settings(max_examples=300)
@given(size=st.integers(1, 5), ops=operations)
def test_the_cache_behaves_like_an_ordered_dict_with_deadlines(size: int, ops: list[Any]) -> None:
    clock = FakeTime()
    cache = TtlLruCache(size, clock=clock)
    model: OrderedDict[str, tuple[float, int]] = OrderedDict()
    hits = misses = evictions = 0
    for op in ops:
        if op[0] == "put":
            _, key, value, ttl = op
            model[key] = (clock.now + ttl, value)
            model.move_to_end(key)
            while len(model) > size:
                model.popitem(last=False)
                evictions += 1
            cache.put(key, value, ttl)
        elif op[0] == "get":
            key = op[1]
            entry = model.get(key)
            if entry is not None and entry[0] > clock.now:
                model.move_to_end(key)
                hits += 1
                assert cache.get(key) == entry[1]
            else:
                model.pop(key, None)
                misses += 1
                assert cache.get(key) is MISSING
        elif op[0] == "wait":
            clock.now += op[1]
        elif op[0] == "drop":
            assert cache.invalidate(op[1]) == (op[1] in model)
            model.pop(op[1], None)
        else:
            doomed = [k for k in model if k.startswith(op[1] + "\x1f")]
            assert cache.invalidate_tool(op[1]) == len(doomed)
            for k in doomed:
                del model[k]
        assert len(cache) == len(model) <= size
    assert (cache.hits, cache.misses, cache.evictions) == (hits, misses, evictions)


json_objects = st.dictionaries(
    st.text(max_size=4),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=4),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
        ),
        max_leaves=6,
    ),
    max_size=5,
)


@given(arguments=json_objects, data=st.data())
def test_keys_ignore_argument_order(arguments: dict[str, Any], data: st.DataObject) -> None:
    shuffled = dict(data.draw(st.permutations(list(arguments.items()))))
    assert cache_key("tool", "a", shuffled) == cache_key("tool", "a", arguments)
    assert cache_key("other", "a", arguments) != cache_key("tool", "a", arguments)
    assert cache_key("tool", "b", arguments) != cache_key("tool", "a", arguments)


async def test_concurrent_misses_compute_once() -> None:
    cache = ToolCache(10)
    gate = asyncio.Event()
    computed: list[int] = []

    async def compute() -> str:
        computed.append(1)
        await gate.wait()
        return "value"

    waiters = [
        asyncio.create_task(cache.get_or_compute("t", "tenant", {"a": 1}, 60, compute))
        for _ in range(20)
    ]
    await asyncio.sleep(0)  # let every waiter reach the cache
    gate.set()
    results = await asyncio.gather(*waiters)
    assert computed == [1]
    assert {value for value, _ in results} == {"value"}
    assert await cache.get_or_compute("t", "tenant", {"a": 1}, 60, compute) == ("value", True)


async def test_a_cancelled_leader_does_not_fail_the_followers() -> None:
    cache = ToolCache(10)
    gate = asyncio.Event()

    async def compute() -> str:
        await gate.wait()
        return "value"

    leader = asyncio.create_task(cache.get_or_compute("t", "tenant", {}, 60, compute))
    follower = asyncio.create_task(cache.get_or_compute("t", "tenant", {}, 60, compute))
    await asyncio.sleep(0)
    leader.cancel()
    gate.set()
    assert await follower == ("value", False)
    with pytest.raises(asyncio.CancelledError):
        await leader


async def test_failures_reach_every_waiter_and_are_not_cached() -> None:
    cache = ToolCache(10)
    attempts: list[int] = []

    async def compute() -> str:
        attempts.append(1)
        raise RuntimeError("dependency down")

    for _ in range(2):
        with pytest.raises(RuntimeError, match="dependency down"):
            await cache.get_or_compute("t", "tenant", {}, 60, compute)
    assert len(attempts) == 2
    assert cache.stats().size == 0


async def test_invalidation_by_key_and_by_tool() -> None:
    cache = ToolCache(10)

    async def value() -> int:
        return 1

    for args in ({"a": 1}, {"a": 2}):
        await cache.get_or_compute("t", "tenant", args, 60, value)
    await cache.get_or_compute("u", "tenant", {}, 60, value)
    assert await cache.invalidate("t", {"a": 1}, tenant="tenant") == 1
    assert await cache.invalidate("t") == 1
    stats = cache.stats()
    assert (stats.size, stats.misses) == (1, 3)


async def test_a_value_computed_across_an_invalidation_is_not_stored() -> None:
    cache = ToolCache(10)
    gate = asyncio.Event()

    async def compute() -> str:
        await gate.wait()
        return "stale"

    task = asyncio.create_task(cache.get_or_compute("t", "tenant", {}, 60, compute))
    await asyncio.sleep(0)
    await cache.invalidate("t")
    gate.set()
    assert await task == ("stale", False)
    assert cache.stats().size == 0


async def test_entries_expire_after_their_ttl() -> None:
    clock = FakeTime()
    cache = ToolCache(10, clock=clock)

    async def value() -> int:
        return int(clock.now)

    assert await cache.get_or_compute("t", "tenant", {}, 5, value) == (0, False)
    clock.now = 4.9
    assert await cache.get_or_compute("t", "tenant", {}, 5, value) == (0, True)
    clock.now = 5
    assert await cache.get_or_compute("t", "tenant", {}, 5, value) == (5, False)
    assert cache.stats().expirations == 1
