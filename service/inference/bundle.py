"""A model bundle on disk (``onnx_models/<name>/``) and the ONNX Runtime that runs it.

Only onnxruntime, tokenizers and numpy are needed here, so serving never pulls
in torch. The bundle's ``config.json`` says everything needed to turn a ticket
into model inputs and the outputs back into labels and calibrated probabilities.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

__all__ = [
    "BundleError",
    "ModelBundle",
    "RuntimeOutput",
    "TriageRuntime",
    "bundle_record",
    "create_session",
    "length_batches",
    "pad_id_of",
    "pad_token_ids",
    "softmax",
]

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"
VARIANTS = ("fp32", "int8")
PROVIDERS = ("auto", "cpu", "cuda")


class BundleError(ValueError):
    """A bundle folder is missing a file or holds something inconsistent."""


def bundle_record(directory: Path, name: str) -> dict[str, Any]:
    """A JSON file that training writes beside the model (``metrics.json``,
    ``data_statistics.json``); empty when the bundle has none (an older or hand-made one)."""
    path = Path(directory) / name
    if not path.is_file():
        return {}
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature``."""
    scaled = logits / temperature
    scaled = scaled - scaled.max(axis=-1, keepdims=True)
    exponent = np.exp(scaled)
    return np.asarray(exponent / exponent.sum(axis=-1, keepdims=True))


