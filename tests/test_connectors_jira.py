"""The Jira Service Management connector against a local server implementing the parts of
Jira Cloud REST API v3 and the Service Desk REST API it uses: webhook in, priority,
component, assignee and an internal comment written back, agents' edits into feedback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from service.connectors.jira import adf_text
from service.inference.bundle import ModelBundle
from service.settings import ConnectorSettings, JiraSettings
from tests.connector_apps import connector_client, mapping_file, route_everything_to
from tests.fakes import FakeJira
from tests.fakes.jira import adf

EMAIL, API_TOKEN, SECRET = "triage@example.com", "jira-api-token-5d2e9b", "jira-webhook-secret-41c"
ANNA = "5b10a2844c20165700ede21g"
COMPONENTS = [
    "Technical Support",
    "Product Support",
    "Customer Service",
    "IT Help",
    "Billing",
    "Returns",
    "Outages",
    "Sales",
    "HR",
    "General",
]
ISSUE = ("Laptop will not boot", "My laptop shows a black screen after the update.")


@pytest.fixture(scope="module")
def jira() -> Iterator[FakeJira]:
    server = FakeJira(EMAIL, API_TOKEN, COMPONENTS).start()
    yield server
    server.stop()


def settings(jira: FakeJira, mapping: Path, **changes: Any) -> ConnectorSettings:
    return ConnectorSettings(
        jira=JiraSettings(
            enabled=True,
            url=jira.url,
            email=EMAIL,
            api_token=API_TOKEN,
            webhook_secret=SECRET,
            mapping=mapping,
            **changes,
        )
    )


@pytest.fixture(scope="module")
def client(
    trained: Path, tmp_path_factory: pytest.TempPathFactory, jira: FakeJira
) -> Iterator[TestClient[Any]]:
    folder = tmp_path_factory.mktemp("jira")
    mapping = mapping_file(folder, "jira", 0.0)
    with connector_client(trained, folder, settings(jira, mapping, assign=True)) as client:
        route_everything_to(client, "anna", ModelBundle.load(trained).heads["queue"])
        yield client


def deliver(client: TestClient[Any], jira: FakeJira, key: str, event: str, **extra: Any) -> Any:
    body, headers = jira.webhook(key, event, SECRET, **extra)
    answer = client.post("/v1/connectors/jira/events", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def writes_for(jira: FakeJira, key: str) -> list[tuple[str, str, Any]]:
    return [w for w in jira.writes if f"/{key}" in w[1]]


def test_created_issue_gets_priority_component_assignee_and_an_internal_comment(
    client: TestClient[Any], jira: FakeJira
) -> None:
    key = jira.create_issue(*ISSUE)

    outcome = deliver(client, jira, key, "jira:issue_created")

    assert outcome["outcome"] == "triaged"
    edit, assign, comment = writes_for(jira, key)
    assert edit[1] == f"/rest/api/3/issue/{key}"
    assert edit[2]["fields"]["priority"]["name"] in ("Low", "Medium", "High")
    assert edit[2]["fields"]["components"][0]["name"] in COMPONENTS
    assert assign[1].endswith("/assignee") and assign[2] == {"accountId": ANNA}
    assert comment[1] == f"/rest/servicedeskapi/request/{key}/comment"
    assert comment[2]["public"] is False and outcome["prediction_id"] in comment[2]["body"]


def test_priority_change_then_resolution_become_feedback_and_knowledge(
    client: TestClient[Any], jira: FakeJira
) -> None:
    key = jira.create_issue(*ISSUE)
    prediction_id = deliver(client, jira, key, "jira:issue_created")["prediction_id"]
    written = jira.issues[key]["fields"]["priority"]["name"]
    chosen = "High" if written != "High" else "Low"

    jira.agent_update(key, priority={"name": chosen})
    moved = deliver(
        client,
        jira,
        key,
        "jira:issue_updated",
        changelog=[{"field": "priority", "fromString": written, "toString": chosen}],
    )
    jira.agent_resolve(key, "Rolled back the graphics driver; the laptop boots again.")
    resolved = deliver(
        client,
        jira,
        key,
        "jira:issue_updated",
        changelog=[{"field": "resolution", "fromString": None, "toString": "Done"}],
    )

    assert (moved["outcome"], resolved["outcome"]) == ("feedback", "closed")
    feedback = client.app.state.feedback.for_prediction(prediction_id)
    assert feedback[0].labels == {"priority": chosen.lower()}
    assert feedback[0].agent == "agent-account"
    assert feedback[1].resolution == "Rolled back the graphics driver; the laptop boots again."
    entry = client.get(f"/v1/knowledge/jira:{key}").json()
    assert entry["labels"]["priority"] == chosen.lower()


def test_the_update_webhook_of_its_own_edit_is_an_echo(
    client: TestClient[Any], jira: FakeJira
) -> None:
    key = jira.create_issue(*ISSUE)
    prediction_id = deliver(client, jira, key, "jira:issue_created")["prediction_id"]

    echo = deliver(client, jira, key, "jira:issue_updated", user="triage-account")

    assert echo["outcome"] == "echo"
    assert client.app.state.feedback.for_prediction(prediction_id) == []


def test_an_update_of_an_issue_never_triaged_is_ignored(
    client: TestClient[Any], jira: FakeJira
) -> None:
    key = jira.create_issue(*ISSUE)

    outcome = deliver(client, jira, key, "jira:issue_updated")

    assert outcome["outcome"] == "ignored" and writes_for(jira, key) == []


def test_other_webhook_events_are_ignored(client: TestClient[Any], jira: FakeJira) -> None:
    key = jira.create_issue(*ISSUE)
    body, headers = jira.webhook(key, "comment_created", SECRET)

    answer = client.post("/v1/connectors/jira/events", content=body, headers=headers)

    assert answer.json()["outcome"] == "ignored"


def test_low_confidence_only_labels_the_issue_for_review(
    trained: Path, tmp_path: Path, jira: FakeJira
) -> None:
    mapping = mapping_file(tmp_path, "jira", 0.999)
    key = jira.create_issue(*ISSUE)

    with connector_client(trained, tmp_path, settings(jira, mapping, assign=True)) as client:
        outcome = deliver(client, jira, key, "jira:issue_created")

    assert outcome["outcome"] == "review"
    edit = writes_for(jira, key)[0][2]
    assert edit == {"update": {"labels": [{"add": "triage-review"}]}}
    assert jira.issues[key]["fields"]["assignee"] is None


def test_a_webhook_signed_with_another_secret_is_refused(
    client: TestClient[Any], jira: FakeJira
) -> None:
    key = jira.create_issue(*ISSUE)
    body, headers = jira.webhook(key, "jira:issue_created", "another-secret")

    answer = client.post("/v1/connectors/jira/events", content=body, headers=headers)

    assert answer.status_code == 401 and writes_for(jira, key) == []


def test_polling_runs_the_jql_search(client: TestClient[Any], jira: FakeJira) -> None:
    key = jira.create_issue(*ISSUE)

    outcomes = client.post("/v1/connectors/jira/poll").json()["outcomes"]

    assert key in {o["ticket_id"] for o in outcomes}
    search = jira.calls("GET", "/rest/api/3/search/jql")[-1]
    assert search.arg("jql") == 'statusCategory = "To Do" ORDER BY created DESC'
    assert "components" in (search.arg("fields") or "")


def test_rich_text_is_read_as_plain_text() -> None:
    assert adf_text(adf("Black screen")).strip() == "Black screen"
    assert adf_text("wiki *text*") == "wiki *text*"


def test_a_queue_field_jira_does_not_have_shows_as_jiras_400(
    trained: Path, tmp_path: Path, jira: FakeJira
) -> None:
    mapping = mapping_file(tmp_path, "jira", 0.0, options={"queue_field": "customfield_10050"})
    key = jira.create_issue(*ISSUE)

    with connector_client(trained, tmp_path, settings(jira, mapping)) as client:
        body, headers = jira.webhook(key, "jira:issue_created", SECRET)
        answer = client.post("/v1/connectors/jira/events", content=body, headers=headers)

    assert answer.status_code == 502
    assert "customfield_10050" in answer.json()["detail"] and "found 400" in answer.text


def test_an_agent_without_an_account_id_is_not_assigned(
    trained: Path, tmp_path: Path, jira: FakeJira, caplog: pytest.LogCaptureFixture
) -> None:
    mapping = mapping_file(tmp_path, "jira", 0.0, agents={})
    key = jira.create_issue(*ISSUE)

    with connector_client(trained, tmp_path, settings(jira, mapping, assign=True)) as client:
        route_everything_to(client, "anna", ModelBundle.load(trained).heads["queue"])
        outcome = deliver(client, jira, key, "jira:issue_created")

    assert outcome["outcome"] == "triaged"
    assert not [w for w in writes_for(jira, key) if w[1].endswith("/assignee")]
    assert "names no accountId for this agent" in caplog.text
