"""Predictions and feedback, retraining from feedback, the model registry, and drift."""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from litestar.testing import TestClient
from rich.console import Console

from service.api.app import create_app
from service.columns import ColumnMapping
from service.inference.bundle import ModelBundle
from service.learning.drift import drift_report, population_stability, recorded_confidence
from service.learning.feedback import FeedbackStore
from service.learning.predictions import PredictionLog, PredictionRecord
from service.learning.registry import ModelRegistry, macro_f1
from service.settings import KnowledgeSettings, LearningSettings, PrivacySettings
from service.storage import create_database_engine, upgrade_schema
from tests.conftest import SAMPLE, tiny_config
from tests.test_api import TICKET, settings_for, wait_ready
from training.data import prepare_data
from training.feedback import feedback_frame
from training.train import run_training


def copy_with_version(bundle: Path, folder: Path, version: str) -> Path:
    """The same model under another version: a retrained candidate, as far as the registry
    can tell."""
    shutil.copytree(bundle, folder)
    config = json.loads((folder / "config.json").read_text())
    config["version"] = version
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture
def client(trained: Path, tmp_path: Path, database_url: str) -> Iterator[TestClient[Any]]:
    settings = settings_for(
        trained,
        tmp_path,
        database_url=database_url,
        knowledge=KnowledgeSettings(embedder="bundle"),
        learning=LearningSettings(registry_poll_s=0.2),
    )
    with TestClient(create_app(settings)) as test_client:
        wait_ready(test_client)
        yield test_client


def classify(client: TestClient[Any], body: str = TICKET["body"]) -> dict[str, Any]:
    answer = client.post("/v1/classify", json={"subject": TICKET["subject"], "body": body})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_every_prediction_gets_an_id_and_feedback_corrects_it(client: TestClient[Any]) -> None:
    prediction = classify(client)
    other = (
        "Billing and Payments"
        if prediction["queue"]["label"] != "Billing and Payments"
        else "IT Support"
    )

    answer = client.post(
        "/v1/feedback",
        json={
            "prediction_id": prediction["prediction_id"],
            "labels": {"queue": other, "priority": prediction["priority"]["label"]},
            "agent": "anna",
            "resolution": "Reinstalled the VPN client and reset the token.",
            "ticket_id": "Z-900",
        },
    )

    assert answer.status_code == 200, answer.text
    assert answer.json()["corrected"] == ["queue"]
    assert answer.json()["knowledge"] == "created"
    stored = client.get("/v1/knowledge/Z-900").json()
    assert stored["labels"]["queue"] == other and stored["body"] == TICKET["body"]


def test_feedback_for_an_unknown_prediction_or_head_is_refused(client: TestClient[Any]) -> None:
    prediction = classify(client)

    unknown = client.post("/v1/feedback", json={"prediction_id": "no-such-id"})
    bad_head = client.post(
        "/v1/feedback",
        json={"prediction_id": prediction["prediction_id"], "labels": {"mood": "angry"}},
    )

    assert unknown.status_code == 404
    assert bad_head.status_code == 400 and "expected heads of the prediction" in bad_head.text


def test_feedback_is_stored_durably(client: TestClient[Any], database_url: str) -> None:
    prediction = classify(client)
    client.post(
        "/v1/feedback",
        json={"prediction_id": prediction["prediction_id"], "suggestion_used": "Z-1"},
    )

    engine = create_database_engine(database_url)
    stored = FeedbackStore(engine).for_prediction(prediction["prediction_id"])
    engine.dispose()

    assert [f.suggestion_used for f in stored] == ["Z-1"]


