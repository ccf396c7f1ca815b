"""Shared fixtures: a tiny randomly initialised BERT, a bundle trained from it, databases.

Training the bundle once per session keeps the suite fast; every test that needs
a real model bundle (training, evaluation, the API) uses this one.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
import torch
from rich.console import Console
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
from transformers import BertConfig, BertModel

from training.config import TrainConfig
from training.train import run_training

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "tickets.csv"
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
HEADS = ("queue", "priority", "type")


def build_tiny_base_model(folder: Path) -> Path:
    """A 2-layer BERT with random weights and a WordPiece tokenizer trained on the sample."""
    frame = pd.read_csv(SAMPLE)
    tokenizer = Tokenizer(models.WordPiece(unk_token="<unk>"))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordPieceTrainer(vocab_size=3000, special_tokens=SPECIALS)
    tokenizer.train_from_iterator(
        (frame["subject"].fillna("") + " " + frame["body"]).tolist(), trainer
    )
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        pad_token_id=1,
    )
    BertModel(config, add_pooling_layer=False).save_pretrained(folder)
    return folder


def tiny_config(root: Path, base: Path, name: str = "tiny") -> TrainConfig:
    return TrainConfig(
        data=[str(SAMPLE)],
        name=name,
        output_dir=root / "models",
        work_dir=root / "runs",
        base_model=str(base),
        cache_dir=root / "cache",
        quick=True,
        epochs=2,
        max_length=64,
        batch_size=16,
        int8_min_agreement=0.0,
        head_learning_rate=1e-2,
    )


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_base_model(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path) -> Path:
    root = tmp_path_factory.mktemp("run")
    return run_training(tiny_config(root, tiny_base), Console(quiet=True))


# Databases: every storage test runs on SQLite and on PostgreSQL (127.0.0.1:5432 here and in
# CI; another server through TRIAGE_TEST_POSTGRES_URL). Each test gets a fresh database.

POSTGRES_ADMIN_URL = os.environ.get(
    "TRIAGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _postgres_admin() -> Engine:
    engine = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        message = f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {exc.args[0]}"
        if os.environ.get("CI"):
            raise AssertionError(message) from exc
        pytest.skip(message)
    return engine


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    admin = _postgres_admin()
    name = f"triage_test_{os.getpid()}_{secrets.token_hex(4)}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'triage.db'}"
        return
    with fresh_postgres_database() as url:
        yield url
