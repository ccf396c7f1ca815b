"""The web pages in a real browser (Debian's headless Chromium, driven by Playwright) against
a real server: a ticket filed through self-service, opened and corrected in the agent view,
and the feedback counted on the dashboard.

Screenshots of each step are kept in ``$TRIAGE_TEST_ARTIFACTS/browser`` (by default
``runs/test-artifacts/browser``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import ROOT, RunningServer, create_keys, free_port, running_server
from tests.servers import server_environment as environment_for

CHROMIUM = os.environ.get("TRIAGE_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("TRIAGE_TEST_ARTIFACTS", ROOT / "runs" / "test-artifacts"))

# Skipped without Chromium, unless TRIAGE_TEST_REQUIRE_BROWSER is set (as CI does): then the
# launch fails and says why.
pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None and not os.environ.get("TRIAGE_TEST_REQUIRE_BROWSER"),
    reason=f"no Chromium at {CHROMIUM}: `make browser` installs Debian's chromium package",
)

KNOWLEDGE = [
    {
        "source_id": "kb-vpn",
        "subject": "VPN disconnects every few minutes",
        "body": "The VPN client drops the connection every five minutes.",
        "resolution": "Update the VPN client to 5.2 and switch the protocol to IKEv2.",
        "language": "en",
    },
    {
        "source_id": "kb-printer",
        "subject": "Printer shows paper jam",
        "body": "The office printer reports a paper jam but there is no paper stuck.",
        "resolution": "Open tray 2, remove the small roller cover and clean the sensor.",
        "language": "en",
    },
]


@pytest.fixture(scope="module")
def server(
    trained: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, dict[str, str]]]:
    data_dir = tmp_path_factory.mktemp("browser-server")
    keys = create_keys(
        data_dir, {"admin": ["admin"], "agent": ["agent"], "lead": ["lead"]}
    )
    port = free_port()
    environment = environment_for(
        trained,
        port,
        data_dir,
        TRIAGE_AUTH_ENABLED="true",
        TRIAGE_KNOWLEDGE_EMBEDDER="use",
    )
    with running_server(environment, data_dir / "server.log") as running:
        admin = {"Authorization": f"Bearer {keys['admin']}"}
        with httpx.Client(base_url=running.url, headers=admin, timeout=30) as api:
            assert api.post("/v1/knowledge", json={"entries": KNOWLEDGE}).status_code == 200
            queues = api.get("/v1/models").json()["heads"]["queue"]
            assert api.put("/v1/teams/Service Desk", json={"queues": queues}).status_code == 200
            agent = {
                "skills": {queue: 3 for queue in queues},
                "languages": ["en", "de"],
                "team": "Service Desk",
            }
            assert api.put("/v1/agents/alice", json=agent).status_code == 200
        yield running, keys


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def shots() -> Path:
    folder = ARTIFACTS / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sign_in(page: Any, url: str, key: str, target: str) -> None:
    page.goto(f"{url}{target}")
    assert "/login" in page.url  # sent to sign in first
    page.fill("#key", key)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}{target}*")


def test_a_ticket_goes_from_self_service_to_feedback_on_the_dashboard(
    server: tuple[RunningServer, dict[str, str]], browser: Any, shots: Path
) -> None:
    running, keys = server
    url = running.url

    # Someone describes a problem; answers appear as they type; none helps, so they file.
    requester = browser.new_page(locale="en-US")
    requester.goto(f"{url}/help")
    requester.fill("#subject", "VPN keeps dropping")
    requester.type("#body", "The VPN client drops the connection every five minutes.")
    requester.wait_for_selector("#answers:not([hidden]) li.answer")
    assert "Update the VPN client" in requester.inner_text("#answer-list")
    requester.screenshot(path=shots / "1-self-service-answers.png", full_page=True)
    requester.fill("#requester", "max@example.com")
    requester.click("#file-ticket")
    requester.wait_for_selector("text=Ticket sent")
    requester.screenshot(path=shots / "2-self-service-filed.png", full_page=True)

    # An agent signs in, opens it from the recent tickets and corrects the queue.
    agent = browser.new_page(locale="en-US")
    sign_in(agent, url, keys["agent"], "/agent")
    agent.click("tr:has(.badge:text('self-service')) a.ticket-link")
    agent.wait_for_selector("#ticket")
    assert "Filed through self-service by max@example.com" in agent.content()
    queue = agent.locator(".head[data-head=queue]")
    predicted = queue.get_attribute("data-predicted")
    choices = queue.locator("option").all_inner_texts()
    corrected = next(choice for choice in choices if choice != predicted)
    queue.locator("select").select_option(corrected)
    assert queue.locator("button.save-label").inner_text() == "Correct"
    queue.locator("button.save-label").click()
    queue.locator(f".saved:text('Corrected to {corrected}')").wait_for()
    agent.locator(".use-suggestion").first.click()
    agent.wait_for_selector("#feedback-status:text('Feedback saved (2)')")
    agent.screenshot(path=shots / "3-agent-corrected.png", full_page=True)

    # The agent's role does not open the dashboard; a lead's does, and counts the feedback.
    assert agent.goto(f"{url}/dashboard").status == 403
    lead = browser.new_page(locale="de-DE")
    sign_in(lead, url, keys["lead"], "/dashboard")
    assert lead.inner_text("#tile-feedback") == "2"
    assert lead.inner_text("#tile-corrections") == "1"
    assert "Modellgenauigkeit laut Feedback" in lead.content()  # German from the browser
    assert lead.locator("section.chart svg").count() >= 4
    lead.screenshot(path=shots / "4-dashboard.png", full_page=True)
