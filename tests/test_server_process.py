"""The real server process over real HTTP: start-up, batching, refusal of bad settings."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.conftest import HEADS, SAMPLE

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_environment(bundle: Path, port: int, data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "TRIAGE_MODEL_DIR": str(bundle),
        "TRIAGE_DATA_DIR": str(data_dir),
        "TRIAGE_PORT": str(port),
        "TRIAGE_PROVIDER": "cpu",
        "TRIAGE_MODEL_VARIANT": "fp32",
        "TRIAGE_MAX_BATCH_WAIT_MS": "100",
        "TRIAGE_LOG_LEVEL": "WARNING",
    }


@pytest.fixture(scope="module")
def server(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "serve"],
        cwd=ROOT,
        env=server_environment(trained, port, tmp_path_factory.mktemp("server-data")),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, "the server exited during start-up"
            time.sleep(0.2)
        else:
            raise AssertionError("the server was not ready within 60 s")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


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
