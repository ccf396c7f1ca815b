"""The HTTP API through Litestar's test client, on a real (tiny) model bundle."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from litestar.testing import TestClient

from service.api.app import create_app
from service.inference.bundle import ModelBundle, TriageRuntime
from service.settings import AuthSettings, Settings
from tests.conftest import HEADS, SAMPLE
from training.evaluate import predict_labels

TICKET = {"subject": "VPN down", "body": "The VPN drops every five minutes since this morning."}


def settings_for(bundle: Path, data_dir: Path, **overrides: Any) -> Settings:
    """Settings for a test app; authentication is off unless ``auth`` says otherwise
    (tests/test_access.py covers it)."""
    overrides.setdefault("auth", AuthSettings(enabled=False))
    return Settings(
        model_dir=bundle, data_dir=data_dir, provider="cpu", model_variant="fp32", **overrides
    )


def wait_ready(client: TestClient[Any], timeout_s: float = 120.0) -> None:
    """Until the model and the knowledge base are up; generous, for a loaded CI machine."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if client.get("/ready").status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError(f"the service was not ready after {timeout_s:.0f} s")


@pytest.fixture
def client(trained: Path, tmp_path: Path) -> Iterator[TestClient[Any]]:
    settings = settings_for(trained, tmp_path, max_batch_request=4)
    with TestClient(create_app(settings)) as test_client:
        wait_ready(test_client)
        yield test_client


def test_classify_answers_every_head_with_calibrated_alternatives(
    client: TestClient[Any], trained: Path
) -> None:
    answer = client.post("/v1/classify", json=TICKET).json()

    labels = ModelBundle.load(trained).heads
    for head in HEADS:
        assert answer[head]["label"] in labels[head]
        assert len(answer[head]["alternatives"]) == 2
        total = answer[head]["probability"] + sum(
            a["probability"] for a in answer[head]["alternatives"]
        )
        assert total <= 1.0 + 1e-5  # each probability is rounded to 6 decimals
    assert answer["language"] == "en" and answer["language_detected"] is True
    assert answer["model"]["name"] == "tiny"
    assert "other_heads" not in answer


def test_given_language_is_kept(client: TestClient[Any]) -> None:
    answer = client.post("/v1/classify", json={**TICKET, "language": "de"}).json()

    assert answer["language"] == "de" and answer["language_detected"] is False


def test_batch_answers_in_order_and_equals_single_calls(client: TestClient[Any]) -> None:
    tickets = [TICKET, {"body": "Meine Rechnung ist doppelt abgebucht worden."}, {"body": "Hola"}]

    batch = client.post("/v1/classify/batch", json={"tickets": tickets}).json()["results"]
    singles = [client.post("/v1/classify", json=t).json() for t in tickets]

    for together, alone in zip(batch, singles, strict=True):
        for head in HEADS:
            assert together[head]["label"] == alone[head]["label"]
            assert together[head]["probability"] == pytest.approx(
                alone[head]["probability"], abs=1e-5
            )


def test_api_predictions_equal_the_evaluation_command(
    client: TestClient[Any], trained: Path
) -> None:
    frame = pd.read_csv(SAMPLE).fillna("").head(12)
    runtime = TriageRuntime(ModelBundle.load(trained), "fp32", provider="cpu")
    expected, _ = predict_labels(runtime, frame)

    tickets = [
        {"subject": s, "body": b} for s, b in zip(frame["subject"], frame["body"], strict=True)
    ]
    results = client.post("/v1/classify/batch", json={"tickets": tickets[:4]}).json()["results"]
    results += client.post("/v1/classify/batch", json={"tickets": tickets[4:8]}).json()["results"]
    results += client.post("/v1/classify/batch", json={"tickets": tickets[8:]}).json()["results"]

    for head in HEADS:
        assert [r[head]["label"] for r in results] == expected[head]


def test_models_endpoint_describes_the_loaded_bundle(
    client: TestClient[Any], trained: Path
) -> None:
    described = client.get("/v1/models").json()

    assert described["name"] == "tiny"
    assert described["heads"] == ModelBundle.load(trained).heads
    assert set(described["test_metrics"]) == set(HEADS)


