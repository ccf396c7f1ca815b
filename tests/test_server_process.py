"""The real server process over real HTTP: start-up, batching, refusal of bad settings."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.conftest import HEADS, SAMPLE
from tests.servers import ROOT, free_port, running_server, server_environment


@pytest.fixture(scope="module")
def server(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("server-data")
    environment = server_environment(trained, free_port(), folder)
    with running_server(environment, folder / "server.log") as running:
        yield running.url


def metric(exposition: str, name: str) -> float:
    match = re.search(rf"^{name} ([0-9.e+]+)$", exposition, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_server_classifies_over_http(server: str) -> None:
    answer = httpx.post(f"{server}/v1/classify", json={"body": "Mein Laptop startet nicht mehr."})

    assert answer.status_code == 200
    assert answer.json()["language"] == "de"


def test_concurrent_requests_form_batches_and_match_single_results(server: str) -> None:
    frame = pd.read_csv(SAMPLE).fillna("").head(24)
    tickets = [
        {"subject": s, "body": b} for s, b in zip(frame["subject"], frame["body"], strict=True)
    ]

    async def concurrently() -> list[dict]:
        async with httpx.AsyncClient(base_url=server, timeout=30) as client:
            answers = await asyncio.gather(*(client.post("/v1/classify", json=t) for t in tickets))
        return [a.json() for a in answers]

    before = httpx.get(f"{server}/metrics").text
    together = asyncio.run(concurrently())
    after = httpx.get(f"{server}/metrics").text
    alone = [httpx.post(f"{server}/v1/classify", json=t).json() for t in tickets]

    batches = metric(after, "ticket_triage_batch_size_count") - metric(
        before, "ticket_triage_batch_size_count"
    )
    tickets_run = metric(after, "ticket_triage_batch_size_sum") - metric(
        before, "ticket_triage_batch_size_sum"
    )
    assert tickets_run == len(tickets)
    assert tickets_run / batches > 1
    for head in HEADS:
        assert [r[head]["label"] for r in together] == [r[head]["label"] for r in alone]
        assert [r[head]["probability"] for r in together] == pytest.approx(
            [r[head]["probability"] for r in alone], abs=1e-5
        )


def test_server_refuses_to_start_on_a_missing_bundle(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "service", "serve"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=server_environment(tmp_path / "missing", free_port(), tmp_path),
        timeout=60,
    )

    assert result.returncode == 2
    assert "expected a model bundle" in result.stderr


def test_server_refuses_a_bad_setting(trained: Path, tmp_path: Path) -> None:
    environment = {
        **server_environment(trained, free_port(), tmp_path),
        "TRIAGE_MAX_BATCH_SIZE": "0",
    }
    result = subprocess.run(
        [sys.executable, "-m", "service", "serve"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
    )

    assert result.returncode == 2
    assert "TRIAGE_MAX_BATCH_SIZE: expected 1..512, found 0" in result.stderr


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_classify_command_writes_predictions_next_to_each_row(
    trained: Path, tmp_path: Path, suffix: str
) -> None:
    frame = pd.read_csv(SAMPLE).fillna("").head(10)
    source = tmp_path / f"tickets{suffix}"
    {
        ".csv": lambda p: frame.to_csv(p, index=False),
        ".jsonl": lambda p: frame.to_json(p, orient="records", lines=True, force_ascii=False),
        ".parquet": lambda p: frame.to_parquet(p, index=False),
    }[suffix](source)
    output = tmp_path / f"predictions{suffix}"

    result = subprocess.run(
        [sys.executable, "-m", "service", "classify", str(source), "-o", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=server_environment(trained, free_port(), tmp_path),
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    written = {
        ".csv": pd.read_csv,
        ".jsonl": lambda p: pd.read_json(p, lines=True),
        ".parquet": pd.read_parquet,
    }[suffix](output)
    assert len(written) == 10
    assert written["body"].tolist() == frame["body"].tolist()
    for head in HEADS:
        assert written[f"predicted_{head}"].notna().all()
        assert written[f"{head}_probability"].between(0, 1).all()


def test_serving_imports_no_training_libraries() -> None:
    code = (
        "import sys, service.api.app, service.__main__; "
        "print(sorted(m for m in ('torch', 'transformers', 'optimum') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)

    assert result.stdout.strip() == "[]", result.stderr


def test_server_refuses_to_start_on_a_broken_bundle(trained: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"name": "half-written"')
    result = subprocess.run(
        [sys.executable, "-m", "service", "serve"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=server_environment(broken, free_port(), tmp_path),
        timeout=60,
    )

    assert result.returncode == 2
    assert "malformed bundle config" in result.stderr
