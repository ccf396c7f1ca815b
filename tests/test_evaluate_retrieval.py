"""The retrieval evaluation: its metrics on hand-made rankings, and one run on a real bundle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from training.evaluate_retrieval import (
    answer_gap_closed,
    main,
    queue_precision,
    reciprocal_rank_fusion,
    tag_overlap,
    verdict,
)


def test_queue_precision_counts_suggestions_with_the_query_queue() -> None:
    base_queues = ["billing", "billing", "network", "hr"]
    ranked = np.array([[0, 2, 1], [3, 2, 0]])
    # Top 2 of query 1 (billing): billing, network; of query 2 (network): hr, network.
    assert queue_precision(ranked, ["billing", "network"], base_queues, k=2) == 0.5
    assert queue_precision(ranked, ["billing", "network"], base_queues, k=3) == pytest.approx(
        (2 / 3 + 1 / 3) / 2
    )


def test_tag_overlap_is_mean_jaccard_over_tagged_queries_only() -> None:
    base_tags = [frozenset({"vpn", "network"}), frozenset({"invoice"}), frozenset()]
    ranked = np.array([[0, 1], [1, 2], [0, 2]])
    query_tags = [frozenset({"vpn"}), frozenset({"invoice", "refund"}), frozenset()]
    overlap, tagged = tag_overlap(ranked, query_tags, base_tags, k=2)
    assert tagged == 2
    # Query 1: J({vpn},{vpn,network}) = 1/2 and 0 -> 1/4; query 2: 1/2 and 0 -> 1/4.
    assert overlap == pytest.approx(0.25)


def test_answer_gap_closed_measures_the_way_from_random_to_best() -> None:
    top = np.array([0.9, 0.5, 0.7])
    random = np.array([0.5, 0.5, 0.7])
    best = np.array([0.9, 0.7, 0.7])  # the last query has no gap and is left out
    assert answer_gap_closed(top, random, best) == pytest.approx((1.0 + 0.0) / 2)


def test_reciprocal_rank_fusion_puts_agreement_first() -> None:
    dense = np.array([[4, 1, 2, 3]])
    lexical = np.array([[1, 3, 4, 0]])
    fused = reciprocal_rank_fusion([dense, lexical], depth=3)
    # Item 1 is 2nd and 1st, item 4 is 1st and 3rd: both ahead of items seen once.
    assert list(fused[0][:2]) == [1, 4]
    assert fused.shape == (1, 3)


def _scores(gap: float) -> dict[str, float]:
    return {"answer_gap_closed": gap, "queue_precision": 0.5}


def test_verdict_keeps_a_hybrid_only_when_it_wins_on_both_runs() -> None:
    same = {
        "bm25": _scores(0.2),
        "dense a": _scores(0.5),
        "hybrid a + bm25": _scores(0.6),
        "dense b": _scores(0.4),
        "hybrid b + bm25": _scores(0.45),
    }
    cross = {
        "de": {
            "bm25": _scores(0.0),
            "dense a": _scores(0.5),
            "hybrid a + bm25": _scores(0.3),
            "dense b": _scores(0.3),
            "hybrid b + bm25": _scores(0.35),
        }
    }
    outcome = verdict({"same_language": same, "cross_lingual": cross})
    assert outcome["hybrid_wins"] == {"a": False, "b": True}
    assert outcome["best"] == "dense a"  # (0.5 + 0.5) / 2 beats (0.6 + 0.3) / 2
    assert outcome["best_beats_bm25"] is True


def test_command_compares_methods_on_the_bundle_split(trained: Path, tmp_path: Path) -> None:
    output = tmp_path / "retrieval"
    code = main(["--model", str(trained), "--output", str(output), "--embedders", "base", "use"])
    assert code == 0
    metrics = json.loads((output / "metrics.json").read_text())
    methods = set(metrics["same_language"])
    assert methods == {
        "bm25",
        "dense base",
        "hybrid base + bm25",
        "dense use",
        "hybrid use + bm25",
    }
    for scores in metrics["same_language"].values():
        assert 0.0 <= scores["queue_precision"] <= 1.0
        assert scores["queries"] == metrics["queries"] > 0
        assert set(scores["gap_closed_by_judge"]) == {"e5-base", "use", "tf-idf"}
    assert metrics["knowledge_base"] > metrics["queries"]
    assert metrics["verdict"]["best"] in methods
    # The cross-lingual run asks only in other languages against the English tickets.
    assert metrics["cross_lingual_knowledge_base"] > 0
    assert set(metrics["cross_lingual"]) <= {"de", "es", "fr", "pt"}
    report = (output / "report.md").read_text()
    assert "dense use" in report and "Verdict" in report
    assert (output / "retrieval.png").stat().st_size > 10_000


def test_command_reports_a_folder_that_is_no_bundle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--model", str(tmp_path), "--output", str(tmp_path / "out")])
    assert code == 2
    assert "error:" in capsys.readouterr().err