def test_texts_are_not_kept_with_predictions_when_redaction_is_on(
    trained: Path, tmp_path: Path
) -> None:
    settings = settings_for(
        trained,
        tmp_path,
        knowledge=KnowledgeSettings(embedder="bundle"),
        privacy=PrivacySettings(redact_knowledge=True),
    )
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        prediction = classify(client)
        feedback = client.post(
            "/v1/feedback",
            json={"prediction_id": prediction["prediction_id"], "resolution": "Fixed it."},
        ).json()

    engine = create_database_engine(settings.resolved_database_url)
    with engine.connect() as connection:
        row = connection.exec_driver_sql("SELECT subject, body, labels FROM predictions").one()
    engine.dispose()
    assert row[0] is None and row[1] is None and "queue" in row[2]
    assert feedback["knowledge"].startswith("not stored: ticket texts are not kept")


# Retraining from feedback.


def test_feedback_becomes_training_rows_with_the_agents_labels(
    client: TestClient[Any], database_url: str
) -> None:
    corrected = classify(client, "Ich wurde doppelt belastet, bitte erstatten.")
    confirmed = classify(client, "The VPN drops every five minutes.")
    client.post(
        "/v1/feedback",
        json={
            "prediction_id": corrected["prediction_id"],
            "labels": {"queue": "Billing and Payments"},
        },
    )
    client.post("/v1/feedback", json={"prediction_id": confirmed["prediction_id"]})

    frame = feedback_frame(database_url, ["queue", "priority", "type"])

    assert len(frame) == 2
    by_body = frame.set_index("body")
    assert (
        by_body.loc["Ich wurde doppelt belastet, bitte erstatten.", "queue"]
        == "Billing and Payments"
    )
    assert by_body.loc["The VPN drops every five minutes.", "queue"] == confirmed["queue"]["label"]


def test_feedback_rows_win_over_the_same_ticket_in_an_export() -> None:
    sample = pd.read_csv(SAMPLE).fillna("")
    first = sample.iloc[0]
    relabel = next(q for q in sorted(sample["queue"].unique()) if q != first["queue"])
    feedback = pd.DataFrame(
        [
            {
                "subject": first["subject"],
                "body": first["body"],
                "answer": "",
                "declared_language": "",
                "tags": "",
                "queue": relabel,
                "priority": first["priority"],
                "type": first["type"],
                "source": "feedback",
            }
        ]
    )

    prepared = prepare_data([str(SAMPLE)], ColumnMapping.default(), feedback=feedback)

    everything = pd.concat([prepared.train, prepared.validation, prepared.test])
    kept = everything[everything["body"] == first["body"]]
    assert prepared.statistics["feedback_rows"] == 1
    assert kept["queue"].tolist() == [relabel] and kept["source"].tolist() == ["feedback"]


# The registry.


def test_promotion_runs_a_shadow_evaluation_and_rollback_returns(
    client: TestClient[Any], trained: Path, tmp_path: Path
) -> None:
    for body in ("VPN down again", "Rechnung doppelt", "La impresora no imprime"):
        prediction = classify(client, body)
        client.post("/v1/feedback", json={"prediction_id": prediction["prediction_id"]})
    first = client.get("/v1/models/registry").json()
    candidate = copy_with_version(trained, tmp_path / "candidate", "2099.01.01-000000")

    registered = client.post("/v1/models/registry", json={"model_dir": str(candidate)})
    promoted = client.post("/v1/models/promote", json={"version": "2099.01.01-000000"})
    serving = client.get("/v1/models").json()["version"]
    rolled = client.post("/v1/models/rollback")

    assert registered.status_code == 200 and first["active"] is not None
    assert promoted.status_code == 200, promoted.text
    comparison = promoted.json()["shadow_evaluation"]
    assert comparison["feedback_count"] == 3
    assert set(comparison["candidate"]["heads"]) == {"queue", "priority", "type"}
    # The same weights under two versions score the same on the same tickets.
    assert comparison["candidate"]["mean_macro_f1"] == comparison["active"]["mean_macro_f1"]
    assert serving == "2099.01.01-000000"
    assert rolled.json()["active"]["version"] == first["active"]
    assert client.get("/v1/models").json()["version"] == first["active"]
    evaluations = client.get("/v1/models/evaluations").json()
    assert evaluations[0]["candidate_version"] == "2099.01.01-000000"


