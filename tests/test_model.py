"""Tests for the triage network, the training helpers and the training settings."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel

from training.config import ConfigError, TrainConfig
from training.lexical import BIGRAM_BUCKETS, LexicalFeatures, LexicalHeads
from training.model import TriageModel
from training.train import choose_blend, class_weights, length_grouped_batches, pad_ids

LABEL_COUNTS = {"queue": 3, "priority": 2}
VOCAB_SIZE = 100
PAD_ID = 0


@pytest.fixture
def model() -> TriageModel:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    config._attn_implementation = "eager"
    encoder = BertModel(config, add_pooling_layer=False)
    return TriageModel(encoder, LABEL_COUNTS, frozen_layers=2).eval()


@pytest.fixture(scope="module")
def lexical() -> LexicalHeads:
    rng = np.random.default_rng(0)
    features = LexicalFeatures(
        lowercase=np.arange(VOCAB_SIZE, dtype=np.int64),
        idf=rng.uniform(0.5, 2.0, VOCAB_SIZE + BIGRAM_BUCKETS).astype(np.float32),
    )
    weights = rng.normal(size=(features.size, sum(LABEL_COUNTS.values()))).astype(np.float32)
    return LexicalHeads(features, weights, rng.normal(size=5).astype(np.float32))


def batch(*rows: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    return pad_ids([np.array(row, dtype=np.int64) for row in rows], PAD_ID)


SHORT = [1, 17, 23, 23, 42, 2]
LONG = [1, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 2]


def test_upper_of_lower_gives_the_forward_logits(model: TriageModel) -> None:
    ids, mask = batch(SHORT, LONG)

    with torch.no_grad():
        *head_logits, _ = model(ids, mask)
        split_logits, _ = model.upper(model.lower(ids, mask), mask)

    for whole, split in zip(head_logits, split_logits, strict=True):
        torch.testing.assert_close(whole, split)


def test_embedding_is_unit_length(model: TriageModel) -> None:
    ids, mask = batch(SHORT, LONG)

    with torch.no_grad():
        embedding = model(ids, mask)[-1]

    torch.testing.assert_close(embedding.norm(dim=-1), torch.ones(2))


def test_outputs_do_not_depend_on_padding(model: TriageModel) -> None:
    with torch.no_grad():
        alone = model(*batch(SHORT))
        padded = model(*batch(SHORT, LONG))

    for single, in_batch in zip(alone, padded, strict=True):
        torch.testing.assert_close(single[0], in_batch[0], atol=1e-5, rtol=0)


def test_lexical_weight_selects_lexical_or_encoder_log_probabilities(
    model: TriageModel, lexical: LexicalHeads
) -> None:
    ids, mask = batch(SHORT, LONG)
    model.attach_lexical(lexical, {"queue": 1.0, "priority": 0.0})

    with torch.no_grad():
        queue, priority, _ = model(ids, mask)
        lexical_logits = lexical(ids, mask)
        encoder_logits, _ = model.upper(model.lower(ids, mask), mask)

    torch.testing.assert_close(queue, torch.log_softmax(lexical_logits[:, :3], dim=-1))
    torch.testing.assert_close(priority, torch.log_softmax(encoder_logits[1], dim=-1))


@pytest.mark.parametrize("shuffle", [True, False])
def test_length_grouped_batches_cover_every_index_once_sorted_within(shuffle: bool) -> None:
    rng = np.random.default_rng(3)
    lengths = rng.integers(5, 200, size=523).tolist()

    batches = length_grouped_batches(lengths, 4, rng, shuffle=shuffle)

    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    assert all(len(b) <= 4 for b in batches)
    for indices in batches:
        batch_lengths = [lengths[i] for i in indices]
        assert batch_lengths == sorted(batch_lengths)


def test_balanced_class_weights_equalise_weight_times_count() -> None:
    labels = np.array([0] * 40 + [1] * 10 + [2] * 5 + [-100] * 7)

    weights = class_weights(labels, 3, power=1.0).numpy()

    totals = weights * np.array([40, 10, 5])
    np.testing.assert_allclose(totals, totals[0], rtol=1e-6)


def test_class_weight_power_zero_gives_ones() -> None:
    labels = np.array([0] * 40 + [1] * 10 + [2] * 5)

    weights = class_weights(labels, 3, power=0.0)

    torch.testing.assert_close(weights, torch.ones(3))


@pytest.mark.parametrize(("lexical_informative", "expected_weight"), [(False, 0.0), (True, 1.0)])
def test_choose_blend_picks_the_informative_model(
    lexical_informative: bool, expected_weight: float
) -> None:
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 3, size=300)
    perfect = np.eye(3)[labels]
    # Noise large enough that any share of it outweighs the informative model's margin.
    noise = rng.normal(scale=100.0, size=(300, 3))
    encoder, lexical = (noise, perfect) if lexical_informative else (perfect, noise)

    weights, table = choose_blend({"queue": encoder}, {"queue": lexical}, {"queue": labels})

    assert weights == {"queue": expected_weight}
    assert table["queue"]["blend"] == 1.0


@pytest.mark.parametrize(
    ("setting", "fragments"),
    [
        ({"device": "gpu"}, ["device", "'auto'", "'cpu'", "'cuda'", "'gpu'"]),
        ({"max_length": 4}, ["max_length", "8..512", "4"]),
        ({"max_length": 1024}, ["max_length", "8..512", "1024"]),
        ({"heads": ["queue", "queue"]}, ["heads", "distinct"]),
        ({"precision": "int4"}, ["precision", "'bf16'", "'int4'"]),
    ],
)
def test_invalid_setting_names_the_setting_and_valid_values(
    setting: dict[str, Any], fragments: list[str]
) -> None:
    with pytest.raises(ConfigError) as error:
        TrainConfig(**setting)

    assert all(fragment in str(error.value) for fragment in fragments)
