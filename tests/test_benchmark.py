"""The inference benchmark: the PyTorch copy it measures against, its arithmetic, and a small
run of every section against the tiny bundle and a real server."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from service.inference.bundle import ModelBundle, TriageRuntime, pad_token_ids
from tests.conftest import SAMPLE
from training.benchmark import BenchConfig, _http_level, flops_per_ticket, fma_flops_per_cycle
from training.benchmark import main as bench_main
from training.benchmark_engines import float16_graph
from training.export import quantize_int8
from training.reference import REFERENCE_FOLDER, ReferenceError, load_reference, reference_logits
from training.requantize import main as requantize_main


def test_pytorch_copy_reproduces_the_graph_logits(trained: Path) -> None:
    runtime = TriageRuntime(ModelBundle.load(trained), "fp32", provider="cpu")
    ids, _ = runtime.encode(["query: printer broken", "query: Rechnung doppelt bezahlt, bitte"])
    graph_logits, _ = runtime.run_ids(ids)
    input_ids, mask = pad_token_ids(ids, runtime.pad_id)

    logits = reference_logits(
        load_reference(trained), torch.from_numpy(input_ids), torch.from_numpy(mask)
    )

    for head, values in logits.items():
        assert np.abs(values.numpy() - graph_logits[head]).max() < 1e-4


def test_missing_pytorch_copy_names_the_folder_and_the_fix(trained: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(trained, bundle, ignore=shutil.ignore_patterns(REFERENCE_FOLDER))

    with pytest.raises(ReferenceError, match="train again"):
        load_reference(bundle)


def test_bench_refuses_a_bundle_without_pytorch_copy(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(trained, bundle, ignore=shutil.ignore_patterns(REFERENCE_FOLDER))

    code = bench_main(["--model-dir", str(bundle), "--tickets", str(SAMPLE), "--no-http"])

    assert code == 2
    assert "--engines onnx-fp32 onnx-int8" in capsys.readouterr().out


def test_flops_of_e5_small_at_128_tokens_are_about_5_7_gflop() -> None:
    flops = flops_per_ticket(128, layers=12, hidden=384, intermediate=1536)

    assert 5.6e9 < flops < 5.8e9


def test_flops_grow_faster_than_tokens_through_attention() -> None:
    short = flops_per_ticket(64, layers=12, hidden=384, intermediate=1536)
    long = flops_per_ticket(256, layers=12, hidden=384, intermediate=1536)

    assert long > 4 * short


@pytest.mark.parametrize(
    ("flags", "vendor", "family", "expected"),
    [
        ({"fma", "avx2"}, "AuthenticAMD", 25, 32),
        ({"fma", "avx2", "avx512f"}, "AuthenticAMD", 25, 32),  # Zen 4: two 256-bit halves
        ({"fma", "avx2", "avx512f"}, "AuthenticAMD", 26, 64),  # Zen 5: full 512-bit pipes
        ({"fma", "avx2", "avx512f"}, "GenuineIntel", 6, 64),
        ({"avx"}, "GenuineIntel", 6, 0),
    ],
)
def test_fma_width_follows_the_processor(
    flags: set[str], vendor: str, family: int, expected: int
) -> None:
    assert fma_flops_per_cycle(flags, vendor, family) == expected


def test_http_share_is_the_median_of_each_rounds_ratio() -> None:
    def run(rate: float) -> dict[str, float]:
        return {
            "requests_per_s": rate,
            "p50_ms": 1.0,
            "p99_ms": 2.0,
            "errors": 0,
            "requests": 10,
            "client_cpu_ms": 0.1,
            "server_cpu_ms": 5.0,
        }

    # A slow second round slows both; the ratio within each round is what counts.
    level = _http_level([run(80), run(40), run(90)], [100.0, 50.0, 100.0])

    assert level["share_of_runtime"] == pytest.approx(0.8)
    assert level["requests_per_s"] == 80


@pytest.mark.parametrize(
    ("field", "value"), [("count", 0), ("repeats", 0), ("batch_sizes", []), ("http_variant", "x")]
)
def test_bench_settings_are_checked(field: str, value: object, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=field.split("_")[0]):
        BenchConfig(model_dir=tmp_path, tickets=[], **{field: value})  # type: ignore[arg-type]


def test_int8_choices_quantise_more_of_the_feed_forward(trained: Path, tmp_path: Path) -> None:
    source = trained / "model.onnx"

    kept = {
        choice: quantize_int8(source, tmp_path / f"{choice}.onnx", feed_forward=choice)
        for choice in ("none", "input", "all")
    }

    assert len(kept["all"]) < len(kept["input"]) < len(kept["none"])
    quantised = onnx.load(str(tmp_path / "all.onnx"))
    assert sum(node.op_type == "MatMulInteger" for node in quantised.graph.node) > sum(
        node.op_type == "MatMulInteger"
        for node in onnx.load(str(tmp_path / "none.onnx")).graph.node
    )


def test_bench_run_reports_every_section(trained: Path, tmp_path: Path) -> None:
    output = tmp_path / "bench"
    # fmt: off
    code = bench_main([
        "--model-dir", str(trained), "--tickets", str(SAMPLE), "--output", str(output),
        "--count", "24", "--latency-count", "6", "--sweep-count", "12", "--batch-sizes", "1", "4",
        "--repeats", "1", "--concurrency", "1", "4", "--http-seconds", "1.5",
    ])
    # fmt: on

    assert code == 0
    report = json.loads((output / "report.json").read_text())
    engines = report["engines"]
    assert set(engines) == {"pytorch", "onnx-fp32", "onnx-int8"}
    for result in engines.values():
        assert result["best_tickets_per_s"] > 0
        assert result["single_p95_ms"] >= result["single_p50_ms"] > 0
        assert result["peak_rss_mib"] > 50
        assert all(0 <= f1 <= 1 for f1 in result["macro_f1"].values())
    # Same fp32 network in PyTorch and ONNX Runtime: the same scores.
    assert engines["pytorch"]["macro_f1"] == pytest.approx(engines["onnx-fp32"]["macro_f1"])
    assert report["tickets"]["count"] == 24
    assert {int(c) for c in report["http"]["levels"]} == {1, 4}
    levels = report["http"]["levels"].values()
    assert all(level["errors"] == 0 and level["requests"] > 0 for level in levels)
    groups = {row["group"] for row in report["ablations"]}
    assert groups == {
        "batching",
        "threads",
        "graph optimisation",
        "token cap",
        "INT8 operators",
        "layer norm",
    }
    assert [row["target"].split(" (")[0] for row in report["targets"]] == [
        "INT8 / PyTorch default pipeline",
        "INT8 / PyTorch at its best batch size",
        "INT8 macro-F1 within 1 point of fp32 on every head",
        "fp32 runtime share of the fp32 peak",
    ]
    assert (output / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (output / "report.md").read_text()
    sections = [
        "Targets",
        "Engines",
        "Against the hardware",
        "HTTP path",
        "Choices measured",
        "GPU",
    ]
    assert [s for s in sections if f"## {s}\n" not in markdown] == []


def test_cuda_graph_is_the_network_in_half_precision(trained: Path, tmp_path: Path) -> None:
    path = float16_graph(trained / "model.onnx", tmp_path / "model.fp16.onnx")

    graph = onnx.load(str(path))
    onnx.checker.check_model(graph)
    weights = [t.data_type for t in graph.graph.initializer if len(t.dims) == 2]
    assert weights.count(onnx.TensorProto.FLOAT16) > len(weights) / 2
    assert {i.type.tensor_type.elem_type for i in graph.graph.input} == {onnx.TensorProto.INT64}
    float_outputs = {o.type.tensor_type.elem_type for o in graph.graph.output}
    assert float_outputs == {onnx.TensorProto.FLOAT}


def _copy_bundle(trained: Path, tmp_path: Path) -> tuple[Path, Path]:
    bundle = tmp_path / "bundle"
    shutil.copytree(trained, bundle)
    return bundle, trained.parents[1] / "runs" / trained.name / "test_split.csv"


def test_requantize_replaces_the_int8_graph_and_rescores_it(trained: Path, tmp_path: Path) -> None:
    bundle, split = _copy_bundle(trained, tmp_path)

    code = requantize_main(
        [
            "--model",
            str(bundle),
            "--feed-forward",
            "all",
            "--signed-weights",
            "--test-split",
            str(split),
            "--min-agreement",
            "0",
        ]
    )

    assert code == 0
    config = json.loads((bundle / "config.json").read_text())
    assert config["int8_quantization"] == {
        "feed_forward": "all",
        "signed_weights": True,
        "per_channel": True,
    }
    metrics = json.loads((bundle / "metrics.json").read_text())
    assert [n for n in metrics["int8_nodes_kept_fp32"] if "MatMul" in n] == []
    assert 0 <= metrics["int8_agreement_with_fp32"]["all_heads"] <= 1
    assert set(metrics["test"]["int8"]) == {"queue", "priority", "type"}
    nodes = onnx.load(str(bundle / "model.int8.onnx")).graph.node
    assert any(n.op_type == "MatMulInteger" and "/intermediate/" in n.name for n in nodes)


def test_requantize_keeps_the_bundle_when_agreement_is_too_low(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle, split = _copy_bundle(trained, tmp_path)
    before = [(bundle / name).read_bytes() for name in ("model.int8.onnx", "config.json")]

    code = requantize_main(
        [
            "--model",
            str(bundle),
            "--feed-forward",
            "all",
            "--test-split",
            str(split),
            "--min-agreement",
            "1.01",
        ]
    )

    assert code == 2
    assert "the bundle is unchanged" in capsys.readouterr().err
    assert [(bundle / name).read_bytes() for name in ("model.int8.onnx", "config.json")] == before
