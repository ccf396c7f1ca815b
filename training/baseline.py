"""The baseline every model must beat: word TF-IDF and logistic regression, one per head."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline

__all__ = ["fit_baseline"]


def fit_baseline(texts: Sequence[str], labels: np.ndarray, seed: int = 13) -> Pipeline:
    """Word uni- and bigrams, sub-linear TF-IDF, balanced logistic regression.

    ``labels`` are class indices with -1 for a missing label; those rows are skipped.
    """
    known = labels >= 0
    pipeline = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, lowercase=True),
        LogisticRegression(C=4.0, class_weight="balanced", max_iter=2000, random_state=seed),
    )
    return pipeline.fit([t for t, k in zip(texts, known, strict=True) if k], labels[known])
