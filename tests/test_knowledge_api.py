"""Knowledge and suggestion endpoints through Litestar's test client, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from service.api.app import create_app
from service.settings import KnowledgeSettings
from tests.test_api import settings_for, wait_ready

ENTRIES = [
    {
        "source_id": "Z-100",
        "subject": "VPN keeps dropping",
        "body": "The VPN client disconnects every few minutes for the whole sales team.",
        "resolution": "Updated the VPN client to 5.2 and raised the keep-alive interval.",
        "labels": {"queue": "IT Support", "priority": "high"},
        "tags": ["vpn"],
        "created_at": "2025-03-01T09:00:00Z",
    },
    {
        "source_id": "Z-101",
        "subject": "Double charge",
        "body": "I was charged twice for the same invoice this month.",
        "resolution": "Refunded the duplicate payment.",
        "labels": {"queue": "Billing and Payments"},
        "created_at": "2025-08-01T09:00:00Z",
    },
    {
        "source_id": "Z-102",
        "subject": "Retour",
        "body": "Die Schuhe kamen beschädigt an, ich möchte sie zurückschicken.",
        "resolution": "Rücksendeetikett verschickt.",
        "labels": {"queue": "Returns and Exchanges"},
        "language": "de",
    },
]


def started(
    trained: Path, tmp_path: Path, database_url: str, embedder: str
) -> Iterator[TestClient[Any]]:
    settings = settings_for(
        trained,
        tmp_path,
        database_url=database_url,
        knowledge=KnowledgeSettings(embedder=embedder, max_entries_per_request=3, max_k=10),
    )
    with TestClient(create_app(settings)) as test_client:
        wait_ready(test_client)
        assert test_client.post("/v1/knowledge", json={"entries": ENTRIES}).status_code == 200
        yield test_client


@pytest.fixture
def client(trained: Path, tmp_path: Path, database_url: str) -> Iterator[TestClient[Any]]:
    """Suggestions by the multilingual USE, the default embedder."""
    yield from started(trained, tmp_path, database_url, "use")


@pytest.fixture
def bundle_client(trained: Path, tmp_path: Path) -> Iterator[TestClient[Any]]:
    """Suggestions by the bundle's own embedding (of the tiny random test model, so only
    identical texts are reliably nearest)."""
    yield from started(trained, tmp_path, f"sqlite:///{tmp_path / 'triage.db'}", "bundle")


def test_posting_the_same_entries_twice_reports_them_unchanged(client: TestClient[Any]) -> None:
    again = client.post("/v1/knowledge", json={"entries": ENTRIES})

    assert again.status_code == 200
    assert again.json()["unchanged"] == 3 and again.json()["created"] == 0
    assert client.get("/v1/knowledge").json()["entries"] == 3


def test_an_entry_reads_back_as_stored(client: TestClient[Any]) -> None:
    entry = client.get("/v1/knowledge/Z-100").json()

    assert entry["resolution"] == ENTRIES[0]["resolution"]
    assert entry["labels"]["queue"] == "IT Support"
    assert entry["language"] == "en"
    assert entry["created_at"].startswith("2025-03-01T09:00:00")


def test_suggest_returns_the_similar_ticket_first(client: TestClient[Any]) -> None:
    answer = client.post("/v1/suggest", json={"body": "Our VPN disconnects all the time", "k": 2})

    assert answer.status_code == 200
    suggestions = answer.json()["suggestions"]
    assert suggestions[0]["source_id"] == "Z-100"
    assert suggestions[0]["resolution"] == ENTRIES[0]["resolution"]
    assert suggestions[0]["score"] > suggestions[1]["score"]


def test_suggest_applies_the_filters(client: TestClient[Any]) -> None:
    by_queue = client.post(
        "/v1/suggest",
        json={"body": "VPN down", "filters": {"queue": ["Billing and Payments"]}},
    ).json()["suggestions"]
    by_date = client.post(
        "/v1/suggest",
        json={"body": "VPN down", "filters": {"created_before": "2025-06-01T00:00:00Z"}},
    ).json()["suggestions"]
    by_language = client.post(
        "/v1/suggest", json={"body": "VPN down", "filters": {"language": ["de"]}}
    ).json()["suggestions"]

    assert [s["source_id"] for s in by_queue] == ["Z-101"]
    assert [s["source_id"] for s in by_date] == ["Z-100"]
    assert [s["source_id"] for s in by_language] == ["Z-102"]


def test_deleted_entry_is_gone(client: TestClient[Any]) -> None:
    assert client.delete("/v1/knowledge/Z-101").json() == {"deleted": "Z-101"}

    assert client.get("/v1/knowledge/Z-101").status_code == 404
    assert client.delete("/v1/knowledge/Z-101").status_code == 404
    found = client.post("/v1/suggest", json={"body": "charged twice", "k": 5}).json()
    assert "Z-101" not in [s["source_id"] for s in found["suggestions"]]


def test_classify_can_answer_suggestions_in_the_same_call(client: TestClient[Any]) -> None:
    ticket = {"subject": ENTRIES[0]["subject"], "body": ENTRIES[0]["body"]}

    plain = client.post("/v1/classify", json=ticket).json()
    both = client.post("/v1/classify", json={**ticket, "include": ["suggestions"]}).json()

    assert "suggestions" not in plain
    assert both["queue"] == plain["queue"]
    assert both["suggestions"][0]["source_id"] == "Z-100"
    assert both["suggestions"][0]["score"] == pytest.approx(1.0, abs=1e-3)


def test_bundle_embedder_reuses_the_classification_pass(bundle_client: TestClient[Any]) -> None:
    ticket = {"subject": ENTRIES[1]["subject"], "body": ENTRIES[1]["body"]}

    both = bundle_client.post("/v1/classify", json={**ticket, "include": ["suggestions"]}).json()
    alone = bundle_client.post("/v1/suggest", json=ticket).json()

    assert both["suggestions"][0]["source_id"] == "Z-101"
    assert both["suggestions"][0]["score"] == pytest.approx(1.0, abs=1e-3)
    assert alone["embedder"].startswith("bundle:tiny@")
    assert [s["source_id"] for s in alone["suggestions"]] == [
        s["source_id"] for s in both["suggestions"]
    ]


def test_reloading_the_same_bundle_keeps_the_knowledge_base(
    bundle_client: TestClient[Any], trained: Path
) -> None:
    assert (
        bundle_client.post("/v1/models/reload", json={"model_dir": str(trained)}).status_code == 200
    )

    assert bundle_client.get("/v1/knowledge").json()["entries"] == 3


@pytest.mark.parametrize(
    ("path", "payload", "fragment"),
    [
        ("/v1/knowledge", {"entries": []}, "entries"),
        ("/v1/knowledge", {"entries": [{"source_id": "x", "body": "b"}]}, "resolution"),
        ("/v1/knowledge", {"entries": [{**ENTRIES[0], "resolution": "  "}]}, "only whitespace"),
        ("/v1/knowledge", {"entries": [ENTRIES[0], ENTRIES[0]]}, "each source_id once"),
        ("/v1/knowledge", {"entries": [*ENTRIES, {**ENTRIES[0], "source_id": "n"}]}, "at most 3"),
        ("/v1/knowledge", {"entries": [{**ENTRIES[0], "created_at": "yesterday"}]}, "created_at"),
        ("/v1/suggest", {"body": "vpn", "k": 11}, "at most 10"),
        ("/v1/suggest", {"body": "vpn", "k": 0}, "k"),
        ("/v1/suggest", {"body": "vpn", "filters": {"team": "x"}}, "team"),
        (
            "/v1/suggest",
            {
                "body": "vpn",
                "filters": {
                    "created_after": "2026-01-01T00:00:00",
                    "created_before": "2025-01-01T00:00:00Z",
                },
            },
            "created_after before created_before",
        ),
        ("/v1/classify", {"body": "vpn", "include": ["everything"]}, "include"),
    ],
)
def test_bad_knowledge_requests_get_400_with_a_reason(
    client: TestClient[Any], path: str, payload: dict[str, Any], fragment: str
) -> None:
    answer = client.post(path, json=payload)

    assert answer.status_code == 400
    assert fragment in json.dumps(answer.json())


def test_openapi_lists_the_knowledge_endpoints(client: TestClient[Any]) -> None:
    paths = set(client.get("/docs/openapi.json").json()["paths"])

    assert {"/v1/knowledge", "/v1/knowledge/{source_id}", "/v1/suggest"} <= paths
