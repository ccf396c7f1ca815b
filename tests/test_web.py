"""The web pages through the application: self-service, the agent view, the dashboard and
reports, roles, and the figures behind them."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from litestar.testing import TestClient
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from service.api.app import create_app
from service.security.keys import ApiKeyStore
from service.settings import AuthSettings, KnowledgeSettings, RateLimitSettings, WebSettings
from service.storage import create_database_engine, upgrade_schema
from service.storage.tables import Feedback, Prediction
from service.web.i18n import LOCALES, choose_language
from service.web.insights import Insights, Period, telling_words
from tests.conftest import fresh_postgres_database
from tests.test_api import settings_for, wait_ready

KNOWLEDGE = [
    {
        "source_id": "kb-vpn",
        "subject": "VPN disconnects every few minutes",
        "body": "The VPN client drops the connection every five minutes.",
        "resolution": "Update the VPN client to 5.2 and switch the protocol to IKEv2.",
        "labels": {"queue": "Technical Support"},
        "language": "en",
    },
    {
        "source_id": "kb-vpn-de",
        "subject": "VPN trennt sich ständig",
        "body": "Der VPN-Client verliert alle fünf Minuten die Verbindung.",
        "resolution": "VPN-Client auf 5.2 aktualisieren und das Protokoll auf IKEv2 stellen.",
        "labels": {"queue": "Technical Support"},
        "language": "de",
    },
    {
        "source_id": "kb-invoice",
        "subject": "Invoice charged twice",
        "body": "My credit card was charged twice for the same invoice.",
        "resolution": "Refund the duplicate charge from the billing console.",
        "labels": {"queue": "Billing and Payments"},
        "language": "en",
    },
]


def fill(client: TestClient[Any]) -> None:
    """A knowledge base, and one agent who can take every queue, through the API."""
    assert client.post("/v1/knowledge", json={"entries": KNOWLEDGE}).status_code == 200
    queues = client.get("/v1/models").json()["heads"]["queue"]
    assert client.put("/v1/teams/Service Desk", json={"queues": queues}).status_code == 200
    agent = {
        "skills": {queue: 3 for queue in queues},
        "languages": ["en", "de"],
        "capacity": 5,
        "team": "Service Desk",
    }
    answer = client.put("/v1/agents/alice", json=agent)
    assert answer.status_code == 200, answer.text


@pytest.fixture
def client(trained: Path, tmp_path: Path) -> Iterator[TestClient[Any]]:
    # The multilingual USE embedder: the tiny test model's own embedding means nothing.
    settings = settings_for(trained, tmp_path, knowledge=KnowledgeSettings(embedder="use"))
    with TestClient(create_app(settings)) as test_client:
        wait_ready(test_client)
        fill(test_client)
        yield test_client


def file_ticket(client: TestClient[Any], body: str, subject: str = "VPN") -> str:
    """File through the self-service form; the id of the stored prediction."""
    page = client.post(
        "/help/tickets", data={"subject": subject, "body": body, "requester": "max@example.com"}
    )
    assert page.status_code == 200, page.text
    assert "filed-queue" in page.text
    recent = client.get("/agent").text
    found = re.search(r'href="/agent/tickets/([0-9a-f-]{36})"', recent)
    assert found, recent
    return found.group(1)


# Self-service.


def test_self_service_page_speaks_the_browsers_language(client: TestClient[Any]) -> None:
    assert "How can we help?" in client.get("/help").text
    german = client.get("/help", headers={"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"})
    assert "Wie können wir helfen?" in german.text
    assert "Wie können wir helfen?" in client.get("/help?lang=de").text


def test_answers_appear_for_a_described_problem(client: TestClient[Any]) -> None:
    found = client.post(
        "/help/suggest",
        json={"subject": "VPN", "body": "The VPN client drops the connection every 5 minutes"},
    ).json()

    assert found["language"] == "en"
    assert [s["source_id"] for s in found["suggestions"]][:1] == ["kb-vpn"]
    assert found["suggestions"][0]["resolution"].startswith("Update the VPN client")


def test_answers_in_the_visitors_language_come_first(client: TestClient[Any]) -> None:
    german = {"subject": "VPN", "body": "Der VPN-Client trennt alle fünf Minuten die Verbindung"}
    english = {"subject": "VPN", "body": "The VPN client drops the connection every 5 minutes"}

    found = client.post("/help/suggest", json=german).json()
    assert found["language"] == "de"
    assert found["suggestions"][0]["source_id"] == "kb-vpn-de"
    assert client.post("/help/suggest", json=english).json()["suggestions"][0]["language"] == "en"


def test_too_little_text_finds_nothing_yet(client: TestClient[Any]) -> None:
    assert client.post("/help/suggest", json={"body": "VPN"}).json()["suggestions"] == []


def test_a_filed_ticket_is_classified_routed_and_stored(client: TestClient[Any]) -> None:
    prediction_id = file_ticket(client, "The VPN drops every five minutes since this morning.")

    ticket = client.get(f"/agent/tickets/{prediction_id}").text
    assert "The VPN drops every five minutes" in ticket
    assert "Filed through self-service by max@example.com" in ticket
    assert "Assigned to alice" in ticket
    assert client.get("/v1/agents/alice").json()["load"] == 1


def test_an_empty_ticket_is_refused_on_the_form(client: TestClient[Any]) -> None:
    page = client.post("/help/tickets", data={"subject": "x", "body": "   "})

    assert page.status_code == 400
    assert "body: expected a description of the problem, found nothing" in page.text
    assert 'id="help-form"' in page.text  # the form again, to correct


def test_a_nul_character_is_refused_on_the_form(client: TestClient[Any]) -> None:
    page = client.post("/help/tickets", data={"subject": "x", "body": "a\x00b"})

    assert page.status_code == 400
    assert "NUL" in page.text


def test_deflections_count_against_filed_tickets(client: TestClient[Any]) -> None:
    assert client.post("/help/solved", json={"source_id": "kb-vpn"}).status_code == 200
    assert client.post("/help/solved", json={"source_id": "kb-invoice"}).status_code == 200
    file_ticket(client, "My invoice shows a charge I do not recognise at all.")

    dashboard = client.get("/dashboard").text
    assert re.search(r'id="tile-deflection">66.7 %<', dashboard)
    assert "2 solved, 1 filed" in dashboard


def test_a_ticket_goes_from_self_service_to_the_dashboard_on_postgresql(
    trained: Path, tmp_path: Path
) -> None:
    with fresh_postgres_database() as url:
        settings = settings_for(
            trained, tmp_path, database_url=url, knowledge=KnowledgeSettings(embedder="use")
        )
        with TestClient(create_app(settings)) as client:
            wait_ready(client)
            fill(client)
            assert client.post("/help/solved", json={"source_id": "kb-vpn"}).status_code == 200
            prediction_id = file_ticket(client, "The VPN drops every five minutes since today.")
            feedback = {"prediction_id": prediction_id, "labels": {"priority": "low"}}
            assert client.post("/v1/feedback", json=feedback).status_code == 200

            dashboard = client.get("/dashboard").text
            assert re.search(r'id="tile-feedback">1<', dashboard)
            assert re.search(r'id="tile-deflection">50.0 %<', dashboard)
            assert "Assigned to alice" in client.get(f"/agent/tickets/{prediction_id}").text


# The agent view.


def test_agent_view_shows_predictions_suggestions_and_routing(client: TestClient[Any]) -> None:
    prediction_id = file_ticket(client, "The VPN client drops the connection every 5 minutes.")
    page = client.get(f"/agent/tickets/{prediction_id}").text
    stored = client.get("/v1/models").json()["heads"]

    for head, labels in stored.items():
        assert f'data-head="{head}"' in page
        assert all(f'<option value="{label}"' in page for label in labels)
    assert 'data-source-id="kb-vpn"' in page
    assert "alice" in page


def test_a_pasted_ticket_is_classified_and_opened(client: TestClient[Any]) -> None:
    opened = client.post(
        "/agent/tickets",
        data={"subject": "Rechnung", "body": "Meine Rechnung wurde doppelt abgebucht."},
        follow_redirects=False,
    )

    assert opened.status_code in (302, 303)
    page = client.get(opened.headers["location"]).text
    assert "Meine Rechnung wurde doppelt abgebucht." in page


def test_an_unknown_ticket_is_a_404_page(client: TestClient[Any]) -> None:
    page = client.get("/agent/tickets/00000000-0000-0000-0000-000000000000")

    assert page.status_code == 404
    assert "No such ticket" in page.text


def test_feedback_from_the_agent_view_reaches_the_dashboard(client: TestClient[Any]) -> None:
    prediction_id = file_ticket(client, "The VPN client drops the connection every 5 minutes.")
    predicted = client.get(f"/agent/tickets/{prediction_id}").text
    queue = re.search(r'data-head="queue" data-predicted="([^"]+)"', predicted)
    assert queue
    other = next(q for q in client.get("/v1/models").json()["heads"]["queue"] if q != queue[1])

    # What the page's script sends: a correction of the queue, a confirmation of the type.
    answer = client.post(
        "/v1/feedback", json={"prediction_id": prediction_id, "labels": {"queue": other}}
    )
    assert answer.json()["corrected"] == ["queue"]

    dashboard = client.get("/dashboard").text
    assert re.search(r'id="tile-feedback">1<', dashboard)
    assert re.search(r'id="tile-corrections">1<', dashboard)
    assert re.search(r'<tr data-head="queue"><td>Queue</td><td class="num">1</td>', dashboard)
    assert f"Corrected to {other}" in client.get(f"/agent/tickets/{prediction_id}").text


# Dashboard and reports.


def test_dashboard_draws_every_chart(client: TestClient[Any]) -> None:
    prediction_id = file_ticket(client, "The VPN client drops the connection every 5 minutes.")
    feedback = {"prediction_id": prediction_id, "labels": {"type": "Incident"}}
    assert client.post("/v1/feedback", json=feedback).status_code == 200

    page = client.get("/dashboard?lang=de").text
    assert page.count("<svg") >= 6  # queue, priority, language, low confidence, accuracy, teams
    assert "Tickets pro Tag nach Queue" in page
    assert "Service Desk" in page


def test_report_csv_has_the_figures_of_the_range(client: TestClient[Any]) -> None:
    file_ticket(client, "The VPN client drops the connection every 5 minutes.")
    today = datetime.now(UTC).date()

    download = client.get(f"/reports/export.csv?first={today - timedelta(6)}&last={today}")
    assert download.status_code == 200
    assert "attachment" in download.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(download.text)))
    tickets = [r for r in rows if r["section"] == "tickets"]
    assert len(tickets) == 7
    assert sum(int(r["count"]) for r in tickets) == 1
    assert any(r["section"] == "team_load" and r["group"] == "Service Desk" for r in rows)


def test_printable_report_names_its_range(client: TestClient[Any]) -> None:
    page = client.get("/reports?first=2026-11-01&last=2026-11-30")

    assert page.status_code == 200
    assert "2026-11-01 – 2026-11-30" in page.text
    assert "@media print" in client.get("/static/app.css").text


@pytest.mark.parametrize(
    "query", ["first=2026-13-01", "first=2026-12-01&last=2026-11-01", "days=0", "days=abc"]
)
def test_a_bad_date_range_is_a_400_page(client: TestClient[Any], query: str) -> None:
    page = client.get(f"/reports?{query}")

    assert page.status_code == 400
    assert "expected" in page.text
    assert "<html" in page.text


# Roles.


@pytest.fixture
def guarded(trained: Path, tmp_path: Path) -> Iterator[tuple[TestClient[Any], dict[str, str]]]:
    settings = settings_for(
        trained,
        tmp_path,
        auth=AuthSettings(enabled=True, cache_s=0),
        rate_limit=RateLimitSettings(requests=0),
    )
    engine = create_database_engine(settings.resolved_database_url)
    upgrade_schema(engine)
    store = ApiKeyStore(engine)
    keys = {role: store.create(role, [role]).secret for role in ("agent", "lead", "predict")}
    engine.dispose()
    with TestClient(create_app(settings)) as test_client:
        wait_ready(test_client)
        yield test_client, keys


def sign_in(client: TestClient[Any], key: str, target: str = "/agent") -> Any:
    return client.post("/login", data={"key": key, "next": target}, follow_redirects=False)


def test_pages_send_a_visitor_without_a_key_to_sign_in(
    guarded: tuple[TestClient[Any], dict[str, str]],
) -> None:
    client, _ = guarded

    for path in ("/agent", "/dashboard", "/reports"):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code in (302, 303)
        assert answer.headers["location"] == f"/login?next={path}"
    assert client.get("/help").status_code == 200  # open by default


def test_an_agent_sees_tickets_but_not_the_dashboard(
    guarded: tuple[TestClient[Any], dict[str, str]],
) -> None:
    client, keys = guarded
    assert sign_in(client, keys["agent"]).headers["location"] == "/agent"

    assert client.get("/agent").status_code == 200
    refused = client.get("/dashboard")
    assert refused.status_code == 403
    assert "lead" in refused.text


def test_a_lead_sees_the_dashboard(guarded: tuple[TestClient[Any], dict[str, str]]) -> None:
    client, keys = guarded
    sign_in(client, keys["lead"])

    assert client.get("/dashboard").status_code == 200
    assert client.get("/agent").status_code == 200


def test_a_page_calls_the_api_with_its_visitors_key(
    guarded: tuple[TestClient[Any], dict[str, str]],
) -> None:
    client, keys = guarded
    assert client.post("/v1/classify", json={"body": "VPN is down"}).status_code == 401
    sign_in(client, keys["agent"])

    classified = client.post("/v1/classify", json={"body": "VPN is down"})
    assert classified.status_code == 200
    feedback = {"prediction_id": classified.json()["prediction_id"], "labels": {}}
    assert client.post("/v1/feedback", json=feedback).status_code == 200
    assert client.post("/v1/models/reload").status_code == 403  # the role is not admin


def test_a_script_fetches_the_csv_with_a_key_in_the_header(
    guarded: tuple[TestClient[Any], dict[str, str]],
) -> None:
    client, keys = guarded

    lead = client.get("/reports/export.csv", headers={"Authorization": f"Bearer {keys['lead']}"})
    assert lead.status_code == 200
    assert lead.text.startswith("section,group,day,count,share")
    agent = client.get("/reports/export.csv", headers={"X-API-Key": keys["agent"]})
    assert agent.status_code == 403


def test_an_unknown_key_is_refused_at_sign_in(
    guarded: tuple[TestClient[Any], dict[str, str]],
) -> None:
    client, _ = guarded
    answer = sign_in(client, "tt_00000000_" + "a" * 43)

    assert answer.status_code == 401
    assert "unknown, revoked or mistyped" in answer.text


def test_a_revoked_key_is_signed_out(
    guarded: tuple[TestClient[Any], dict[str, str]], tmp_path: Path
) -> None:
    client, keys = guarded
    sign_in(client, keys["agent"])
    assert client.get("/agent").status_code == 200

    engine = create_engine(f"sqlite:///{tmp_path / 'triage.db'}")
    ApiKeyStore(engine).revoke(keys["agent"][3:11])
    engine.dispose()
    assert client.get("/agent", follow_redirects=False).status_code in (302, 303)


def test_sign_in_only_returns_to_this_servers_pages(
    guarded: tuple[TestClient[Any], dict[str, str]],
) -> None:
    client, keys = guarded

    assert sign_in(client, keys["agent"], "https://evil.example/").headers["location"] == "/agent"
    assert sign_in(client, keys["agent"], "//evil.example/").headers["location"] == "/agent"


def test_self_service_can_require_sign_in(trained: Path, tmp_path: Path) -> None:
    settings = settings_for(
        trained,
        tmp_path,
        auth=AuthSettings(enabled=True),
        web=WebSettings(self_service="login"),
    )
    with TestClient(create_app(settings)) as client:
        answer = client.get("/help", follow_redirects=False)
        assert answer.headers["location"] == "/login?next=/help"


def test_switched_off_pages_leave_the_api_alone(trained: Path, tmp_path: Path) -> None:
    settings = settings_for(trained, tmp_path, web=WebSettings(enabled=False))
    with TestClient(create_app(settings)) as client:
        wait_ready(client)

        assert client.get("/help").status_code == 404
        assert client.get("/dashboard").status_code == 404
        assert client.post("/v1/classify", json={"body": "VPN is down"}).status_code == 200


# Interface strings.


def test_every_catalog_has_every_english_string_with_its_placeholders() -> None:
    english = yaml.safe_load((LOCALES / "en.yaml").read_text())
    placeholders = re.compile(r"\{(\w+)\}")
    for path in LOCALES.glob("*.yaml"):
        catalog = yaml.safe_load(path.read_text())
        assert set(catalog) == set(english), path.name
        for key, text in english.items():
            assert set(placeholders.findall(catalog[key])) == set(placeholders.findall(text))


def test_every_string_a_template_asks_for_exists() -> None:
    english = yaml.safe_load((LOCALES / "en.yaml").read_text())
    templates = Path(LOCALES.parent / "templates")
    asked = set()
    for path in templates.glob("*.j2"):
        asked |= set(re.findall(r"""\bt\(["']([a-z_]+\.[a-z_]+)["']""", path.read_text()))
    assert asked - set(english) == set()


@pytest.mark.parametrize(
    ("asked", "remembered", "accept", "chosen"),
    [
        ("de", None, "", "de"),
        (None, "de", "en", "de"),
        (None, None, "fr-FR,de;q=0.8,en;q=0.5", "de"),
        (None, None, "fr", "en"),
        ("xx", None, "de", "de"),
    ],
)
def test_the_page_language_is_chosen_in_order(
    asked: str | None, remembered: str | None, accept: str, chosen: str
) -> None:
    assert choose_language(asked, remembered, accept, "en") == chosen


# The figures.


def _prediction(
    session: Session,
    number: int,
    when: datetime,
    vector: np.ndarray,
    text: str,
    queue: str = "Technical Support",
    language: str = "en",
) -> str:
    prediction_id = f"00000000-0000-0000-0000-{number:012d}"
    session.add(
        Prediction(
            id=prediction_id,
            created_at=when,
            model_name="m",
            model_version="v",
            labels={"queue": queue, "priority": "high"},
            probabilities={"queue": 0.9, "priority": 0.4},
            language=language,
            needs_review=number % 2 == 0,
            subject=text,
            body=text,
            embedding=vector.astype(np.float16).tobytes(),
        )
    )
    return prediction_id


def _direction(seed: int, dimension: int = 32) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=dimension)
    return vector / np.linalg.norm(vector)


@pytest.fixture
def engine(database_url: str) -> Any:
    """A fresh database, SQLite and PostgreSQL in turn."""
    engine = create_database_engine(database_url)
    upgrade_schema(engine)
    yield engine
    engine.dispose()


def _fill_issues(engine: Any, now: datetime, history: bool = True) -> None:
    """A steady printer problem (one ticket a day, or all today without ``history``), a
    mail outage in the last hours, and one ticket about something else. Every embedding
    also carries a large part common to all, as a real encoder's do."""
    rng = np.random.default_rng(0)
    common, printer, mail = _direction(0) * 3, _direction(1), _direction(2)
    number = 0
    with Session(engine) as session, session.begin():
        for day in range(10):
            number += 1
            when = now - (timedelta(days=day, hours=3) if history else timedelta(hours=day))
            vector = common + printer + 0.05 * rng.normal(size=32)
            _prediction(session, number, when, vector, f"printer jam number {number}")
        for hour in range(6):
            number += 1
            vector = common + mail + 0.05 * rng.normal(size=32)
            when = now - timedelta(hours=hour)
            _prediction(session, number, when, vector, f"mailbox outage number {number}")
        _prediction(session, number + 1, now, common + _direction(3), "something else entirely")


def test_recurring_issues_are_found_named_and_flagged_when_they_grow(engine: Any) -> None:
    now = datetime(2026, 12, 4, 12, tzinfo=UTC)
    _fill_issues(engine, now)

    issues = Insights(engine, WebSettings()).recurring_issues(now)

    assert [(i.tickets, i.emerging) for i in issues] == [(10, False), (6, True)]
    assert set(issues[0].words[:2]) == {"printer", "jam"}
    assert set(issues[1].words[:2]) == {"mailbox", "outage"}
    assert issues[0].words.index("number") >= 2  # in nearly every ticket: tells little apart
    assert issues[1].last_day == 6


def test_nothing_is_emerging_without_a_past_to_compare_with(engine: Any) -> None:
    now = datetime(2026, 12, 4, 12, tzinfo=UTC)
    _fill_issues(engine, now, history=False)

    issues = Insights(engine, WebSettings()).recurring_issues(now)

    assert [(i.tickets, i.emerging) for i in issues] == [(10, False), (6, False)]


def test_the_dashboard_reuses_the_issues_it_found_for_a_while(engine: Any) -> None:
    now = datetime.now(UTC)
    _fill_issues(engine, now)
    cached = Insights(engine, WebSettings(cluster_cache_s=3600))
    uncached = Insights(engine, WebSettings(cluster_cache_s=0))
    first = cached.cached_recurring_issues()
    with Session(engine) as session, session.begin():
        for number in range(100, 104):
            _prediction(session, number, now, _direction(9) * 3, f"brand new problem {number}")

    assert cached.cached_recurring_issues() is first
    assert len(uncached.cached_recurring_issues()) == len(first) + 1


def test_words_common_to_every_group_do_not_name_one() -> None:
    printer = ["the printer is jammed", "the printer jams"]
    mailbox = ["the mailbox is full", "the mailbox"]
    others = ["the vpn is down", "the invoice is wrong", "reset the password"]
    named = telling_words([printer, mailbox], printer + mailbox + others)

    assert named[0][0] == "printer"
    assert named[1][0] == "mailbox"
    assert "the" not in (named[0][:2] + named[1][:2])


def test_accuracy_counts_the_latest_feedback_per_prediction(engine: Any) -> None:
    now = datetime.now(UTC)
    with Session(engine) as session, session.begin():
        first = _prediction(session, 1, now, _direction(1), "vpn", language="en")
        second = _prediction(session, 2, now, _direction(2), "rechnung", language="de")
        session.add_all(
            [
                Feedback(prediction_id=first, created_at=now, labels={"queue": "Billing"}),
                # The agent changed their mind: the latest feedback counts.
                Feedback(
                    prediction_id=first, created_at=now, labels={"queue": "Technical Support"}
                ),
                Feedback(prediction_id=second, created_at=now, labels={"queue": "Billing"}),
            ]
        )

    feedback, corrections, figures = Insights(engine, WebSettings()).accuracy(
        Period.last_days(1, now.date())
    )

    assert (feedback, corrections) == (3, 1)
    assert figures.accuracy("queue") == pytest.approx(0.5)
    assert figures.by_language["queue"] == {"en": (1, 1), "de": (1, 0)}


def test_volume_is_counted_per_day_and_queue(engine: Any) -> None:
    today = date(2026, 12, 4)
    noon = datetime(2026, 12, 4, 12, tzinfo=UTC)
    with Session(engine) as session, session.begin():
        _prediction(session, 1, noon, _direction(1), "a")
        _prediction(session, 2, noon - timedelta(days=1), _direction(1), "b", queue="Billing")
        _prediction(session, 3, noon - timedelta(days=9), _direction(1), "c")  # outside

    summary = Insights(engine, WebSettings()).summary(Period.last_days(3, today))

    assert summary.tickets == 2
    assert list(summary.volume_by_day.values()) == [0, 1, 1]
    assert summary.by_queue == {
        "Billing": {date(2026, 12, 3): 1},
        "Technical Support": {today: 1},
    }
    assert summary.needs_review == 1
