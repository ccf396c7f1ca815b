"""A lexical model over the encoder's own sub-word tokens, small enough to live in the ONNX graph.

Words that name a product or a department often decide the queue more than the
meaning of the whole ticket does; TF-IDF with a linear classifier catches them
well. Computing the features from ``input_ids`` (lower-cased unigrams plus
hashed bigrams, sub-linear TF-IDF, L2-normalised) means the same features can
be computed in NumPy for fitting with scikit-learn and in PyTorch, and hence in
the exported graph, for serving: one graph still maps token ids to every output.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from tokenizers import Tokenizer
from torch import nn

__all__ = ["LexicalFeatures", "LexicalHeads", "fit_lexical_heads", "lowercase_table"]

logger = logging.getLogger(__name__)

BIGRAM_BUCKETS = 1 << 18
_BIGRAM_MULTIPLIER = 1_000_003


def lowercase_table(tokenizer: Tokenizer) -> np.ndarray:
    """For each token id, the id of its lower-cased spelling where the vocabulary has one."""
    vocabulary = tokenizer.get_vocab()
    table = np.arange(tokenizer.get_vocab_size(), dtype=np.int64)
    for piece, index in vocabulary.items():
        lowered = vocabulary.get(piece.lower())
        if lowered is not None:
            table[index] = lowered
    return table


@dataclass
class LexicalFeatures:
    """Feature ids and IDF weights; feature ``v < vocab`` is a unigram, the rest hashed bigrams."""

    lowercase: np.ndarray  # (V,) int64
    idf: np.ndarray  # (V + BIGRAM_BUCKETS,) float32, 0 for features that are ignored

    @property
    def vocab_size(self) -> int:
        return len(self.lowercase)

    @property
    def size(self) -> int:
        return len(self.idf)

    @staticmethod
    def feature_ids(ids: np.ndarray, lowercase: np.ndarray) -> np.ndarray:
        """Unigram and hashed-bigram feature ids of one ticket's token ids."""
        lowered = lowercase[ids]
        bigrams = (
            len(lowercase) + (lowered[:-1] * _BIGRAM_MULTIPLIER + lowered[1:]) % BIGRAM_BUCKETS
        )
        return np.concatenate([lowered, bigrams])

    @classmethod
    def fit(
        cls,
        token_ids: Sequence[np.ndarray],
        lowercase: np.ndarray,
        special_ids: Sequence[int],
        min_df: int = 2,
    ) -> LexicalFeatures:
        """Learn IDF weights from the training tickets' token ids."""
        size = len(lowercase) + BIGRAM_BUCKETS
        document_frequency = np.zeros(size, dtype=np.int64)
        for ids in token_ids:
            document_frequency[np.unique(cls.feature_ids(ids, lowercase))] += 1
        n = len(token_ids)
        idf = (np.log((1 + n) / (1 + document_frequency)) + 1).astype(np.float32)
        idf[document_frequency < min_df] = 0.0
        idf[lowercase[list(special_ids)]] = 0.0
        return cls(lowercase=lowercase, idf=idf)

    def transform(self, token_ids: Sequence[np.ndarray]) -> sparse.csr_matrix:
        """Sub-linear TF-IDF rows, L2-normalised; matches ``LexicalHeads`` exactly."""
        rows, columns, values = [], [], []
        for row, ids in enumerate(token_ids):
            features, counts = np.unique(self.feature_ids(ids, self.lowercase), return_counts=True)
            weights = (1 + np.log(counts)) * self.idf[features]
            keep = weights > 0
            norm = np.sqrt(np.sum(weights[keep] ** 2)) or 1.0
            rows.append(np.full(int(keep.sum()), row))
            columns.append(features[keep])
            values.append(weights[keep] / norm)
        return sparse.csr_matrix(
            (np.concatenate(values), (np.concatenate(rows), np.concatenate(columns))),
            shape=(len(token_ids), self.size),
            dtype=np.float32,
        )


