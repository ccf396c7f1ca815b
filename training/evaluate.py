"""Score predictions per head and per language, and score any bundle on any labelled file.

    python -m training.evaluate --model onnx_models/<name> --data tickets.csv --output DIR

prints accuracy and macro-F1 per head, overall and per language, and writes
``metrics.json`` and confusion matrices to DIR. Scoring runs the bundle through
the same ONNX Runtime path that serves it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from service.inference.bundle import BundleError, ModelBundle, RuntimeOutput, TriageRuntime
from training.data import ColumnMapping, DataError, clean_tickets, frame_texts, load_tickets

__all__ = [
    "evaluate_bundle",
    "head_metrics",
    "label_agreement",
    "main",
    "plot_confusion",
    "score_predictions",
]

logger = logging.getLogger(__name__)

# Languages with fewer test tickets than this are listed but flagged as too small to judge.
MIN_LANGUAGE_SUPPORT = 30


def head_metrics(true: Sequence[str], predicted: Sequence[str]) -> dict[str, float | int]:
    """Accuracy and macro-F1 (over every label seen in either list) for one head."""
    return {
        "accuracy": float(accuracy_score(true, predicted)),
        "macro_f1": float(f1_score(true, predicted, average="macro", zero_division=0)),
        "support": len(true),
    }


def label_agreement(
    first: Mapping[str, Sequence[str]], second: Mapping[str, Sequence[str]]
) -> dict[str, float]:
    """Per head, the share of tickets given the same label by both; and ``all_heads``, the
    mean over the heads."""
    agreement = {h: float(np.mean(np.array(first[h]) == np.array(second[h]))) for h in first}
    agreement["all_heads"] = float(np.mean(list(agreement.values())))
    return agreement


def score_predictions(
    frame: pd.DataFrame, predictions: Mapping[str, Sequence[str]]
) -> dict[str, dict[str, Any]]:
    """Per head: overall metrics and the same per detected language.

    Rows without a label for a head are left out of that head's figures.
    """
    scores: dict[str, dict[str, Any]] = {}
    for head, predicted in predictions.items():
        predicted_series = pd.Series(list(predicted), index=frame.index)
        labelled = frame[head] != ""
        overall = head_metrics(
            frame.loc[labelled, head].tolist(), predicted_series[labelled].tolist()
        )
        per_language = {}
        for language, group in frame[labelled].groupby("language"):
            metrics = head_metrics(group[head].tolist(), predicted_series[group.index].tolist())
            metrics["small_sample"] = len(group) < MIN_LANGUAGE_SUPPORT
            per_language[str(language)] = metrics
        scores[head] = {**overall, "per_language": per_language}
    return scores


def plot_confusion(
    true: Sequence[str], predicted: Sequence[str], labels: Sequence[str], title: str, path: Path
) -> None:
    """Row-normalised confusion matrix with counts in the cells."""
    matrix = confusion_matrix(true, predicted, labels=list(labels))
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.55 * len(labels) + 2.5)
    figure, axis = plt.subplots(figsize=(size + 1, size), dpi=110)
    image = axis.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    axis.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    axis.set_yticks(range(len(labels)), labels, fontsize=8)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if matrix[i, j]:
                axis.text(
                    j,
                    i,
                    str(matrix[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if rates[i, j] > 0.5 else "black",
                )
    axis.set(xlabel="predicted", ylabel="true", title=title)
    figure.colorbar(image, ax=axis, fraction=0.046, label="share of true label")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def predict_labels(
    runtime: TriageRuntime, frame: pd.DataFrame, batch_size: int = 32
) -> tuple[dict[str, list[str]], RuntimeOutput]:
    """Predicted label names per head for every row, and the raw model output."""
    output = runtime.run(frame_texts(frame, runtime.bundle.text_prefix), batch_size=batch_size)
    probabilities = runtime.probabilities(output.logits)
    names = {
        head: [runtime.bundle.heads[head][i] for i in values.argmax(axis=1)]
        for head, values in probabilities.items()
    }
    return names, output


def evaluate_bundle(
    bundle: ModelBundle,
    frame: pd.DataFrame,
    output: Path,
    variant: str = "fp32",
    provider: str = "auto",
) -> dict[str, dict[str, Any]]:
    """Score a bundle on labelled tickets; write metrics.json and confusion matrices."""
    output.mkdir(parents=True, exist_ok=True)
    heads = [h for h in bundle.heads if h in frame.columns and (frame[h] != "").any()]
    if not heads:
        raise BundleError(f"the data has labels for none of the model's heads {list(bundle.heads)}")
    runtime = TriageRuntime(bundle, variant, provider=provider)
    predictions, _ = predict_labels(runtime, frame)
    scores = score_predictions(frame, {h: predictions[h] for h in heads})
    for head in heads:
        labelled = (frame[head] != "").to_numpy()
        true = frame.loc[labelled, head].tolist()
        predicted = [p for p, keep in zip(predictions[head], labelled, strict=True) if keep]
        labels = list(bundle.heads[head]) + sorted(set(true) - set(bundle.heads[head]))
        plot_confusion(
            true, predicted, labels, f"{bundle.name}: {head}", output / f"confusion_{head}.png"
        )
    result = {
        "model": {"name": bundle.name, "version": bundle.version, "variant": variant},
        "tickets": len(frame),
        **scores,
    }
    (output / "metrics.json").write_text(
        json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8"
    )
    return scores


def metrics_table(
    scores: Mapping[str, Mapping[str, Any]],
    title: str,
    baseline: Mapping[str, Mapping[str, Any]] | None = None,
) -> Table:
    """A table of accuracy and macro-F1 per head and language (baseline macro-F1 beside it)."""
    table = Table(title=title)
    for column in ("head", "language", "tickets", "accuracy", "macro-F1"):
        table.add_column(column, justify="left" if column in ("head", "language") else "right")
    if baseline:
        table.add_column("baseline macro-F1", justify="right")
    for head, metrics in scores.items():
        rows = [("all", metrics), *sorted(metrics["per_language"].items())]
        for language, values in rows:
            cells = [
                head,
                language,
                str(values["support"]),
                f"{values['accuracy']:.3f}",
                f"{values['macro_f1']:.3f}",
            ]
            if baseline:
                base = (
                    baseline[head]
                    if language == "all"
                    else baseline[head]["per_language"].get(language)
                )
                cells.append(f"{base['macro_f1']:.3f}" if base else "-")
            table.add_row(*cells)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model", required=True, type=Path, help="bundle folder onnx_models/<name>"
    )
    parser.add_argument("--data", required=True, nargs="+", help="labelled CSV/JSON/Parquet files")
    parser.add_argument("--output", required=True, type=Path, help="folder for metrics and plots")
    parser.add_argument("--variant", default="fp32", choices=["fp32", "int8"])
    parser.add_argument("--provider", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--column-mapping", type=Path, help="YAML file mapping columns and values")
    parser.add_argument("--column", action="append", default=[], metavar="FIELD=COLUMN")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    console = Console()

    try:
        bundle = ModelBundle.load(args.model)
        heads = list(bundle.heads)
        mapping = (
            ColumnMapping.from_yaml(args.column_mapping, heads)
            if args.column_mapping
            else ColumnMapping.default(heads)
        ).with_overrides(args.column)
        frame, cleaning = clean_tickets(
            load_tickets(args.data, mapping, heads), mapping, heads, min_label_count=1
        )
        scores = evaluate_bundle(bundle, frame, args.output, args.variant, args.provider)
    except (BundleError, DataError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    if cleaning["dropped"]:
        console.print(f"left out as unusable: {cleaning['dropped']}")
    console.print(
        metrics_table(
            scores, f"{bundle.name} {bundle.version} ({args.variant}) on {len(frame)} tickets"
        )
    )
    console.print(f"metrics and confusion matrices written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
