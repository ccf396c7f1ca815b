"""Tests for the sub-word TF-IDF model and its in-graph PyTorch twin."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import sparse
from sklearn.metrics import f1_score
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

from training.lexical import LexicalFeatures, LexicalHeads, fit_lexical_heads, lowercase_table
from training.train import pad_ids

SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]

# Three queues, each with its own words; "Printer" and "printer" both occur.
QUEUE_SENTENCES = {
    0: [
        "the printer is jammed again",
        "Printer shows error on floor three",
        "printer toner is empty",
        "the printer prints blank pages",
        "printer driver crashed",
        "Printer paper tray is stuck",
        "the printer makes a loud noise",
        "printer queue is stuck again",
        "new printer toner please",
        "printer offline since monday",
        "Printer jammed with paper",
        "printer cannot find the toner",
        "the printer is offline",
        "printer error on every page",
        "replace the printer drum",
        "printer driver update failed",
        "Printer pages come out blank",
    ],
    1: [
        "the invoice was charged twice",
        "Invoice amount is wrong",
        "refund my invoice please",
        "invoice payment failed at the bank",
        "the invoice shows a wrong tax",
        "Invoice for march is missing",
        "card payment for the invoice failed",
        "please send the invoice again",
        "invoice refund is late",
        "the invoice total is wrong",
        "Invoice charged to the wrong card",
        "invoice tax number missing",
        "duplicate invoice payment",
        "invoice discount not applied",
        "the invoice bank fee",
        "Invoice refund never arrived",
        "invoice payment is pending",
    ],
    2: [
        "the vpn drops every hour",
        "Vpn tunnel will not connect",
        "vpn login fails at home",
        "the vpn is very slow",
        "vpn certificate expired",
        "Vpn disconnects on wifi",
        "vpn gateway unreachable",
        "cannot reach the vpn server",
        "vpn client crashed",
        "the vpn keeps asking for login",
        "Vpn tunnel drops again",
        "vpn is slow since monday",
        "the vpn gateway times out",
        "vpn connection refused",
        "Vpn client will not start",
        "vpn drops during calls",
        "vpn certificate warning",
    ],
}


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    sentences = [s for group in QUEUE_SENTENCES.values() for s in group]
    trainer = trainers.WordLevelTrainer(special_tokens=SPECIAL_TOKENS)
    tokenizer.train_from_iterator(sentences, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        special_tokens=[(token, tokenizer.token_to_id(token)) for token in ("<s>", "</s>")],
    )
    return tokenizer


def encode(tokenizer: Tokenizer, texts: list[str]) -> list[np.ndarray]:
    return [np.array(e.ids, dtype=np.int64) for e in tokenizer.encode_batch(texts)]


def special_ids(tokenizer: Tokenizer) -> list[int]:
    return [tokenizer.token_to_id(token) for token in SPECIAL_TOKENS]


def fit_features(tokenizer: Tokenizer, texts: list[str], min_df: int = 2) -> LexicalFeatures:
    return LexicalFeatures.fit(
        encode(tokenizer, texts), lowercase_table(tokenizer), special_ids(tokenizer), min_df=min_df
    )


def test_lowercase_table_maps_capitalised_piece_to_lower_case_id(tokenizer: Tokenizer) -> None:
    table = lowercase_table(tokenizer)

    assert table[tokenizer.token_to_id("Printer")] == tokenizer.token_to_id("printer")
    assert table[tokenizer.token_to_id("printer")] == tokenizer.token_to_id("printer")


def test_transformed_rows_are_unit_length(tokenizer: Tokenizer) -> None:
    texts = QUEUE_SENTENCES[0]
    features = fit_features(tokenizer, texts)

    matrix = features.transform(encode(tokenizer, texts))

    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1))).ravel()
    np.testing.assert_allclose(norms, 1.0, atol=1e-6)


def test_features_below_min_df_get_zero_weight(tokenizer: Tokenizer) -> None:
    texts = ["printer toner is empty", "printer toner is low", "the invoice was charged twice"]
    features = fit_features(tokenizer, texts, min_df=2)
    invoice = features.lowercase[tokenizer.token_to_id("invoice")]
    toner = features.lowercase[tokenizer.token_to_id("toner")]

    matrix = features.transform(encode(tokenizer, texts)).toarray()

    assert features.idf[invoice] == 0.0
    assert not matrix[:, invoice].any()
    assert features.idf[toner] > 0.0
    assert matrix[0, toner] > 0.0


def test_lexical_heads_match_sparse_features_on_a_padded_batch(tokenizer: Tokenizer) -> None:
    texts = [s for group in QUEUE_SENTENCES.values() for s in group]
    features = fit_features(tokenizer, texts)
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(features.size, 5)).astype(np.float32)
    bias = rng.normal(size=5).astype(np.float32)
    batch = encode(
        tokenizer,
        [
            "printer",
            "the printer printer printer is jammed jammed again",
            "Vpn vpn VPN tunnel drops the vpn tunnel drops",
            "the invoice was charged twice and the invoice was charged twice",
        ],
    )
    ids, mask = pad_ids(batch, pad_id=tokenizer.token_to_id("<pad>"))

    expected = np.asarray(features.transform(batch) @ weights + bias)
    with torch.no_grad():
        actual = LexicalHeads(features, weights, bias)(ids, mask).numpy()

    np.testing.assert_allclose(actual, expected, atol=1e-5)


def split_features(
    tokenizer: Tokenizer, features: LexicalFeatures
) -> tuple[sparse.csr_matrix, sparse.csr_matrix, np.ndarray, np.ndarray]:
    """Train on the first 12 sentences of each queue, validate on the last 5."""
    train = [(s, q) for q, group in QUEUE_SENTENCES.items() for s in group[:12]]
    validation = [(s, q) for q, group in QUEUE_SENTENCES.items() for s in group[12:]]
    return (
        features.transform(encode(tokenizer, [s for s, _ in train])),
        features.transform(encode(tokenizer, [s for s, _ in validation])),
        np.array([q for _, q in train]),
        np.array([q for _, q in validation]),
    )


def test_fit_lexical_heads_separates_separable_queues(tokenizer: Tokenizer) -> None:
    features = fit_features(tokenizer, [s for g in QUEUE_SENTENCES.values() for s in g[:12]])
    train_x, validation_x, train_y, validation_y = split_features(tokenizer, features)
    # A second, two-class head: is the ticket about the printer queue or not.
    labels = {"queue": train_y, "printer": (train_y == 0).astype(int)}
    validation_labels = {"queue": validation_y, "printer": (validation_y == 0).astype(int)}

    weights, bias, chosen = fit_lexical_heads(
        train_x, validation_x, labels, validation_labels, {"queue": 3, "printer": 2}
    )

    logits = np.asarray(validation_x @ weights + bias)
    assert weights.shape == (features.size, 5)
    assert bias.shape == (5,)
    assert set(chosen) == {"queue", "printer"}
    assert f1_score(validation_y, logits[:, :3].argmax(1), average="macro") == 1.0
    assert f1_score(validation_labels["printer"], logits[:, 3:].argmax(1), average="macro") == 1.0
