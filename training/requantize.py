"""Quantise a bundle's INT8 graph again, with other operator choices, and re-score it.

``make bench`` measures the INT8 choices side by side (which projections are quantised,
signed or unsigned weights, one scale per column or per matrix, layer norm as standard
operators or as ONNX Runtime's fused kernel). This applies a choice to an existing bundle
without training it again::

    python -m training.requantize --model onnx_models/acme --feed-forward all --signed-weights \\
        --layer-norm operators --test-split runs/acme/test_split.csv

``--layer-norm`` rewrites the fp32 graph too (the INT8 one is quantised from it).

With ``--test-split`` (the held-out tickets training wrote beside its run), the new graph
is scored on them, and the bundle's ``metrics.json`` gets its INT8 figures and its
agreement with fp32; a graph agreeing with fp32 on fewer than ``--min-agreement`` of the
tickets is refused and the bundle left as it was.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from service.files import write_json
from service.inference.bundle import BundleError, ModelBundle, TriageRuntime, bundle_record
from training.config import FEED_FORWARD_CHOICES, LAYER_NORM_CHOICES
from training.data import ColumnMapping, DataError, clean_tickets, load_tickets
from training.evaluate import label_agreement, predict_labels, score_predictions
from training.export import quantize_int8
from training.layer_norm import rewrite_graph_file
from training.model_card import write_model_card, write_report

__all__ = ["RequantizeError", "requantize_bundle"]

logger = logging.getLogger(__name__)


class RequantizeError(RuntimeError):
    """The new INT8 graph agrees too little with fp32 to replace the old one."""


def requantize_bundle(
    bundle_dir: Path,
    feed_forward: str,
    signed_weights: bool,
    per_channel: bool,
    test_split: Path | None = None,
    min_agreement: float = 0.85,
    layer_norm: str | None = None,
) -> dict[str, Any]:
    """Replace ``model.int8.onnx`` (and with ``layer_norm``, ``model.onnx`` in that form);
    returns the choices and, with a test split, the scores."""
    bundle = ModelBundle.load(bundle_dir)
    choices = {
        "feed_forward": feed_forward,
        "signed_weights": signed_weights,
        "per_channel": per_channel,
    }
    with tempfile.TemporaryDirectory(dir=bundle_dir) as scratch:
        fp32_graph = bundle.model_path("fp32")
        if layer_norm is not None:
            fp32_graph = Path(scratch) / "model.onnx"
            rewrite_graph_file(bundle.model_path("fp32"), fp32_graph, layer_norm)
        candidate = Path(scratch) / "model.int8.onnx"
        kept = quantize_int8(
            fp32_graph,
            candidate,
            feed_forward=feed_forward,
            signed_weights=signed_weights,
            per_channel=per_channel,
        )
        result: dict[str, Any] = {"int8_quantization": choices, "int8_nodes_kept_fp32": kept}
        if test_split is not None:
            result.update(_score(bundle, candidate, test_split))
            worst = min(result["int8_agreement_with_fp32"].values())
            if worst < min_agreement:
                raise RequantizeError(
                    f"the new INT8 graph agrees with fp32 on {worst:.3f} of the test tickets for "
                    f"one head, under --min-agreement {min_agreement}; the bundle is unchanged"
                )
        candidate.replace(bundle_dir / "model.int8.onnx")
        if layer_norm is not None:
            fp32_graph.replace(bundle.model_path("fp32"))

    config = {
        **bundle.raw,
        "model_files": {**bundle.model_files, "int8": "model.int8.onnx"},
        "int8_quantization": choices,
    }
    if layer_norm is not None:
        config["layer_norm"] = layer_norm
    write_json(bundle_dir / "config.json", config)
    metrics = bundle_record(bundle_dir, "metrics.json")
    if metrics:
        metrics.update({k: v for k, v in result.items() if k != "test_int8"})
        if "test_int8" in result:
            metrics.setdefault("test", {})["int8"] = result["test_int8"]
        size = (bundle_dir / "model.int8.onnx").stat().st_size / 1e6
        metrics.setdefault("sizes_mb", {})["int8"] = round(size, 1)
        write_json(bundle_dir / "metrics.json", metrics)
        # The bundle's report and model card quote the INT8 figures: write them anew.
        statistics = bundle_record(bundle_dir, "data_statistics.json")
        write_report(bundle_dir / "report.md", metrics, statistics, config)
        write_model_card(bundle_dir / "MODEL_CARD.md", metrics, statistics, config)
    return result


def _score(bundle: ModelBundle, graph: Path, test_split: Path) -> dict[str, Any]:
    heads = list(bundle.heads)
    mapping = ColumnMapping.default(heads)
    frame, _ = clean_tickets(
        load_tickets([str(test_split)], mapping, heads), mapping, heads, min_label_count=1
    )
    fp32_names, _ = predict_labels(TriageRuntime(bundle, "fp32", provider="cpu"), frame)
    # The candidate as the bundle's INT8 graph, before it replaces the bundle's file.
    candidate = replace(
        bundle,
        model_files={**bundle.model_files, "int8": str(graph.relative_to(bundle.directory))},
    )
    int8_names, _ = predict_labels(TriageRuntime(candidate, "int8", provider="cpu"), frame)
    return {
        "test_int8": score_predictions(frame, int8_names),
        "test_fp32_on_split": score_predictions(frame, fp32_names),
        "int8_agreement_with_fp32": label_agreement(fp32_names, int8_names),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.requantize",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", type=Path, required=True, help="bundle folder")
    parser.add_argument("--feed-forward", choices=FEED_FORWARD_CHOICES, required=True)
    parser.add_argument("--signed-weights", action="store_true", help="int8 rather than uint8")
    parser.add_argument(
        "--per-tensor", dest="per_channel", action="store_false", help="one scale per matrix"
    )
    parser.add_argument(
        "--layer-norm",
        choices=LAYER_NORM_CHOICES,
        help="rewrite the layer norms of both graphs in this form (default: as they are)",
    )
    parser.add_argument("--test-split", type=Path, help="held-out tickets to score it on")
    parser.add_argument("--min-agreement", type=float, default=0.85)
    args = parser.parse_args(argv)
    # ONNX Runtime's quantiser logs every tensor at INFO on the root logger.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        result = requantize_bundle(
            args.model,
            args.feed_forward,
            args.signed_weights,
            args.per_channel,
            args.test_split,
            args.min_agreement,
            args.layer_norm,
        )
    except (BundleError, DataError, RequantizeError, FileNotFoundError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    summary = {k: v for k, v in result.items() if k not in ("int8_nodes_kept_fp32",)}
    sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
