"""The retrieval encoder: the untouched base model exported into each bundle for similar tickets."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel

from service.inference.bundle import BundleError, ModelBundle, pad_id_of, pad_token_ids
from service.knowledge.embedders import BaseEncoderEmbedder, make_embedder
from training.export import main as export_main
from training.model import mean_pool

TEXTS = ["printer broken on the third floor", "Rechnung doppelt bezahlt, bitte erstatten"]


def test_it_embeds_as_the_base_model_does_before_fine_tuning(
    trained: Path, tiny_base: Path
) -> None:
    bundle = ModelBundle.load(trained)
    assert bundle.retrieval_encoder is not None
    vectors = BaseEncoderEmbedder(bundle, provider="cpu").embed([None, None], TEXTS)

    tokenizer = bundle.tokenizer()
    ids, mask = pad_token_ids(
        [e.ids for e in tokenizer.encode_batch([bundle.text_prefix + t for t in TEXTS])],
        pad_id_of(tokenizer),
    )
    encoder = AutoModel.from_pretrained(tiny_base, add_pooling_layer=False).eval()
    with torch.no_grad():
        hidden = encoder(
            input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)
        ).last_hidden_state
        expected = torch.nn.functional.normalize(mean_pool(hidden, torch.from_numpy(mask)), dim=-1)

    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.einsum("nd,nd->n", vectors, expected.numpy()).min() > 0.98
    assert "retrieval.int8.onnx" in (trained / "MODEL_CARD.md").read_text()


def _copy(trained: Path, folder: Path, **changes: object) -> Path:
    shutil.copytree(trained, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_a_retrained_bundle_of_the_same_base_keeps_the_vectors(
    trained: Path, tmp_path: Path
) -> None:
    retrained = ModelBundle.load(_copy(trained, tmp_path / "b", version="2099.01.01-000000"))
    original = ModelBundle.load(trained)

    assert BaseEncoderEmbedder(retrained).identity == BaseEncoderEmbedder(original).identity
    # The fine-tuned embedding, by contrast, changes with every version.
    assert make_embedder("bundle", retrained).identity != make_embedder("bundle", original).identity


def test_a_bundle_without_one_gets_a_clear_error_and_the_command_to_add_it(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _copy(trained, tmp_path / "old")
    config = json.loads((folder / "config.json").read_text())
    digest = config.pop("retrieval_encoder")["digest"]
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "retrieval.int8.onnx").unlink()

    with pytest.raises(BundleError, match=re.escape("python -m training.export --model")):
        make_embedder("base", ModelBundle.load(folder))

    assert export_main(["--model", str(folder)]) == 0
    added = ModelBundle.load(folder).retrieval_encoder
    assert added is not None and added["digest"] == digest
    assert BaseEncoderEmbedder(ModelBundle.load(folder)).embed([None], TEXTS[:1]).shape[0] == 1


def test_a_bundle_naming_a_missing_retrieval_file_does_not_load(
    trained: Path, tmp_path: Path
) -> None:
    folder = _copy(trained, tmp_path / "broken")
    (folder / "retrieval.int8.onnx").unlink()

    with pytest.raises(BundleError, match=re.escape("retrieval.int8.onnx")):
        ModelBundle.load(folder)
