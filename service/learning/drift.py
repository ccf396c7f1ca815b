"""Drift watch: are the labels the model predicts now distributed as in its training data?

Per head, the population stability index (PSI) compares the share of each label among
recent predictions with its share in the bundle's training split; by the usual reading,
under 0.1 is stable, 0.1 to 0.2 a shift worth watching, over 0.2 a shift that needs a look
(new kinds of tickets, a changed intake, or a model that no longer fits). Mean confidence
per time bucket shows the same from the model's side: it falls when tickets stop looking
like those it learnt from. ``drift_report`` gives both, per bucket, with an alert when the
PSI of the whole window passes ``threshold``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from service.inference.bundle import bundle_record
from service.learning.predictions import PredictionRecord

__all__ = ["drift_report", "population_stability", "recorded_confidence", "training_distribution"]

# Shares are floored at this before the logarithm, so that an unseen label counts but
# does not make the index infinite.
_FLOOR = 1e-4


def training_distribution(bundle_dir: Path) -> dict[str, dict[str, int]]:
    """Head -> label -> count in the bundle's training split (``data_statistics.json``)."""
    train = (
        bundle_record(bundle_dir, "data_statistics.json").get("distribution", {}).get("train", {})
    )
    return {head: dict(counts) for head, counts in train.items() if head != "language"}


def recorded_confidence(bundle_dir: Path) -> dict[str, float]:
    """Head -> mean calibrated top probability on the bundle's test split, if recorded."""
    calibration = bundle_record(bundle_dir, "metrics.json").get("calibration", {})
    return {
        head: float(values["mean_confidence"])
        for head, values in calibration.items()
        if "mean_confidence" in values
    }


def population_stability(expected: Mapping[str, float], observed: Mapping[str, float]) -> float:
    """PSI = sum over labels of (observed - expected) * ln(observed / expected), on shares."""
    expected_total = sum(expected.values()) or 1.0
    observed_total = sum(observed.values()) or 1.0
    index = 0.0
    for label in set(expected) | set(observed):
        e = max(expected.get(label, 0.0) / expected_total, _FLOOR)
        o = max(observed.get(label, 0.0) / observed_total, _FLOOR)
        index += (o - e) * math.log(o / e)
    return index


def drift_report(
    predictions: Sequence[PredictionRecord],
    training: Mapping[str, Mapping[str, int]],
    start: datetime,
    end: datetime,
    bucket: timedelta,
    threshold: float,
    min_predictions: int = 100,
    reference_confidence: Mapping[str, float] | None = None,
    confidence_drop: float = 0.1,
) -> dict[str, Any]:
    """PSI and confidence per bucket and over the window; alerts only from ``min_predictions``
    on, since the index of a handful of tickets is noise."""
    heads = sorted(training)
    buckets: list[dict[str, Any]] = []
    moment = start
    while moment < end:
        inside = [p for p in predictions if moment <= p.created_at < moment + bucket]
        buckets.append(_bucket(inside, training, heads, moment))
        moment += bucket
    overall = _bucket(list(predictions), training, heads, start)
    enough = len(predictions) >= min_predictions
    alerts = [
        f"{head}: PSI {overall['psi'][head]:.3f} over the window passes {threshold:g}"
        for head in heads
        if enough and overall["psi"].get(head) is not None and overall["psi"][head] > threshold
    ]
    reference = dict(reference_confidence or {})
    for head, expected in sorted(reference.items()):
        live = overall["confidence"].get(head)
        if enough and live is not None and expected - live > confidence_drop:
            alerts.append(
                f"{head}: mean confidence {live:.3f} is {expected - live:.3f} below the "
                f"{expected:.3f} of the test split"
            )
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "bucket_seconds": bucket.total_seconds(),
        "threshold": threshold,
        "predictions": len(predictions),
        "window": overall,
        "buckets": buckets,
        "alerts": alerts,
        "drifting": bool(alerts),
        "judged": enough,
        "note": None
        if enough
        else f"too few predictions to judge drift ({len(predictions)} < {min_predictions})",
        "test_confidence": reference,
        "training_shares": {
            head: {label: round(n / (sum(c.values()) or 1), 4) for label, n in c.items()}
            for head, c in training.items()
        },
    }


def _bucket(
    predictions: Sequence[PredictionRecord],
    training: Mapping[str, Mapping[str, int]],
    heads: Sequence[str],
    start: datetime,
) -> dict[str, Any]:
    counts: dict[str, Counter[str]] = {
        head: Counter(p.labels[head] for p in predictions if head in p.labels) for head in heads
    }
    confidences = [
        sum(p.probabilities.values()) / len(p.probabilities) for p in predictions if p.probabilities
    ]
    per_head = {
        head: [p.probabilities[head] for p in predictions if head in p.probabilities]
        for head in heads
    }
    return {
        "start": start.isoformat(),
        "predictions": len(predictions),
        "mean_confidence": round(sum(confidences) / len(confidences), 4) if confidences else None,
        "confidence": {
            head: round(sum(values) / len(values), 4) if values else None
            for head, values in per_head.items()
        },
        "needs_review_share": (
            round(sum(p.needs_review for p in predictions) / len(predictions), 4)
            if predictions
            else None
        ),
        "psi": {
            head: round(population_stability(training[head], counts[head]), 4)
            if counts[head]
            else None
            for head in heads
        },
        "labels": {head: dict(counts[head].most_common()) for head in heads},
    }