def test_reload_swaps_in_a_bundle(client: TestClient[Any], trained: Path) -> None:
    answer = client.post("/v1/models/reload", json={"model_dir": str(trained)})

    assert answer.status_code == 200
    assert client.post("/v1/classify", json=TICKET).status_code == 200


def test_reload_of_a_missing_bundle_is_refused_and_the_old_model_stays(
    client: TestClient[Any], tmp_path: Path
) -> None:
    answer = client.post("/v1/models/reload", json={"model_dir": str(tmp_path / "nope")})

    assert answer.status_code == 422
    assert "previous model stays" in answer.json()["detail"]
    assert client.post("/v1/classify", json=TICKET).status_code == 200


def test_health_ready_and_metrics(client: TestClient[Any]) -> None:
    client.post("/v1/classify", json=TICKET)

    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"status": "ready"}
    exposition = client.get("/metrics").text
    assert "ticket_triage_batch_size_count" in exposition
    assert 'ticket_triage_predictions_total{head="queue"' in exposition


def test_openapi_schema_lists_every_endpoint_with_an_example(client: TestClient[Any]) -> None:
    schema = client.get("/docs/openapi.json").json()

    assert {
        "/v1/classify",
        "/v1/classify/batch",
        "/v1/models",
        "/v1/models/reload",
        "/health",
        "/ready",
    } <= set(schema["paths"])
    assert "examples" in json.dumps(schema["components"]["schemas"]["TicketRequest"])


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"subject": "no body"}, "body"),
        ({"body": ""}, "body"),
        ({"body": "   "}, "only whitespace"),
        ({"body": 42}, "body"),
        ({"body": "ok", "priority": "high"}, "priority"),
        ({"body": "ok", "language": "English"}, "language"),
        ({"body": "x" * 20_001}, "at most 20000 characters"),
    ],
)
def test_bad_tickets_get_400_with_a_reason(
    client: TestClient[Any], payload: dict[str, Any], fragment: str
) -> None:
    answer = client.post("/v1/classify", json=payload)

    assert answer.status_code == 400
    assert fragment in json.dumps(answer.json())


def test_invalid_json_gets_400(client: TestClient[Any]) -> None:
    answer = client.post(
        "/v1/classify",
        content=b'{"body": "unterminated',
        headers={"Content-Type": "application/json"},
    )

    assert answer.status_code == 400


def test_too_many_tickets_in_a_batch_get_400(client: TestClient[Any]) -> None:
    answer = client.post("/v1/classify/batch", json={"tickets": [TICKET] * 5})

    assert answer.status_code == 400
    assert "at most 4 per call, found 5" in answer.json()["detail"]


def test_empty_batch_gets_400(client: TestClient[Any]) -> None:
    assert client.post("/v1/classify/batch", json={"tickets": []}).status_code == 400


def test_oversized_body_gets_413(trained: Path, tmp_path: Path) -> None:
    with TestClient(create_app(settings_for(trained, tmp_path, max_body_bytes=2048))) as small:
        answer = small.post("/v1/classify", json={"body": "y" * 4096})

    assert answer.status_code == 413


def test_full_queue_answers_503_with_retry_after(trained: Path, tmp_path: Path) -> None:
    settings = settings_for(trained, tmp_path, max_queue_size=2)
    with TestClient(create_app(settings)) as test_client:
        wait_ready(test_client)
        answer = test_client.post("/v1/classify/batch", json={"tickets": [TICKET] * 3})

    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "1"


def test_an_unforeseen_error_is_logged_and_answered_500_without_details(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the model fell over")

    with TestClient(
        create_app(settings_for(trained, tmp_path)), raise_server_exceptions=False
    ) as client:
        wait_ready(client)
        monkeypatch.setattr(client.app.state.classifier, "classify", broken)
        answer = client.post("/v1/classify", json=TICKET)

    assert answer.status_code == 500
    assert answer.json() == {
        "status_code": 500,
        "detail": "internal error; the server log has the details",
    }
    assert "POST /v1/classify failed" in caplog.text and "the model fell over" in caplog.text
