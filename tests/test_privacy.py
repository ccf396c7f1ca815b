"""Personal data: what is redacted, what is kept, and that logs and the knowledge base
get the redacted text."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from service.api.app import create_app
from service.security.privacy import RedactingFilter, Redactor
from service.settings import KnowledgeSettings, PrivacySettings
from tests.servers import free_port, running_server, server_environment
from tests.test_api import settings_for, wait_ready

REDACTOR = Redactor()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to jan.de-vries@example.co.uk today", "write to <EMAIL> today"),
        ("Antwort an müller+tickets@firma.de bitte", "Antwort an <EMAIL> bitte"),
        ("call +49 171 1234567 now", "call <PHONE> now"),
        ("Ruf an: 0171 1234567", "Ruf an: <PHONE>"),
        ("Büro 030/12345678", "Büro <PHONE>"),
        ("call (415) 555-2671 please", "call <PHONE> please"),
        ("Tél. 06 12 34 56 78", "Tél. <PHONE>"),
        ("llame al 612 345 678", "llame al <PHONE>"),
        ("0044 20 7946 0958 is London", "<PHONE> is London"),
        ("IBAN DE89 3704 0044 0532 0130 00.", "IBAN <IBAN>."),
        ("FR1420041010050500013M02606", "<IBAN>"),
        ("card 4111 1111 1111 1111 exp 12/29", "card <CARD> exp 12/29"),
        ("Karte 5555-5555-5555-4444", "Karte <CARD>"),
    ],
)
def test_personal_data_is_replaced_by_its_placeholder(text: str, expected: str) -> None:
    assert REDACTOR.redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "version 2.15.1 since 2024-05-01 and 01.05.2024",
        "model ticket-triage 2026.12.04-083553 loaded",
        "order 20231204, invoice 1234567890123, ticket #123456",
        "server 192.168.100.200 port 8080",
        "IBAN DE00 3704 0044 0532 0130 00 (check digits wrong)",
        "card 4111 1111 1111 1112 (fails Luhn)",
        "error code 0x80070005",
    ],
)
def test_numbers_that_are_not_personal_data_are_kept(text: str) -> None:
    assert REDACTOR.redact(text) == text


def test_the_log_filter_redacts_messages_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tests.privacy")
    handler = caplog.handler
    handler.addFilter(RedactingFilter())
    try:
        logger.warning("mail from %s", "eve@example.org")
        try:
            raise ValueError("card 4111 1111 1111 1111 refused")
        except ValueError:
            logger.exception("payment failed")
    finally:
        handler.removeFilter(handler.filters[-1])

    assert "eve@example.org" not in caplog.text and "mail from <EMAIL>" in caplog.text
    assert "4111 1111 1111 1111" not in caplog.text and "card <CARD> refused" in caplog.text


def test_ticket_text_is_not_logged_and_personal_data_not_even_at_debug(
    trained: Path, tmp_path: Path
) -> None:
    marker = "Zebrafinkenvoliere"
    ticket = {
        "subject": f"{marker} kaputt",
        "body": "Bitte an hans.meier@example.de schreiben oder 0171 1234567 anrufen. "
        "IBAN DE89 3704 0044 0532 0130 00.",
    }
    environment = server_environment(trained, free_port(), tmp_path, TRIAGE_LOG_LEVEL="DEBUG")

    with running_server(environment, tmp_path / "server.log") as server:
        assert httpx.post(f"{server.url}/v1/classify", json=ticket).status_code == 200
        assert httpx.post(f"{server.url}/v1/classify", json={"body": " "}).status_code == 400
        broken = '{"body": "write to hans.meier@example.de", '
        answer = httpx.post(
            f"{server.url}/v1/classify",
            content=broken,
            headers={"Content-Type": "application/json"},
        )
        assert answer.status_code == 400
    log = server.output()

    assert "DEBUG" in log  # the server did log at DEBUG
    for secret in ("hans.meier@example.de", "0171 1234567", "DE89 3704"):
        assert secret not in log
    above_debug = [line for line in log.splitlines() if " DEBUG " not in line]
    assert not [line for line in above_debug if marker in line]


def test_knowledge_entries_are_stored_redacted_when_asked(trained: Path, tmp_path: Path) -> None:
    settings = settings_for(
        trained,
        tmp_path,
        knowledge=KnowledgeSettings(embedder="use"),
        privacy=PrivacySettings(redact_knowledge=True),
    )
    entry = {
        "source_id": "Z-7",
        "subject": "Rückruf an +49 171 1234567",
        "body": "Kunde jan@example.com kann sich nicht anmelden.",
        "resolution": "Passwort zurückgesetzt, Bestätigung an jan@example.com geschickt.",
    }

    client: TestClient[Any]
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        assert client.post("/v1/knowledge", json={"entries": [entry]}).status_code == 200
        stored = client.get("/v1/knowledge/Z-7").json()

    assert stored["subject"] == "Rückruf an <PHONE>"
    assert stored["body"] == "Kunde <EMAIL> kann sich nicht anmelden."
    assert "jan@example.com" not in stored["resolution"]
