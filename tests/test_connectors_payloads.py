"""Whatever a caller posts to a connector's webhook, properly signed, the answer is a result
or a clear 4xx (or 502 when the system refuses the follow-up call), never a 500."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from service.connectors.webhooks import SIGNATURE_HEADER, sign
from service.settings import (
    ConnectorSettings,
    JiraSettings,
    OtoboSettings,
    WebhookSettings,
    ZammadSettings,
)
from tests.connector_apps import EXAMPLES, connector_client, mapping_file
from tests.fakes import FakeJira, FakeOtobo, FakeZammad

SECRET = "payload-test-secret-1234"


def queue_names(system: str) -> list[str]:
    """The system's queue names of the example mapping, and its review queue."""
    mapping = yaml.safe_load((EXAMPLES / f"{system}.yaml").read_text())
    return [*mapping["labels"]["queue"].values(), mapping["review"].get("queue") or "Users"]


@pytest.fixture(scope="module")
def client(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient[Any]]:
    folder = tmp_path_factory.mktemp("payloads")
    zammad = FakeZammad("token", queue_names("zammad")).start()
    otobo = FakeOtobo("triage", "password", queue_names("otobo")).start()
    jira = FakeJira("a@b.example", "token", queue_names("jira")).start()
    for number in range(3):  # tickets for the payloads that name one, to go the whole way
        zammad.create_ticket(f"ticket {number}", "The printer is broken.")
        otobo.create_ticket(f"ticket {number}", "The printer is broken.")
        jira.create_issue(f"ticket {number}", "The printer is broken.")
    connectors = ConnectorSettings(
        zammad=ZammadSettings(
            enabled=True,
            url=zammad.url,
            token="token",
            webhook_secret=SECRET,
            mapping=mapping_file(folder, "zammad", 0.0),
        ),
        otobo=OtoboSettings(
            enabled=True,
            url=otobo.url,
            user="triage",
            password="password",
            webhook_secret=SECRET,
            mapping=mapping_file(folder, "otobo", 0.0),
        ),
        jira=JiraSettings(
            enabled=True,
            url=jira.url,
            email="a@b.example",
            api_token="token",
            webhook_secret=SECRET,
            mapping=mapping_file(folder, "jira", 0.0),
        ),
        webhooks=WebhookSettings(inbound_enabled=True, inbound_secret=SECRET),
    )
    with connector_client(trained, folder, connectors) as test_client:
        yield test_client
    for server in (zammad, otobo, jira):
        server.stop()


def signed(system: str, body: bytes) -> dict[str, str]:
    """The headers that authenticate ``body`` for ``system``."""
    if system == "zammad":
        return {"X-Hub-Signature": "sha1=" + hmac.new(SECRET.encode(), body, "sha1").hexdigest()}
    if system == "jira":
        digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        return {"X-Hub-Signature": f"sha256={digest}"}
    if system == "otobo":
        return {"Authorization": "Basic " + base64.b64encode(f"x:{SECRET}".encode()).decode()}
    return {SIGNATURE_HEADER: sign(SECRET, body)}


@pytest.mark.parametrize(
    ("system", "payload", "expected"),
    [
        ("zammad", {"ticket": {"id": "../users"}}, "expected Zammad's webhook payload"),
        ("zammad", {"article": {}}, "expected Zammad's webhook payload"),
        ("otobo", {"Event": {"Event": "TicketCreate", "TicketID": "1/../2"}}, "numeric TicketID"),
        ("jira", {"webhookEvent": "jira:issue_created", "issue": {"key": "../x"}}, "like SD-12"),
        ("webhook", {"event_id": "e", "type": "ticket.created", "ticket": {"id": "1"}}, "text"),
        ("webhook", {"event_id": "e", "type": "x", "ticket": {}}, "type: expected one of"),
        (
            "webhook",
            {"event_id": "e", "type": "ticket.created", "ticket": {"id": "1", "body": "a\u0000b"}},
            "NUL",
        ),
    ],
)
def test_malformed_payloads_get_a_400_saying_what_was_expected(
    client: TestClient[Any], system: str, payload: dict[str, Any], expected: str
) -> None:
    body = json.dumps(payload).encode()

    answer = client.post(
        f"/v1/connectors/{system}/events", content=body, headers=signed(system, body)
    )

    assert answer.status_code == 400, answer.text
    assert expected in answer.json()["detail"]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
TICKET_ID = st.integers(1, 4)
SHAPES = {
    "zammad": st.fixed_dictionaries(
        {
            "ticket": JSON
            | st.fixed_dictionaries(
                {"id": TICKET_ID},
                optional={
                    k: JSON
                    for k in ("title", "group", "priority", "state", "article_count", "updated_by")
                },
            ),
            "article": JSON,
        }
    ),
    "otobo": st.fixed_dictionaries(
        {
            "Event": JSON | st.fixed_dictionaries({"Event": JSON, "TicketID": TICKET_ID}),
            "Ticket": JSON,
        }
    ),
    "jira": st.fixed_dictionaries(
        {
            "webhookEvent": st.sampled_from(["jira:issue_created", "jira:issue_updated"]),
            "issue": JSON
            | st.fixed_dictionaries(
                {"key": TICKET_ID.map(lambda n: f"SD-{n}")}, optional={"fields": JSON}
            ),
            "user": JSON,
        }
    ),
    "webhook": st.fixed_dictionaries(
        {
            "event_id": JSON | st.text(min_size=1, max_size=30),
            "type": st.sampled_from(["ticket.created", "ticket.closed"]),
            "ticket": JSON
            | st.fixed_dictionaries(
                {"id": st.text(min_size=1, max_size=10), "body": st.text(min_size=1)},
                optional={k: JSON for k in ("subject", "queue", "language", "resolution")},
            ),
        }
    ),
}


@pytest.mark.parametrize("system", sorted(SHAPES))
def test_no_signed_payload_makes_a_server_error(client: TestClient[Any], system: str) -> None:
    statuses: set[int] = set()

    @given(payload=SHAPES[system])
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    def post(payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        answer = client.post(
            f"/v1/connectors/{system}/events", content=body, headers=signed(system, body)
        )
        statuses.add(answer.status_code)
        assert answer.status_code in (200, 400, 502), (payload, answer.text)

    post()
    assert {200, 400} <= statuses  # some payloads went the whole way, some were refused
