"""The OTOBO / Znuny connector against a local server implementing the GenericInterface
web service GenericTicketConnectorREST: the invoker's event in, queue/priority/owner and an
internal article written with TicketUpdate, agents' edits turned into feedback."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from service.__main__ import main
from service.inference.bundle import ModelBundle
from service.settings import ConnectorSettings, OtoboSettings
from tests.connector_apps import connector_client, mapping_file, route_everything_to
from tests.fakes import FakeOtobo
from tests.fakes.otobo import WEBSERVICE

USER, PASSWORD, SECRET = "triage", "otobo-password-3c9f", "otobo-invoker-secret-77aa"
QUEUES = [
    "Support::Technical",
    "Support::Product",
    "Service",
    "IT",
    "Finance::Billing",
    "Service::Returns",
    "IT::Outages",
    "Sales",
    "HR",
    "Misc",
    "Raw",
]
TICKET = ("Drucker druckt nicht", "Der Drucker im zweiten Stock druckt seit gestern nicht mehr.")


@pytest.fixture(scope="module")
def otobo() -> Iterator[FakeOtobo]:
    server = FakeOtobo(USER, PASSWORD, QUEUES).start()
    yield server
    server.stop()


def settings(otobo: FakeOtobo, mapping: Path, **changes: Any) -> ConnectorSettings:
    return ConnectorSettings(
        otobo=OtoboSettings(
            enabled=True,
            url=otobo.url,
            webservice=WEBSERVICE,
            user=USER,
            password=PASSWORD,
            webhook_secret=SECRET,
            mapping=mapping,
            **changes,
        )
    )


@pytest.fixture(scope="module")
def client(
    trained: Path, tmp_path_factory: pytest.TempPathFactory, otobo: FakeOtobo
) -> Iterator[TestClient[Any]]:
    folder = tmp_path_factory.mktemp("otobo")
    mapping = mapping_file(folder, "otobo", 0.0, agents={"anna": "anna"})
    with connector_client(trained, folder, settings(otobo, mapping, assign=True)) as client:
        route_everything_to(client, "anna", ModelBundle.load(trained).heads["queue"])
        yield client


def deliver(client: TestClient[Any], otobo: FakeOtobo, ticket_id: int, event: str) -> Any:
    body, headers = otobo.invoker_call(ticket_id, event, SECRET)
    answer = client.post("/v1/connectors/otobo/events", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def writes_for(otobo: FakeOtobo, ticket_id: int) -> list[dict[str, Any]]:
    return [w for w in otobo.writes if w["TicketID"] == str(ticket_id)]


def test_new_ticket_is_updated_with_queue_priority_owner_and_an_internal_article(
    client: TestClient[Any], otobo: FakeOtobo
) -> None:
    ticket_id = otobo.create_ticket(*TICKET)

    outcome = deliver(client, otobo, ticket_id, "TicketCreate")

    assert outcome["outcome"] == "triaged"
    [update] = writes_for(otobo, ticket_id)
    assert update["Ticket"]["Queue"] in QUEUES and update["Ticket"]["Owner"] == "anna"
    assert update["Article"]["CommunicationChannel"] == "Internal"
    assert update["Article"]["IsVisibleForCustomer"] == 0
    assert outcome["prediction_id"] in update["Article"]["Body"]
    assert "UserLogin" not in update and update["SessionID"] in otobo.sessions


def test_agent_moving_then_closing_becomes_feedback_and_knowledge(
    client: TestClient[Any], otobo: FakeOtobo
) -> None:
    ticket_id = otobo.create_ticket(*TICKET)
    prediction_id = deliver(client, otobo, ticket_id, "TicketCreate")["prediction_id"]

    otobo.agent_update(ticket_id, Queue="HR")
    moved = deliver(client, otobo, ticket_id, "TicketQueueUpdate")
    otobo.agent_close(ticket_id, "Neuen Treiber installiert, der Drucker druckt wieder.")
    closed = deliver(client, otobo, ticket_id, "TicketStateUpdate")

    assert (moved["outcome"], closed["outcome"]) == ("feedback", "closed")
    feedback = client.app.state.feedback.for_prediction(prediction_id)
    assert feedback[0].labels == {"queue": "Human Resources"}
    assert feedback[1].labels["queue"] == "Human Resources"
    assert feedback[1].resolution == "Neuen Treiber installiert, der Drucker druckt wieder."
    entry = client.get(f"/v1/knowledge/otobo:{ticket_id}").json()
    assert entry["labels"]["queue"] == "Human Resources"


def test_the_update_event_of_its_own_write_is_an_echo(
    client: TestClient[Any], otobo: FakeOtobo
) -> None:
    ticket_id = otobo.create_ticket(*TICKET)
    deliver(client, otobo, ticket_id, "TicketCreate")

    echo = deliver(client, otobo, ticket_id, "TicketQueueUpdate")

    assert echo["outcome"] == "echo" and len(writes_for(otobo, ticket_id)) == 1


def test_an_expired_session_is_made_again(client: TestClient[Any], otobo: FakeOtobo) -> None:
    ticket_id = otobo.create_ticket(*TICKET)
    otobo.sessions.clear()

    outcome = deliver(client, otobo, ticket_id, "TicketCreate")

    assert outcome["outcome"] == "triaged" and len(otobo.sessions) == 1


def test_the_invoker_without_the_shared_password_is_refused(
    client: TestClient[Any], otobo: FakeOtobo
) -> None:
    ticket_id = otobo.create_ticket(*TICKET)
    body, headers = otobo.invoker_call(ticket_id, "TicketCreate", "wrong-password")

    answer = client.post("/v1/connectors/otobo/events", content=body, headers=headers)

    assert answer.status_code == 401 and "basic authentication" in answer.json()["detail"]


def test_a_payload_without_a_ticket_id_is_a_clear_400(
    client: TestClient[Any], otobo: FakeOtobo
) -> None:
    _, headers = otobo.invoker_call(1, "TicketCreate", SECRET)

    answer = client.post(
        "/v1/connectors/otobo/events", content=b'{"Event": {"Event": "x"}}', headers=headers
    )

    assert answer.status_code == 400
    assert "expected the invoker's data with a numeric TicketID" in answer.json()["detail"]


def test_polling_searches_new_tickets_and_logs_no_session(
    client: TestClient[Any], otobo: FakeOtobo, caplog: pytest.LogCaptureFixture
) -> None:
    ticket_id = otobo.create_ticket(*TICKET)

    with caplog.at_level(logging.INFO):
        outcomes = client.post("/v1/connectors/otobo/poll").json()["outcomes"]

    assert str(ticket_id) in {o["ticket_id"] for o in outcomes}
    assert otobo.calls("GET", f"{WEBSERVICE}/Ticket")[-1].arg("StateType") == "new"
    assert "SessionID=<redacted>" in caplog.text
    assert not any(session in caplog.text for session in otobo.sessions)
    assert PASSWORD not in caplog.text


def test_serve_refuses_a_review_tag_otobo_cannot_set(
    trained: Path,
    tmp_path: Path,
    otobo: FakeOtobo,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    mapping = mapping_file(tmp_path, "otobo", 0.5, review={"tag": "triage-review"})
    for name, value in {
        "TRIAGE_MODEL_DIR": str(trained),
        "TRIAGE_DATA_DIR": str(tmp_path),
        "TRIAGE_OTOBO_ENABLED": "true",
        "TRIAGE_OTOBO_URL": otobo.url,
        "TRIAGE_OTOBO_USER": USER,
        "TRIAGE_OTOBO_PASSWORD": PASSWORD,
        "TRIAGE_OTOBO_MAPPING": str(mapping),
    }.items():
        monkeypatch.setenv(name, value)

    assert main(["serve"]) == 2
    assert "review.tag: OTOBO and Znuny tickets have no tags" in capsys.readouterr().err
