"""The knowledge-index benchmark at a tiny size: its exact ground truth and its report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from service.knowledge.benchmark import (
    BenchmarkConfig,
    ClusteredVectors,
    exact_neighbours,
    run_benchmark,
)

# Chunks of 1,000 so that 3,000 vectors take three chunks and the top-k merge across them is used.
CONFIG = BenchmarkConfig(
    dimension=32, clusters=50, queries=100, warm_up_queries=20, chunk_size=1000
)
SIZE = 3000


def test_exact_neighbours_of_an_indexed_vector_start_with_itself() -> None:
    chunks = list(ClusteredVectors(CONFIG).base_chunks(SIZE, CONFIG.chunk_size))
    rows = np.array([0, 1234, 2999])
    queries = np.concatenate([vectors for _, vectors in chunks])[rows]

    keys, similarities = exact_neighbours(queries, chunks, count=10)

    assert keys.shape == (3, 10)
    assert keys[:, 0].tolist() == rows.tolist()
    np.testing.assert_allclose(similarities[:, 0], 1.0, atol=1e-5)
    assert (np.diff(similarities, axis=1) <= 0).all()


def test_tiny_benchmark_writes_a_report_of_measured_figures(tmp_path: Path) -> None:
    report = run_benchmark(
        CONFIG, tmp_path, compare_size=SIZE, scale_size=SIZE, libraries=("usearch-f16", "hnswlib")
    )

    assert json.loads((tmp_path / "report.json").read_text(encoding="utf-8")) == report
    assert "| usearch-f16 |" in (tmp_path / "report.md").read_text(encoding="utf-8")
    assert (tmp_path / "index-benchmark.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [path.name for path in tmp_path.iterdir() if path.is_dir()] == []
    libraries = report["compare"]["libraries"]
    assert libraries["usearch-f16"]["recall_at_k"] > 0.8
    assert libraries["hnswlib"]["recall_at_k"] > 0.8
    assert report["scale"]["recall_at_k"] > 0.8
    assert report["scale"]["index_file_mib"] > 0
    for row in (*libraries.values(), report["scale"]):
        assert row["build_seconds"] > 0
        assert 0 < row["latency_p50_ms"] <= row["latency_p99_ms"]
