"""Training settings: one validated object, saved next to every model it produced."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["FEED_FORWARD_CHOICES", "LAYER_NORM_CHOICES", "ConfigError", "TrainConfig"]

#: Which feed-forward projections dynamic INT8 quantisation covers: ``none`` keeps both in
#: fp32, ``input`` quantises the one after layer norm (``intermediate``), ``all`` both.
FEED_FORWARD_CHOICES = ("none", "input", "all")
#: How the exported graphs compute layer norm: ``operators`` (standard operators, faster on
#: CPU; see ``training.layer_norm``) or ``fused`` (ONNX Runtime's SkipLayerNormalization).
LAYER_NORM_CHOICES = ("operators", "fused")
_DEVICES = ("auto", "cpu", "cuda")
_PRECISIONS = ("auto", "fp32", "bf16", "fp16")


class ConfigError(ValueError):
    """A training setting is out of range; the message names the setting and the valid values."""


@dataclass
class TrainConfig:
    """Everything a training run depends on.

    ``frozen_layers`` and ``freeze_embeddings`` default to a CPU recipe (word
    embeddings and the lower 8 of 12 layers frozen, their output computed once)
    and to a full fine-tune on CUDA.
    """

    data: list[str] = field(default_factory=lambda: ["data/sample/tickets.csv"])
    name: str = "ticket-triage"
    output_dir: Path = Path("onnx_models")
    work_dir: Path = Path("runs")
    base_model: str = "multilingual-e5-small"
    cache_dir: Path | None = None
    column_mapping: Path | None = None
    #: Database URL of a running service: its tickets with agents' feedback join the data.
    feedback: str | None = None
    columns: list[str] = field(default_factory=list)
    heads: list[str] = field(default_factory=lambda: ["queue", "priority", "type"])
    validation_fraction: float = 0.1
    test_fraction: float = 0.15
    near_duplicate_threshold: float = 0.7
    min_label_count: int = 5
    max_length: int = 192
    batch_size: int = 16
    epochs: int = 5
    encoder_learning_rate: float = 1e-4
    head_learning_rate: float = 2e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.06
    dropout: float = 0.1
    class_weight_power: float = 0.5
    frozen_layers: int | None = None
    freeze_embeddings: bool | None = None
    lexical: bool = True
    device: str = "auto"
    precision: str = "auto"
    seed: int = 13
    threads: int | None = None
    quick: bool = False
    export_int8: bool = True
    #: Also export the untouched base encoder for similar-ticket search.
    export_retrieval: bool = True
    #: Keep the network's PyTorch weights in the bundle (``pytorch/``), for the benchmark.
    export_pytorch: bool = True
    parity_tolerance: float = 1e-3
    #: Mean share of predictions on the parity tickets where INT8 must agree with fp32.
    int8_min_agreement: float = 0.85
    #: Feed-forward projections quantised in the INT8 graph: none, input or all.
    int8_feed_forward: str = "all"
    #: Signed 8-bit weights (fast with VNNI) rather than unsigned.
    int8_signed_weights: bool = True
    #: Layer norm in the exported graphs: operators or fused (see LAYER_NORM_CHOICES).
    layer_norm: str = "operators"

    def __post_init__(self) -> None:
        self.output_dir = Path(self.output_dir)
        self.work_dir = Path(self.work_dir)
        if self.cache_dir is not None:
            self.cache_dir = Path(self.cache_dir)
        if self.column_mapping is not None:
            self.column_mapping = Path(self.column_mapping)
        self.validate()

    def validate(self) -> None:
        checks: list[tuple[bool, str]] = [
            (bool(self.data), "data: expected at least one file or data set id, found none"),
            (bool(self.heads), "heads: expected at least one label head, found none"),
            (
                len(set(self.heads)) == len(self.heads),
                f"heads: expected distinct names, found {self.heads}",
            ),
            (8 <= self.max_length <= 512, f"max_length: expected 8..512, found {self.max_length}"),
            (self.batch_size >= 1, f"batch_size: expected at least 1, found {self.batch_size}"),
            (self.epochs >= 1, f"epochs: expected at least 1, found {self.epochs}"),
            (self.device in _DEVICES, f"device: expected one of {_DEVICES}, found {self.device!r}"),
            (
                self.precision in _PRECISIONS,
                f"precision: expected one of {_PRECISIONS}, found {self.precision!r}",
            ),
            (
                0 <= self.class_weight_power <= 1,
                "class_weight_power: expected 0 (none) .. 1 (balanced), "
                f"found {self.class_weight_power}",
            ),
            (0 <= self.dropout < 1, f"dropout: expected 0..1, found {self.dropout}"),
            (
                self.int8_feed_forward in FEED_FORWARD_CHOICES,
                f"int8_feed_forward: expected one of {FEED_FORWARD_CHOICES}, "
                f"found {self.int8_feed_forward!r}",
            ),
            (
                self.layer_norm in LAYER_NORM_CHOICES,
                f"layer_norm: expected one of {LAYER_NORM_CHOICES}, found {self.layer_norm!r}",
            ),
            (
                self.frozen_layers is None or self.frozen_layers >= 0,
                f"frozen_layers: expected 0 or more, found {self.frozen_layers}",
            ),
            (
                self.name.replace("-", "").replace("_", "").replace(".", "").isalnum(),
                f"name: expected letters, digits, '-', '_' or '.', found {self.name!r}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def resolved_device(self) -> str:
        import torch

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError(
                "device: 'cuda' was asked for but torch sees no CUDA device; "
                "use --device cpu or install a CUDA build of torch"
            )
        return self.device

    def to_json(self) -> dict[str, Any]:
        return {
            key: str(value) if isinstance(value, Path) else value
            for key, value in dataclasses.asdict(self).items()
        }
