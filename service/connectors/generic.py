"""The generic inbound webhook: any system posts tickets in the model's own labels.

``POST /v1/connectors/webhook/events`` with ``X-Triage-Signature`` (see
``service.connectors.webhooks``) and::

    {"event_id": "evt-1", "type": "ticket.created" | "ticket.updated" | "ticket.closed",
     "ticket": {"id": "42", "subject": "...", "body": "...", "language": "en",
                "queue": "IT Support", "priority": "high", "resolution": "...",
                "agent": "anna"}}

There is nothing to write back to: the result is the answer, and is posted to the outbound
webhook when one is configured. ``queue`` and ``priority`` of a later ``ticket.updated``
or ``ticket.closed`` are the labels the agent settled on, and become feedback.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.api.checks import check_no_nul
from service.connectors.tickets import TicketEvent, TicketFilter, TicketSnapshot, WriteBack
from service.connectors.webhooks import SIGNATURE_HEADER, verify_signature
from service.errors import InputError, UnauthorizedError
from service.settings import WebhookSettings

__all__ = ["EVENT_TYPES", "GenericWebhookSystem"]

EVENT_TYPES = ("ticket.created", "ticket.updated", "ticket.closed")
MAX_ID = 200


def _text(ticket: Mapping[str, Any], key: str) -> str | None:
    value = ticket.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(f"ticket.{key}: expected a string, found {type(value).__name__}")
    return value


class GenericWebhookSystem:
    name = "webhook"

    def __init__(self, settings: WebhookSettings) -> None:
        self.settings = settings

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        if not self.settings.inbound_secret:
            raise UnauthorizedError("TRIAGE_WEBHOOK_INBOUND_SECRET is not set")
        verify_signature(
            self.settings.inbound_secret,
            body,
            headers.get(SIGNATURE_HEADER.lower()),
            self.settings.tolerance_s,
        )

    async def event(
        self, headers: Mapping[str, str], payload: dict[str, Any]
    ) -> TicketEvent | None:
        kind, ticket, event_id = payload.get("type"), payload.get("ticket"), payload.get("event_id")
        if kind not in EVENT_TYPES:
            raise InputError(f"type: expected one of {list(EVENT_TYPES)}, found {kind!r}")
        if not isinstance(event_id, str) or not event_id.strip():
            raise InputError(f"event_id: expected a unique id for this event, found {event_id!r}")
        if not isinstance(ticket, dict) or ticket.get("id") in (None, ""):
            raise InputError("ticket: expected an object with an id, found none")
        check_no_nul("ticket", ticket)
        check_no_nul("event", {"event_id": event_id})
        if len(event_id) > MAX_ID or len(str(ticket["id"])) > MAX_ID:
            raise InputError(f"event_id, ticket.id: expected at most {MAX_ID} characters")
        body = _text(ticket, "body") or ""
        subject = _text(ticket, "subject") or ""
        if kind == "ticket.created" and not (body.strip() or subject.strip()):
            raise InputError("ticket.body: expected the ticket's text, found none")
        snapshot = TicketSnapshot(
            ticket_id=str(ticket["id"]),
            subject=subject,
            body=body,
            values={"queue": _text(ticket, "queue"), "priority": _text(ticket, "priority")},
            closed=kind == "ticket.closed",
            resolution=_text(ticket, "resolution"),
            actor=_text(ticket, "agent"),
            language=_text(ticket, "language"),
        )
        return TicketEvent(event_id.strip(), snapshot, created=kind == "ticket.created")

    async def write(self, ticket: TicketSnapshot, change: WriteBack) -> dict[str, Any]:
        return {}  # the result goes back in the answer and to the outbound webhook

    async def poll(self, wanted: TicketFilter) -> list[TicketSnapshot]:
        return []  # callers post their tickets; there is nothing to search

    async def close(self) -> None:
        return None
