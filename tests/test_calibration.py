"""Tests for temperature scaling, calibration error and the reliability diagram."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from service.inference.bundle import softmax
from training.calibration import expected_calibration_error, fit_temperature, plot_reliability


def sample_labels(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One label per row, drawn from that row's distribution."""
    cumulative = probabilities.cumsum(axis=1)
    draws = rng.random((len(probabilities), 1))
    return np.minimum((draws > cumulative).sum(axis=1), probabilities.shape[1] - 1)


def test_fit_temperature_recovers_the_generating_temperature() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(5000, 4))
    labels = sample_labels(softmax(logits, 2.0), rng)

    temperature = fit_temperature(logits, labels)

    assert abs(temperature - 2.0) < 0.25


def test_fit_temperature_ignores_missing_labels() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(scale=3.0, size=(4000, 4))
    labels = sample_labels(softmax(logits, 2.0), rng)
    with_missing = np.concatenate([labels, np.full(1000, -1)])
    extra_logits = np.concatenate([logits, rng.normal(scale=3.0, size=(1000, 4))])

    assert fit_temperature(extra_logits, with_missing) == fit_temperature(logits, labels)


def test_calibrated_probabilities_have_small_ece() -> None:
    rng = np.random.default_rng(2)
    probabilities = softmax(rng.normal(scale=2.0, size=(20000, 4)))
    labels = sample_labels(probabilities, rng)

    assert expected_calibration_error(probabilities, labels) < 0.03


def test_overconfident_probabilities_have_large_ece() -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(scale=2.0, size=(20000, 4))
    labels = sample_labels(softmax(logits), rng)

    assert expected_calibration_error(softmax(logits * 3.0), labels) > 0.1


def test_plot_reliability_writes_a_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    logits = rng.normal(scale=2.0, size=(500, 3))
    labels = sample_labels(softmax(logits), rng)
    path = tmp_path / "reliability.png"

    plot_reliability(
        {"before": (softmax(logits * 3.0), labels), "after": (softmax(logits), labels)},
        "queue",
        path,
    )

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 1000