def test_a_worse_candidate_is_refused_unless_forced() -> None:
    results = {"candidate": {"mean_macro_f1": 0.40}, "active": {"mean_macro_f1": 0.50}}

    assert ModelRegistry._verdict(results, force=False).startswith("refused")
    assert ModelRegistry._verdict(results, force=True).startswith("promoted (forced)")


def test_a_server_follows_a_promotion_made_by_another_process(
    client: TestClient[Any], trained: Path, tmp_path: Path, database_url: str
) -> None:
    candidate = copy_with_version(trained, tmp_path / "candidate", "2099.02.02-000000")
    engine = create_database_engine(database_url)
    upgrade_schema(engine)
    registry = ModelRegistry(engine)
    registry.register(candidate)
    registry.promote("2099.02.02-000000", [], force=False)
    engine.dispose()

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if client.get("/v1/models").json()["version"] == "2099.02.02-000000":
            break
        time.sleep(0.1)
    assert client.get("/v1/models").json()["version"] == "2099.02.02-000000"


def test_macro_f1_is_the_unweighted_mean_over_labels() -> None:
    assert macro_f1(["a", "a", "b"], ["a", "a", "b"]) == 1.0
    assert macro_f1(["a", "b"], ["b", "a"]) == 0.0
    assert macro_f1(["a", "a", "b", "b"], ["a", "b", "b", "b"]) == pytest.approx((2 / 3 + 0.8) / 2)


# Drift.


def record(queue: str, when: datetime, confidence: float = 0.8) -> PredictionRecord:
    return PredictionRecord(
        "id", when, "m", "v", {"queue": queue}, {"queue": confidence}, "en", False, None, None, {}
    )


def test_psi_is_zero_for_the_same_shares_and_grows_with_the_shift() -> None:
    training = {"a": 50, "b": 50}

    assert population_stability(training, {"a": 5, "b": 5}) == pytest.approx(0.0)
    small = population_stability(training, {"a": 55, "b": 45})
    large = population_stability(training, {"a": 90, "b": 10})
    assert 0 < small < 0.1 < 0.2 < large


def test_drift_alerts_when_the_predicted_labels_part_from_training() -> None:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    training = {"queue": {"a": 50, "b": 50}}
    steady = [record("a" if i % 2 else "b", start + timedelta(minutes=i)) for i in range(100)]
    shifted = [record("a", start + timedelta(minutes=i)) for i in range(100)]

    calm = drift_report(
        steady, training, start, start + timedelta(hours=2), timedelta(hours=1), 0.2
    )
    alarmed = drift_report(
        shifted, training, start, start + timedelta(hours=2), timedelta(hours=1), 0.2
    )

    few = drift_report(
        shifted[:20], training, start, start + timedelta(hours=2), timedelta(hours=1), 0.2
    )

    assert calm["alerts"] == [] and not calm["drifting"]
    assert few["alerts"] == [] and few["note"].startswith("too few predictions")
    assert alarmed["drifting"] and alarmed["alerts"][0].startswith("queue: PSI")
    assert [b["predictions"] for b in alarmed["buckets"]] == [60, 40]


def test_drift_endpoint_reports_the_served_models_predictions(client: TestClient[Any]) -> None:
    for body in ("VPN down", "Rechnung doppelt", "Impresora rota", "Mot de passe oublié"):
        classify(client, body)

    report = client.get("/v1/drift", params={"hours": 1, "bucket_hours": 0.5}).json()

    assert report["predictions"] == 4
    assert set(report["window"]["psi"]) == {"queue", "priority", "type"}
    assert len(report["buckets"]) == 2
    assert "ticket_triage_label_drift_psi" in client.get("/metrics").text


