"""The vector index: approximate search agrees with exact search; deletes are consistent."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from agent_runtime.config.memory import IndexSettings
from agent_runtime.memory.vector_index import VectorIndex


def unit_rows(count: int, dims: int, seed: int) -> NDArray[np.float32]:
    rows = np.random.default_rng(seed).standard_normal((count, dims)).astype(np.float32)
    normalised: NDArray[np.float32] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return normalised


def test_each_vector_finds_itself_first() -> None:
    index = VectorIndex(16, IndexSettings(dtype="f32"))
    rows = unit_rows(200, 16, 1)
    index.add(list(range(200)), rows)
    for i in (0, 57, 199):
        assert index.search(rows[i], 1)[0][0] == i
        found_id, score = index.exact_search(rows[i], 1)[0]
        assert found_id == i
        assert abs(score - 1.0) < 1e-5


@settings(max_examples=30, deadline=None)
@given(
    count=st.integers(1, 60),
    removed=st.sets(st.integers(0, 59), max_size=30),
    seed=st.integers(0, 1000),
)
def test_exact_search_matches_brute_force_after_removals(
    count: int, removed: set[int], seed: int
) -> None:
    rows = unit_rows(count, 8, seed)
    index = VectorIndex(8)
    index.add(list(range(count)), rows)
    index.remove(sorted(removed))
    kept = [i for i in range(count) if i not in removed]
    assert len(index) == len(kept)
    query = unit_rows(1, 8, seed + 1)[0]
    expected = sorted(kept, key=lambda i: -float(rows[i] @ query))[:5]
    found = [i for i, _ in index.exact_search(query, 5)]
    assert np.allclose([rows[i] @ query for i in found], [rows[i] @ query for i in expected])
    assert set(i for i, _ in index.search(query, 5)) <= set(kept)


def test_re_adding_an_id_replaces_its_vector() -> None:
    index = VectorIndex(8, IndexSettings(dtype="f32"))
    rows = unit_rows(2, 8, 3)
    index.add([7], rows[:1])
    index.add([7], rows[1:])
    assert len(index) == 1
    assert index.exact_search(rows[1], 1)[0][0] == 7
    assert abs(index.search(rows[1], 1)[0][1] - 1.0) < 1e-4


def test_empty_index_returns_nothing() -> None:
    index = VectorIndex(8)
    assert index.search(np.ones(8, dtype=np.float32), 3) == []
    assert index.exact_search(np.ones(8, dtype=np.float32), 3) == []
