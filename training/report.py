"""Assemble a model bundle: export, parity, test evaluation, report and model card.

A bundle folder holds everything serving and auditing need:

    model.onnx, model.int8.onnx   one graph: input_ids, attention_mask -> logits_<head>, embedding
    tokenizer.json                the base model's tokenizer
    config.json                   heads, temperatures, max length, text prefix, provenance
    labels.json, temperatures.json
    metrics.json, report.md       test figures per head and language, baseline, calibration, parity
    data_statistics.json, train_config.json, MODEL_CARD.md, plots/*.png
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import platform
import shutil
import subprocess
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from tokenizers import Tokenizer

from service.files import write_json
from service.inference.bundle import ModelBundle, TriageRuntime, softmax
from service.text import QUERY_PREFIX
from training.baseline import fit_baseline
from training.calibration import expected_calibration_error, fit_temperature, plot_reliability
from training.config import TrainConfig
from training.data import PreparedData, frame_texts, label_indices
from training.evaluate import (
    label_agreement,
    metrics_table,
    plot_confusion,
    predict_labels,
    score_predictions,
)
from training.export import (
    check_parity,
    export_onnx,
    export_retrieval_encoder,
    optimise_graph,
    quantize_int8,
)
from training.layer_norm import rewrite_graph_file
from training.model import TriageModel
from training.model_card import write_model_card, write_report
from training.reference import REFERENCE_FOLDER, save_reference

__all__ = ["build_bundle"]

logger = logging.getLogger(__name__)
PARITY_SAMPLE = 64
#: The test split's tickets, written to the run folder (``runs/<name>/``).
TEST_SPLIT_FILE = "test_split.csv"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def _provenance(config: TrainConfig, base_model: str) -> dict[str, Any]:
    data = {}
    for source in config.data:
        path = Path(source)
        data[source] = (
            {"sha256": _sha256(path), "bytes": path.stat().st_size}
            if path.is_file()
            else {"dataset_id": source}
        )
    manifest = Path(base_model) / "MANIFEST.json"
    return {
        "data": data,
        "base_model": config.base_model,
        "base_model_manifest": json.loads(manifest.read_text()) if manifest.is_file() else None,
        "code_commit": _git_commit(),
        "python": platform.python_version(),
    }


def build_bundle(
    *,
    model: TriageModel,
    tokenizer: Tokenizer,
    config: TrainConfig,
    prepared: PreparedData,
    validation_logits: Mapping[str, np.ndarray],
    validation_labels: Mapping[str, np.ndarray],
    history: list[dict[str, Any]],
    blend: Mapping[str, Any],
    base_model: str,
    frozen_layers: int,
    freeze_embeddings: bool,
    device: str,
    started: float,
    console: Console,
) -> Path:
    """Export, check, evaluate and document the model; returns ``output_dir/<name>``."""
    run_dir = config.work_dir / config.name
    staging = run_dir / "bundle"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "plots").mkdir(parents=True)
    heads = list(model.head_names)

    # Temperatures from validation: they turn the graph's logits into calibrated probabilities.
    temperatures = {h: fit_temperature(validation_logits[h], validation_labels[h]) for h in heads}

    # Export, fuse, quantise.
    raw_path = run_dir / "model.raw.onnx"
    export_onnx(model, raw_path)
    encoder_config = model.encoder.config
    fused = optimise_graph(
        raw_path,
        staging / "model.onnx",
        int(encoder_config.num_attention_heads),
        int(encoder_config.hidden_size),
    )
    if config.layer_norm == "operators":  # before quantising, so both graphs get it
        rewrite_graph_file(staging / "model.onnx", staging / "model.onnx", "operators")
    model_files = {"fp32": "model.onnx"}
    int8_fp32_nodes: list[str] = []
    if config.export_int8:
        int8_fp32_nodes = quantize_int8(
            staging / "model.onnx",
            staging / "model.int8.onnx",
            feed_forward=config.int8_feed_forward,
            signed_weights=config.int8_signed_weights,
        )
        model_files["int8"] = "model.int8.onnx"
    plain = copy.deepcopy(tokenizer)
    plain.no_truncation()
    plain.save(str(staging / "tokenizer.json"))
    parity_texts = frame_texts(prepared.test.head(PARITY_SAMPLE), QUERY_PREFIX)
    retrieval = (
        export_retrieval_encoder(base_model, run_dir, staging, parity_texts, tokenizer)
        if config.export_retrieval
        else None
    )

    version = datetime.now(UTC).strftime("%Y.%m.%d-%H%M%S")
    bundle_config = {
        "name": config.name,
        "version": version,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "heads": prepared.labels,
        "temperatures": temperatures,
        "max_length": config.max_length,
        "text_prefix": QUERY_PREFIX,
        "embedding_dim": int(encoder_config.hidden_size),
        "model_files": model_files,
        "inputs": ["input_ids", "attention_mask"],
        "outputs": [f"logits_{h}" for h in heads] + ["embedding"],
        "int8_quantization": {
            "feed_forward": config.int8_feed_forward,
            "signed_weights": config.int8_signed_weights,
            "per_channel": True,
        },
        "layer_norm": config.layer_norm,
        "lexical_weights": {
            h: float(w) for h, w in zip(heads, model.lexical_weight.tolist(), strict=True)
        },
        "encoder": {
            "base_model": config.base_model,
            "layers": int(encoder_config.num_hidden_layers),
            "frozen_layers": frozen_layers,
            "frozen_embeddings": freeze_embeddings,
            "hidden_size": int(encoder_config.hidden_size),
        },
        "provenance": _provenance(config, base_model),
    }
    if retrieval is not None:
        bundle_config["retrieval_encoder"] = retrieval
    write_json(staging / "config.json", bundle_config)
    if config.export_pytorch:
        save_reference(model, staging / REFERENCE_FOLDER)
    # The held-out tickets, beside the run (not in the bundle, which ships without ticket text).
    prepared.test.to_csv(run_dir / TEST_SPLIT_FILE, index=False)
    write_json(staging / "labels.json", prepared.labels)
    write_json(staging / "temperatures.json", temperatures)
    write_json(staging / "train_config.json", {**config.to_json(), "device": device})
    write_json(staging / "data_statistics.json", prepared.statistics)

    # Parity: the graphs must reproduce PyTorch before anything is measured on them.
    bundle = ModelBundle.load(staging)
    parity = check_parity(
        model, bundle, parity_texts, config.parity_tolerance, config.int8_min_agreement
    )

    # Test split through ONNX Runtime, as served.
    test = prepared.test
    fp32_runtime = TriageRuntime(bundle, "fp32", provider="cpu", threads=config.threads)
    fp32_names, fp32_output = predict_labels(fp32_runtime, test)
    raw_logits = fp32_output.logits
    scores = {"fp32": score_predictions(test, fp32_names)}
    int8_agreement = None
    if "int8" in model_files:
        int8_names, _ = predict_labels(
            TriageRuntime(bundle, "int8", provider="cpu", threads=config.threads), test
        )
        scores["int8"] = score_predictions(test, int8_names)
        int8_agreement = label_agreement(fp32_names, int8_names)

    # Calibration before and after temperature scaling, on the test split.
    calibration = {}
    for head in heads:
        labels = label_indices(test, head, prepared.labels[head])
        before = softmax(raw_logits[head])
        after = softmax(raw_logits[head], temperatures[head])
        calibration[head] = {
            "temperature": temperatures[head],
            "ece_before": expected_calibration_error(before, labels),
            "ece_after": expected_calibration_error(after, labels),
            # The served model's drift watch compares live confidence with this.
            "mean_confidence": float(after.max(axis=1).mean()),
        }
        plot_reliability(
            {"before": (before, labels), "after": (after, labels)},
            f"{head}: reliability on test (T={temperatures[head]:.2f})",
            staging / "plots" / f"reliability_{head}.png",
        )
        known = test[head] != ""
        plot_confusion(
            test.loc[known, head].tolist(),
            [p for p, k in zip(fp32_names[head], known, strict=True) if k],
            prepared.labels[head],
            f"{config.name}: {head} (test)",
            staging / "plots" / f"confusion_{head}.png",
        )

    # Baseline on the same split: word TF-IDF + logistic regression per head.
    train_texts = frame_texts(prepared.train, "")
    test_texts = frame_texts(test, "")
    baseline_names = {}
    for head in heads:
        labels = label_indices(prepared.train, head, prepared.labels[head])
        pipeline = fit_baseline(train_texts, labels, seed=config.seed)
        baseline_names[head] = [prepared.labels[head][i] for i in pipeline.predict(test_texts)]
    baseline = score_predictions(test, baseline_names)

    elapsed = time.perf_counter() - started
    metrics = {
        "model": {"name": config.name, "version": version},
        "test": scores,
        "baseline_tfidf_logreg": baseline,
        "int8_agreement_with_fp32": int8_agreement,
        "calibration": calibration,
        "parity": parity.to_json(),
        "validation_blend": blend,
        "training_history": history,
        "graph_fusions": fused,
        "int8_nodes_kept_fp32": int8_fp32_nodes,
        "sizes_mb": {
            name: round((staging / f).stat().st_size / 1e6, 1) for name, f in model_files.items()
        },
        "seconds": round(elapsed, 1),
        "device": device,
    }
    write_json(staging / "metrics.json", metrics)
    write_report(staging / "report.md", metrics, prepared.statistics, bundle_config)
    write_model_card(staging / "MODEL_CARD.md", metrics, prepared.statistics, bundle_config)

    # Swap the finished bundle into place.
    target = config.output_dir / config.name
    config.output_dir.mkdir(parents=True, exist_ok=True)
    previous = target.with_name(target.name + ".previous")
    shutil.rmtree(previous, ignore_errors=True)
    if target.exists():
        target.rename(previous)
    shutil.move(str(staging), str(target))
    shutil.rmtree(previous, ignore_errors=True)

    console.print(
        metrics_table(
            scores["fp32"], f"{config.name} {version}: test split (fp32 ONNX)", baseline=baseline
        )
    )
    summary = Table(title="export and calibration")
    for column in ("head", "INT8 = fp32", "T", "ECE before", "ECE after"):
        summary.add_column(column, justify="right")
    for head in heads:
        summary.add_row(
            head,
            f"{int8_agreement[head]:.3f}" if int8_agreement else "-",
            f"{calibration[head]['temperature']:.2f}",
            f"{calibration[head]['ece_before']:.3f}",
            f"{calibration[head]['ece_after']:.3f}",
        )
    console.print(summary)
    console.print(
        f"parity: max logit difference {parity.max_logit_difference:.1e}, argmax agreement "
        f"{parity.argmax_agreement:.3f}; sizes {metrics['sizes_mb']} MB; "
        f"{elapsed / 60:.1f} min in all"
    )
    return target
