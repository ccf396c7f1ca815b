"""Generic webhooks: signed tickets in (HMAC-SHA256 with a timestamp), signed results out
with retries, dead letters that lose nothing, and replay by API and command line."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from service.__main__ import main
from service.connectors import Outbox
from service.connectors.webhooks import SIGNATURE_HEADER, sign, verify_signature
from service.errors import UnauthorizedError
from service.settings import AuthSettings, ConnectorSettings, WebhookSettings
from service.storage import create_database_engine, upgrade_schema
from tests.connector_apps import connector_client, wait_for
from tests.fakes import FakeServer, Reply, Request
from tests.servers import create_keys, free_port

INBOUND, OUTBOUND = "inbound-secret-8c1d5e2f", "outbound-secret-2a9b7c4e"
TICKET = {"id": "T-1", "subject": "VPN down", "body": "The VPN drops every five minutes."}


class Receiver(FakeServer):
    """A webhook receiver that fails the first ``failures`` posts with 503."""

    def __init__(self, failures: int, port: int = 0) -> None:
        super().__init__(port)
        self.failures = failures
        self.received: list[Request] = []
        self.route("POST", "/hook", self._receive)

    def _receive(self, request: Request) -> Reply:
        if self.failures > 0:
            self.failures -= 1
            return Reply(503, {"error": "down for maintenance"})
        self.received.append(request)
        return Reply(204)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(failures=10_000).start()
    yield server
    server.stop()


def webhook_settings(receiver: Receiver, **changes: Any) -> ConnectorSettings:
    return ConnectorSettings(
        webhooks=WebhookSettings(
            inbound_enabled=True,
            inbound_secret=INBOUND,
            outbound_url=f"{receiver.url}/hook",
            outbound_secret=OUTBOUND,
            max_attempts=3,
            backoff_s=0.05,
            **changes,
        )
    )


#: Every prediction counts as confident, so that results are never held for review.
CONFIDENT = {"confidence_thresholds": {"queue": 0.0, "priority": 0.0, "type": 0.0}}


@pytest.fixture
def client(trained: Path, tmp_path: Path, receiver: Receiver) -> Iterator[TestClient[Any]]:
    with connector_client(trained, tmp_path, webhook_settings(receiver), **CONFIDENT) as client:
        yield client


def post(
    client: TestClient[Any], event: dict[str, Any], secret: str = INBOUND, at: int | None = None
) -> Any:
    body = json.dumps(event).encode()
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, body, at)}
    return client.post("/v1/connectors/webhook/events", content=body, headers=headers)


def created(event_id: str = "evt-1") -> dict[str, Any]:
    return {"event_id": event_id, "type": "ticket.created", "ticket": TICKET}


def test_a_signed_ticket_is_triaged_and_answered(client: TestClient[Any]) -> None:
    answer = post(client, created())

    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["outcome"] == "triaged" and result["ticket_id"] == "T-1"
    assert set(result["result"]["labels"]) == {"queue", "priority", "type"}


def test_a_wrong_signature_is_refused_with_401(client: TestClient[Any]) -> None:
    answer = post(client, created(), secret="another-secret-0000")

    assert answer.status_code == 401
    assert "does not match" in answer.json()["detail"]


def test_a_stale_signature_is_refused_with_401(client: TestClient[Any]) -> None:
    answer = post(client, created(), at=int(time.time()) - 3600)

    assert answer.status_code == 401 and "within 300 s" in answer.json()["detail"]


def test_a_later_update_with_other_labels_is_feedback(client: TestClient[Any]) -> None:
    first = post(client, created()).json()
    predicted = first["result"]["labels"]["queue"]["label"]
    other = "Human Resources" if predicted != "Human Resources" else "IT Support"
    update = {"event_id": "evt-2", "type": "ticket.updated", "ticket": {**TICKET, "queue": other}}

    outcome = post(client, update).json()

    assert outcome["outcome"] == "feedback"
    feedback = client.app.state.feedback.for_prediction(first["prediction_id"])
    assert feedback[0].labels == {"queue": other}


def test_malformed_events_get_a_clear_400(client: TestClient[Any]) -> None:
    no_type = post(client, {"event_id": "e", "ticket": TICKET})
    not_json = client.post(
        "/v1/connectors/webhook/events",
        content=b"{nope",
        headers={SIGNATURE_HEADER: sign(INBOUND, b"{nope")},
    )

    assert no_type.status_code == 400 and "type: expected one of" in no_type.json()["detail"]
    assert not_json.status_code == 400 and "expected JSON" in not_json.json()["detail"]


def test_a_disabled_connector_answers_404_with_the_setting_to_change(
    client: TestClient[Any],
) -> None:
    answer = client.post("/v1/connectors/zammad/events", content=b"{}")

    assert answer.status_code == 404 and "TRIAGE_ZAMMAD_ENABLED=true" in answer.json()["detail"]


def test_signatures_are_checked_in_constant_time_against_the_exact_body() -> None:
    body = b'{"a": 1}'
    header = sign(INBOUND, body, 1_000)

    verify_signature(INBOUND, body, header, 300, now=1_100)
    with pytest.raises(UnauthorizedError):
        verify_signature(INBOUND, body + b" ", header, 300, now=1_100)


def test_failed_deliveries_are_retried_then_dead_lettered_then_replayed(
    client: TestClient[Any], receiver: Receiver
) -> None:
    post(client, created("evt-dead"))

    def deliveries(status: str) -> list[dict[str, Any]]:
        answer = client.get("/v1/connectors/deliveries", params={"status": status})
        return answer.json()["deliveries"]

    wait_for(lambda: len(deliveries("dead")) == 1)
    [dead] = deliveries("dead")
    assert dead["attempts"] == 3 and "HTTP 503" in dead["last_error"]
    assert dead["payload"]["ticket_id"] == "T-1"
    assert client.get("/v1/connectors").json()["outbound"]["dead"] == 1

    receiver.failures = 0
    replayed = client.post(f"/v1/connectors/deliveries/{dead['id']}/replay")
    wait_for(lambda: len(receiver.received) == 1)

    assert replayed.status_code == 200 and replayed.json()["status"] == "pending"
    delivered = receiver.received[0]
    assert delivered.headers["x-triage-event"] == "ticket.triaged"
    assert delivered.headers["x-triage-delivery"] == str(dead["id"])
    verify_signature(OUTBOUND, delivered.body, delivered.headers["x-triage-signature"], 300)
    assert json.loads(delivered.body) == dead["payload"]
    wait_for(lambda: len(deliveries("delivered")) == 1)


def test_a_delivery_that_is_not_dead_cannot_be_replayed(client: TestClient[Any]) -> None:
    missing = client.post("/v1/connectors/deliveries/999/replay")

    assert missing.status_code == 404


def test_the_command_line_replays_dead_letters(
    trained: Path,
    tmp_path: Path,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with connector_client(trained, tmp_path, webhook_settings(receiver)) as client:
        post(client, created("evt-cli"))
        wait_for(
            lambda: client.get("/v1/connectors/deliveries", params={"status": "dead"}).json()[
                "deliveries"
            ]
        )
    receiver.failures = 0
    for name, value in {
        "TRIAGE_MODEL_DIR": str(trained),
        "TRIAGE_DATA_DIR": str(tmp_path),
        "TRIAGE_WEBHOOK_OUTBOUND_URL": f"{receiver.url}/hook",
        "TRIAGE_WEBHOOK_OUTBOUND_SECRET": OUTBOUND,
    }.items():
        monkeypatch.setenv(name, value)

    assert main(["connectors", "replay", "--all"]) == 0
    replayed = capsys.readouterr().out
    assert main(["connectors", "deliveries", "--status", "delivered"]) == 0

    assert "replayed 1 dead deliveries, 1 delivered now" in replayed
    assert json.loads(receiver.received[0].body)["ticket_id"] == "T-1"
    assert "delivered  ticket.triaged  attempts 1" in capsys.readouterr().out


def test_a_delivery_stored_while_the_receiver_is_down_survives_a_restart(
    tmp_path: Path,
) -> None:
    engine = create_database_engine(f"sqlite:///{tmp_path / 'triage.db'}")
    upgrade_schema(engine)
    port = free_port()  # nothing listens there yet
    settings = WebhookSettings(
        outbound_url=f"http://127.0.0.1:{port}/hook", outbound_secret=OUTBOUND, backoff_s=0.0
    )
    first = Outbox(engine, settings)
    delivery_id = first.enqueue("ticket.triaged", {"ticket_id": "T-9"})
    assert delivery_id is not None
    assert asyncio.run(first.attempt(delivery_id)) is False
    asyncio.run(first.stop())

    receiver = Receiver(failures=0, port=port).start()
    second = Outbox(engine, settings)
    delivered = asyncio.run(second.deliver_due())
    record = second.get(delivery_id)
    asyncio.run(second.stop())
    receiver.stop()
    engine.dispose()

    assert delivered == 1 and json.loads(receiver.received[0].body) == {"ticket_id": "T-9"}
    assert record is not None and record.status == "delivered" and record.attempts == 2


def test_webhooks_need_no_api_key_but_the_other_routes_need_their_scope(
    trained: Path, tmp_path: Path, receiver: Receiver
) -> None:
    keys = create_keys(tmp_path, {"reader": ["predict"], "operator": ["connectors:write"]})
    auth = AuthSettings(enabled=True, cache_s=0)

    with connector_client(
        trained, tmp_path, webhook_settings(receiver), auth=auth, **CONFIDENT
    ) as client:
        event = post(client, created("evt-auth"))
        anonymous = client.get("/v1/connectors/deliveries")
        reader = client.get(
            "/v1/connectors/deliveries", headers={"Authorization": f"Bearer {keys['reader']}"}
        )
        operator = client.get(
            "/v1/connectors/deliveries", headers={"Authorization": f"Bearer {keys['operator']}"}
        )

    assert event.status_code == 200, event.text
    assert (anonymous.status_code, reader.status_code, operator.status_code) == (401, 403, 200)