def pad_token_ids(
    rows: Sequence[Sequence[int] | np.ndarray], pad_id: int
) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad token id rows into ``input_ids`` and ``attention_mask``, both (B, T) int64."""
    length = max(len(row) for row in rows)
    input_ids = np.full((len(rows), length), pad_id, dtype=np.int64)
    attention_mask = np.zeros((len(rows), length), dtype=np.int64)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = row
        attention_mask[i, : len(row)] = 1
    return input_ids, attention_mask


@dataclass(frozen=True)
class ModelBundle:
    """What ``config.json`` of a bundle declares; see ``training.export.write_bundle``."""

    directory: Path
    name: str
    version: str
    heads: dict[str, list[str]]
    temperatures: dict[str, float]
    max_length: int
    text_prefix: str
    embedding_dim: int
    model_files: dict[str, str]
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def load(cls, directory: Path | str) -> ModelBundle:
        directory = Path(directory)
        config_path = directory / CONFIG_FILE
        if not config_path.is_file():
            raise BundleError(
                f"{directory}: expected a model bundle with {CONFIG_FILE}, found "
                f"{'no such folder' if not directory.is_dir() else 'none'}; "
                "train one with `make train` or point at an existing onnx_models/<name>"
            )
        try:
            raw = json.loads(config_path.read_text(encoding="utf-8"))
            bundle = cls(
                directory=directory,
                name=str(raw["name"]),
                version=str(raw["version"]),
                heads={str(k): [str(v) for v in values] for k, values in raw["heads"].items()},
                temperatures={str(k): float(v) for k, v in raw["temperatures"].items()},
                max_length=int(raw["max_length"]),
                text_prefix=str(raw["text_prefix"]),
                embedding_dim=int(raw["embedding_dim"]),
                model_files={str(k): str(v) for k, v in raw["model_files"].items()},
                raw=raw,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BundleError(f"{config_path}: malformed bundle config ({exc!r})") from exc
        bundle.check()
        return bundle

    @property
    def retrieval_encoder(self) -> dict[str, Any] | None:
        """The untouched base encoder for similar-ticket search, when the bundle has one:
        ``file``, ``base_model``, ``digest`` (of the base weights) and ``dimension``."""
        entry = self.raw.get("retrieval_encoder")
        return dict(entry) if isinstance(entry, dict) else None

    def check(self) -> None:
        retrieval = self.retrieval_encoder
        if retrieval is not None and not {"file", "digest", "dimension"} <= set(retrieval):
            raise BundleError(
                f"{self.directory}: retrieval_encoder needs file, digest and dimension; "
                f"found {sorted(retrieval)}"
            )
        extra = [retrieval["file"]] if retrieval else []
        missing = [
            f
            for f in (TOKENIZER_FILE, *self.model_files.values(), *extra)
            if not (self.directory / f).is_file()
        ]
        if missing:
            raise BundleError(f"{self.directory}: bundle files missing: {missing}")
        if set(self.temperatures) != set(self.heads):
            raise BundleError(
                f"{self.directory}: expected a temperature per head {sorted(self.heads)}, "
                f"found {sorted(self.temperatures)}"
            )
        if any(t <= 0 for t in self.temperatures.values()):
            raise BundleError(
                f"{self.directory}: temperatures must be positive: {self.temperatures}"
            )

    def model_path(self, variant: str = "fp32") -> Path:
        if variant not in self.model_files:
            raise BundleError(
                f"{self.directory}: expected variant one of {sorted(self.model_files)}, "
                f"found {variant!r}"
            )
        return self.directory / self.model_files[variant]

    def tokenizer(self) -> Tokenizer:
        tokenizer = Tokenizer.from_file(str(self.directory / TOKENIZER_FILE))
        tokenizer.enable_truncation(self.max_length)
        tokenizer.no_padding()
        return tokenizer


@dataclass
class RuntimeOutput:
    """Per-head raw logits (N, C), embeddings (N, D), and which inputs were cut at max length."""

    logits: dict[str, np.ndarray]
    embeddings: np.ndarray
    truncated: np.ndarray


def choose_providers(provider: str) -> tuple[list[str], str]:
    """Execution providers for a requested ``auto|cpu|cuda`` and the reason for the choice."""
    if provider not in PROVIDERS:
        raise BundleError(f"execution provider: expected one of {PROVIDERS}, found {provider!r}")
    available = ort.get_available_providers()
    has_cuda = "CUDAExecutionProvider" in available
    if provider == "cpu":
        return ["CPUExecutionProvider"], "CPU requested"
    if has_cuda:
        return [
            "CUDAExecutionProvider",
            "CPUExecutionProvider",
        ], f"{provider} requested, CUDA present"
    reason = (
        "CUDA requested but onnxruntime has no CUDA provider (install onnxruntime-gpu)"
        if provider == "cuda"
        else "no CUDA provider available"
    )
    return ["CPUExecutionProvider"], reason


#: ONNX Runtime's graph optimisation levels by name; the service runs ``all``.
OPTIMISATION_LEVELS = {
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
}


def create_session(
    path: Path, provider: str = "auto", threads: int | None = None, optimisation: str = "all"
) -> tuple[ort.InferenceSession, str]:
    """An ONNX Runtime session (every graph optimisation unless ``optimisation`` names a
    lower level), and why its provider was chosen."""
    options = ort.SessionOptions()
    options.graph_optimization_level = OPTIMISATION_LEVELS[optimisation]
    if threads:
        options.intra_op_num_threads = threads
    providers, reason = choose_providers(provider)
    return ort.InferenceSession(str(path), options, providers=providers), reason


def length_batches(ids: Sequence[Sequence[int]], batch_size: int) -> Iterator[np.ndarray]:
    """Positions of ``ids`` in batches of similar length, so that little padding is run."""
    order = np.argsort([len(row) for row in ids], kind="stable")
    for start in range(0, len(ids), batch_size):
        yield order[start : start + batch_size]


def pad_id_of(tokenizer: Tokenizer) -> int:
    pad_id = tokenizer.token_to_id("<pad>")
    return 0 if pad_id is None else pad_id


class TriageRuntime:
    """An ONNX Runtime session over a bundle: texts in, logits and embeddings out."""

    def __init__(
        self,
        bundle: ModelBundle,
        variant: str = "fp32",
        provider: str = "auto",
        threads: int | None = None,
    ) -> None:
        self.bundle = bundle
        self.variant = variant
        self.tokenizer = bundle.tokenizer()
        self.pad_id = pad_id_of(self.tokenizer)
        self.session, reason = create_session(bundle.model_path(variant), provider, threads)
        self.provider = self.session.get_providers()[0]
        self.output_names = [o.name for o in self.session.get_outputs()]
        logger.info(
            "model %s %s (%s) on %s: %s",
            bundle.name,
            bundle.version,
            variant,
            self.provider,
            reason,
        )

    def encode(self, texts: Sequence[str]) -> tuple[list[list[int]], np.ndarray]:
        encodings = self.tokenizer.encode_batch(list(texts))
        truncated = np.array([bool(e.overflowing) for e in encodings])
        return [e.ids for e in encodings], truncated

    def run_ids(self, ids: Sequence[Sequence[int]]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """One padded batch through the graph."""
        input_ids, attention_mask = pad_token_ids(ids, self.pad_id)
        outputs = self.session.run(None, {"input_ids": input_ids, "attention_mask": attention_mask})
        named = dict(zip(self.output_names, outputs, strict=True))
        logits = {head: np.asarray(named[f"logits_{head}"]) for head in self.bundle.heads}
        return logits, np.asarray(named["embedding"])

    def run(self, texts: Sequence[str], batch_size: int = 32) -> RuntimeOutput:
        """All texts, in length-sorted batches to cut padding; results in input order."""
        ids, truncated = self.encode(texts)
        logits = {h: np.zeros((len(ids), len(v)), np.float32) for h, v in self.bundle.heads.items()}
        embeddings = np.zeros((len(ids), self.bundle.embedding_dim), np.float32)
        for chunk in length_batches(ids, batch_size):
            batch_logits, batch_embeddings = self.run_ids([ids[i] for i in chunk])
            for head, values in batch_logits.items():
                logits[head][chunk] = values
            embeddings[chunk] = batch_embeddings
        return RuntimeOutput(logits=logits, embeddings=embeddings, truncated=truncated)

    def probabilities(self, logits: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Calibrated probabilities per head from raw logits and the stored temperatures."""
        return {
            head: softmax(values, self.bundle.temperatures[head]) for head, values in logits.items()
        }
