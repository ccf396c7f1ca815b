"""Layer norm as standard operators: what training exports, the way back to ONNX Runtime's
fused kernel, and that both forms give the same answers."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest

from service.inference.bundle import ModelBundle, TriageRuntime
from training.layer_norm import rewrite_graph_file
from training.requantize import main as requantize_main

TEXTS = [
    "query: printer broken on floor 3",
    "query: Rechnung doppelt bezahlt, bitte erstatten",
    "query: VPN se desconecta cada pocos minutos desde esta mañana y no puedo trabajar",
]


def _ops(path: Path) -> Counter[str]:
    return Counter(node.op_type for node in onnx.load(str(path)).graph.node)


def _outputs(bundle: ModelBundle, variant: str, graph: Path | None = None) -> dict[str, np.ndarray]:
    if graph is not None:
        relative = str(graph.relative_to(bundle.directory))
        bundle = replace(bundle, model_files={**bundle.model_files, variant: relative})
    output = TriageRuntime(bundle, variant, provider="cpu").run(TEXTS)
    return {**output.logits, "embedding": output.embeddings}


def test_training_exports_layer_norm_as_standard_operators(trained: Path) -> None:
    config = json.loads((trained / "config.json").read_text())

    assert config["layer_norm"] == "operators"
    for name in ("model.onnx", "model.int8.onnx"):
        ops = _ops(trained / name)
        assert ops["SkipLayerNormalization"] == 0
        assert ops["Reciprocal"] >= 2  # one per layer norm after attention and feed-forward


def test_fused_form_gives_the_same_answers(trained: Path, tmp_path: Path) -> None:
    bundle_dir = tmp_path / "bundle"
    shutil.copytree(trained, bundle_dir)
    bundle = ModelBundle.load(bundle_dir)
    fused = bundle_dir / "model.fused.onnx"

    count = rewrite_graph_file(bundle_dir / "model.onnx", fused, "fused")

    assert count == _ops(fused)["SkipLayerNormalization"] > 0
    assert _ops(fused)["Reciprocal"] == 0
    expected = _outputs(bundle, "fp32")
    for name, values in _outputs(bundle, "fp32", fused).items():
        assert np.abs(values - expected[name]).max() < 1e-4, name


def test_rewriting_both_ways_gives_back_the_same_graph(trained: Path, tmp_path: Path) -> None:
    rewrite_graph_file(trained / "model.onnx", tmp_path / "fused.onnx", "fused")
    rewrite_graph_file(tmp_path / "fused.onnx", tmp_path / "again.onnx", "operators")

    before = onnx.load(str(trained / "model.onnx")).graph
    after = onnx.load(str(tmp_path / "again.onnx")).graph
    assert [(n.op_type, list(n.input), list(n.output)) for n in after.node] == [
        (n.op_type, list(n.input), list(n.output)) for n in before.node
    ]
    assert {t.name for t in after.initializer} == {t.name for t in before.initializer}


def test_unknown_layer_norm_form_is_refused(trained: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"expected one of .*'operators'.*found 'fast'"):
        rewrite_graph_file(trained / "model.onnx", tmp_path / "x.onnx", "fast")


def test_requantize_switches_a_bundle_to_the_fused_kernel(trained: Path, tmp_path: Path) -> None:
    bundle_dir = tmp_path / "bundle"
    shutil.copytree(trained, bundle_dir)
    before = _outputs(ModelBundle.load(bundle_dir), "fp32")

    code = requantize_main(
        [
            *("--model", str(bundle_dir), "--feed-forward", "all", "--signed-weights"),
            *("--layer-norm", "fused"),
        ]
    )

    assert code == 0
    assert json.loads((bundle_dir / "config.json").read_text())["layer_norm"] == "fused"
    for name in ("model.onnx", "model.int8.onnx"):
        assert _ops(bundle_dir / name)["SkipLayerNormalization"] > 0
    after = _outputs(ModelBundle.load(bundle_dir), "fp32")
    for name, values in after.items():
        assert np.abs(values - before[name]).max() < 1e-4, name