class LexicalHeads(nn.Module):
    """Linear heads over TF-IDF features computed from ``input_ids`` inside the graph."""

    def __init__(self, features: LexicalFeatures, weights: np.ndarray, bias: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("lowercase", torch.from_numpy(features.lowercase))
        self.register_buffer("idf", torch.from_numpy(features.idf))
        self.table = nn.Embedding.from_pretrained(torch.from_numpy(weights.astype(np.float32)))
        self.bias = nn.Parameter(torch.from_numpy(bias.astype(np.float32)), requires_grad=False)
        self.vocab_size = features.vocab_size
        self.lowercase: torch.Tensor
        self.idf: torch.Tensor

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        lowered = self.lowercase[input_ids]  # (B, T)
        valid = attention_mask.bool()
        bigrams = self.vocab_size + torch.remainder(
            lowered[:, :-1] * _BIGRAM_MULTIPLIER + lowered[:, 1:], BIGRAM_BUCKETS
        )
        features = torch.cat([lowered, bigrams], dim=1)  # (B, F) with F = 2T - 1
        present = torch.cat([valid, valid[:, :-1] & valid[:, 1:]], dim=1)
        idf = self.idf[features] * present.to(self.idf.dtype)  # (B, F)

        # Each position of a feature repeated c times carries 1/c of its weight.
        same = (features.unsqueeze(2) == features.unsqueeze(1)) & present.unsqueeze(1)  # (B, F, F)
        counts = same.sum(dim=2).clamp(min=1).to(idf.dtype)  # (B, F)
        weights = (1 + torch.log(counts)) * idf  # (B, F) TF-IDF of the feature at each position
        norm = torch.sqrt((weights.square() / counts).sum(dim=1, keepdim=True)).clamp(min=1e-12)
        share = (weights / counts / norm).unsqueeze(2)  # (B, F, 1)
        return (share * self.table(features)).sum(dim=1) + self.bias  # (B, C)


def fit_lexical_heads(
    train_x: sparse.csr_matrix,
    validation_x: sparse.csr_matrix,
    train_labels: Mapping[str, np.ndarray],
    validation_labels: Mapping[str, np.ndarray],
    label_counts: Mapping[str, int],
    regularisation: Sequence[float] = (1.0, 4.0, 16.0),
    seed: int = 13,
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """One balanced logistic regression per head, C chosen by validation macro-F1.

    Returns the stacked weight table (features x all heads' classes), the
    stacked biases, and the chosen C per head. Labels are class indices, -1 for
    a missing label.
    """
    weight_blocks, bias_blocks, chosen = [], [], {}
    # Fitting only the columns that occur keeps the optimiser's state small and fast.
    active = np.flatnonzero(train_x.getnnz(axis=0))
    for head, n_classes in label_counts.items():
        y, y_val = train_labels[head], validation_labels[head]
        best: tuple[float, LogisticRegression] | None = None
        for c in regularisation:
            model = LogisticRegression(
                C=c, class_weight="balanced", max_iter=1000, random_state=seed
            ).fit(train_x[y >= 0][:, active], y[y >= 0])
            predicted = model.predict(validation_x[y_val >= 0][:, active])
            score = f1_score(y_val[y_val >= 0], predicted, average="macro")
            if best is None or score > best[0]:
                best = (score, model)
        assert best is not None
        score, model = best
        weights = np.zeros((train_x.shape[1], n_classes), dtype=np.float32)
        bias = np.zeros(n_classes, dtype=np.float32)
        classes = model.classes_.astype(int)
        if n_classes == 2 or len(classes) == 2:
            # scikit-learn stores one column for two classes: logit(1) - logit(0).
            weights[active, classes[1]] = model.coef_[0]
            bias[classes[1]] = model.intercept_[0]
        else:
            weights[np.ix_(active, classes)] = model.coef_.T
            bias[classes] = model.intercept_
        weight_blocks.append(weights)
        bias_blocks.append(bias)
        chosen[head] = float(model.C)
        logger.info("lexical %s head: C=%s, validation macro-F1 %.3f", head, model.C, score)
    return np.concatenate(weight_blocks, axis=1), np.concatenate(bias_blocks), chosen
