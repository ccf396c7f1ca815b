"""Temperature scaling and how well probabilities match observed accuracy."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy.optimize import minimize_scalar

from service.inference.bundle import softmax

__all__ = ["expected_calibration_error", "fit_temperature", "plot_reliability"]


def _negative_log_likelihood(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    probabilities = softmax(logits, temperature)
    return float(-np.mean(np.log(probabilities[np.arange(len(labels)), labels] + 1e-12)))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises validation log loss (searched on a log scale)."""
    known = labels >= 0
    logits, labels = logits[known], labels[known]
    if len(labels) == 0:
        return 1.0
    result = minimize_scalar(
        lambda log_t: _negative_log_likelihood(logits, labels, float(np.exp(log_t))),
        bounds=(-3.0, 3.0),
        method="bounded",
    )
    return float(np.exp(result.x))


def _bins(
    probabilities: np.ndarray, labels: np.ndarray, n_bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == labels).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1]), 0, n_bins - 1)
    counts = np.bincount(index, minlength=n_bins).astype(float)
    mean_confidence = np.bincount(index, confidence, n_bins) / np.maximum(counts, 1)
    accuracy = np.bincount(index, correct, n_bins) / np.maximum(counts, 1)
    return counts, mean_confidence, accuracy


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, n_bins: int = 15
) -> float:
    """Weighted gap between confidence and accuracy over equal-width confidence bins."""
    known = labels >= 0
    if not known.any():
        return 0.0
    counts, confidence, accuracy = _bins(probabilities[known], labels[known], n_bins)
    return float(np.sum(counts * np.abs(confidence - accuracy)) / counts.sum())


def plot_reliability(
    curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str, path: Path, n_bins: int = 15
) -> None:
    """Reliability diagram: accuracy against confidence, one line per (probabilities, labels)
    pair, e.g. before and after temperature scaling."""
    figure, axis = plt.subplots(figsize=(4.8, 4.4), dpi=110)
    axis.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="perfect")
    for name, (probabilities, labels) in curves.items():
        known = labels >= 0
        counts, confidence, accuracy = _bins(probabilities[known], labels[known], n_bins)
        used = counts > 0
        ece = expected_calibration_error(probabilities, labels, n_bins)
        axis.plot(
            confidence[used],
            accuracy[used],
            marker="o",
            markersize=3,
            label=f"{name} (ECE {ece:.3f})",
        )
    axis.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", title=title)
    axis.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