def test_make_train_takes_the_feedback_in(
    client: TestClient[Any], tiny_base: Path, tmp_path: Path, database_url: str
) -> None:
    for body in ("Der Drucker im 2. Stock druckt nur leere Seiten.", "Refund my double charge"):
        prediction = classify(client, body)
        client.post(
            "/v1/feedback",
            json={"prediction_id": prediction["prediction_id"], "labels": {"queue": "IT Support"}},
        )
    config = dataclasses.replace(tiny_config(tmp_path, tiny_base), feedback=database_url)

    bundle = run_training(config, Console(quiet=True))

    statistics = json.loads((bundle / "data_statistics.json").read_text())
    assert statistics["feedback_rows"] == 2
    assert datetime.fromisoformat(statistics["feedback_until"]) <= datetime.now(UTC)
    assert ModelBundle.load(bundle).version  # a complete bundle came out


def test_old_predictions_without_feedback_are_pruned(
    client: TestClient[Any], database_url: str
) -> None:
    kept = classify(client, "Keep me: I have feedback.")
    dropped = classify(client, "Drop me: nobody looked at me.")
    client.post("/v1/feedback", json={"prediction_id": kept["prediction_id"]})
    engine = create_database_engine(database_url)
    log = PredictionLog(engine, store_text=True)

    pruned = log.prune(datetime.now(UTC) + timedelta(seconds=1))

    assert pruned == 1
    assert log.get(kept["prediction_id"]) is not None
    assert log.get(dropped["prediction_id"]) is None
    engine.dispose()


def test_drift_alerts_when_confidence_falls_below_the_test_splits() -> None:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    training = {"queue": {"a": 50, "b": 50}}
    unsure = [record("ab"[i % 2], start + timedelta(minutes=i), 0.45) for i in range(120)]
    end = start + timedelta(hours=2)

    report = drift_report(
        unsure, training, start, end, timedelta(hours=1), 0.2, reference_confidence={"queue": 0.7}
    )

    assert report["window"]["confidence"] == {"queue": 0.45}
    assert report["alerts"] == [
        "queue: mean confidence 0.450 is 0.250 below the 0.700 of the test split"
    ]


def test_training_records_the_test_confidence_for_the_drift_watch(trained: Path) -> None:
    confidence = recorded_confidence(trained)

    assert set(confidence) == {"queue", "priority", "type"}
    assert all(0 < value <= 1 for value in confidence.values())


def test_shadow_evaluation_leaves_out_feedback_the_candidate_was_trained_on(
    client: TestClient[Any], trained: Path, tmp_path: Path, database_url: str
) -> None:
    for body in ("VPN down again", "Rechnung doppelt"):
        client.post("/v1/feedback", json={"prediction_id": classify(client, body)["prediction_id"]})
    candidate = copy_with_version(trained, tmp_path / "candidate", "2099.03.03-000000")
    statistics = json.loads((candidate / "data_statistics.json").read_text())
    statistics["feedback_until"] = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    (candidate / "data_statistics.json").write_text(json.dumps(statistics))
    engine = create_database_engine(database_url)
    registry = ModelRegistry(engine)
    registry.register(candidate)

    _, comparison = registry.promote(
        "2099.03.03-000000", FeedbackStore(engine).labelled_tickets(), force=False
    )
    engine.dispose()

    assert comparison["excluded_as_trained_on"] == 2 and comparison["feedback_count"] == 0
    assert comparison["verdict"].startswith("promoted: nothing to compare with")


def test_a_suggestion_marked_used_after_a_correction_keeps_the_correction(
    client: TestClient[Any],
) -> None:
    answer = classify(client)
    other = next(
        q
        for q in client.get("/v1/models").json()["heads"]["queue"]
        if q != answer["queue"]["label"]
    )
    feedback = {"prediction_id": answer["prediction_id"]}
    client.post("/v1/feedback", json={**feedback, "labels": {"queue": other}})
    client.post("/v1/feedback", json={**feedback, "suggestion_used": "kb-1"})

    engine = client.app.state.feedback.engine
    [ticket] = FeedbackStore(engine).labelled_tickets()
    assert ticket.labels["queue"] == other
    assert ticket.corrected == frozenset({"queue"})
