"""A per-tenant vector index: usearch HNSW for serving, exact numpy for measuring.

The exact side keeps a dense matrix (rows swapped on delete) so recall of the
approximate index can be measured against the truth in the same process.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from usearch.index import Index

from agent_runtime.config.memory import IndexSettings

Hits = list[tuple[int, float]]


class VectorIndex:
    """Cosine-similarity search over unit vectors keyed by non-negative int ids."""

    def __init__(self, dimensions: int, settings: IndexSettings | None = None) -> None:
        tuning = settings or IndexSettings()
        self.dimensions = dimensions
        self._ann = Index(
            ndim=dimensions,
            metric="cos",
            dtype=tuning.dtype,
            connectivity=tuning.connectivity,
            expansion_add=tuning.expansion_add,
            expansion_search=tuning.expansion_search,
        )
        self._matrix = np.zeros((0, dimensions), dtype=np.float32)
        self._ids = np.zeros(0, dtype=np.uint64)
        self._rows: dict[int, int] = {}
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __contains__(self, episode_id: object) -> bool:
        return episode_id in self._rows

    def add(self, ids: NDArray[np.uint64] | list[int], vectors: NDArray[np.float32]) -> None:
        """Insert or replace vectors (one row per id)."""
        keys = np.asarray(ids, dtype=np.uint64)
        rows = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(keys), self.dimensions)
        present = [int(k) for k in keys if int(k) in self._rows]
        if present:
            self.remove(present)
        self._ann.add(keys, rows)
        self._reserve(self._size + len(keys))
        self._matrix[self._size : self._size + len(keys)] = rows
        self._ids[self._size : self._size + len(keys)] = keys
        for offset, key in enumerate(keys):
            self._rows[int(key)] = self._size + offset
        self._size += len(keys)

    def _reserve(self, size: int) -> None:
        if size <= len(self._matrix):
            return
        capacity = max(size, 2 * len(self._matrix), 64)
        matrix = np.zeros((capacity, self.dimensions), dtype=np.float32)
        matrix[: self._size] = self._matrix[: self._size]
        ids = np.zeros(capacity, dtype=np.uint64)
        ids[: self._size] = self._ids[: self._size]
        self._matrix, self._ids = matrix, ids

    def remove(self, ids: list[int]) -> None:
        """Drop vectors by id (unknown ids are ignored)."""
        for key in ids:
            row = self._rows.pop(int(key), None)
            if row is None:
                continue
            self._ann.remove(int(key))
            last = self._size - 1
            if row != last:
                moved = int(self._ids[last])
                self._matrix[row] = self._matrix[last]
                self._ids[row] = moved
                self._rows[moved] = row
            self._size = last

    def search(self, query: NDArray[np.float32], k: int) -> Hits:
        """The approximate `k` nearest ids with cosine similarity, best first."""
        if self._size == 0 or k <= 0:
            return []
        # One query is too small to gain from usearch's thread pool.
        found = self._ann.search(np.asarray(query, dtype=np.float32), min(k, self._size), threads=1)
        return [
            (int(key), 1.0 - float(dist))
            for key, dist in zip(found.keys, found.distances, strict=True)
        ]

    def exact_search(self, query: NDArray[np.float32], k: int) -> Hits:
        """The exact `k` nearest ids by brute force (the baseline for recall)."""
        if self._size == 0 or k <= 0:
            return []
        k = min(k, self._size)
        scores = self._matrix[: self._size] @ np.asarray(query, dtype=np.float32)
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [(int(self._ids[i]), float(scores[i])) for i in top]
