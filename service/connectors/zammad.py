"""Zammad: REST API v1 (token authentication) and triggers that call a webhook.

A trigger on "ticket created" (and one on "ticket updated") posts the default webhook
payload ``{"ticket": {...}, "article": {...}}`` to ``/v1/connectors/zammad/events``, signed
with the webhook's HMAC-SHA1 signature token in ``X-Hub-Signature``; ``X-Zammad-Delivery``
is the event id. The connector writes with ``PUT /api/v1/tickets/{id}`` (group, priority,
owner by name), ``POST /api/v1/ticket_articles`` (an internal note) and ``POST
/api/v1/tags/add`` (the review tag); it polls ``GET /api/v1/tickets/search``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from service.connectors.http import SystemClient
from service.connectors.mapping import ConnectorMapping
from service.connectors.tickets import (
    NOTE_MARKER,
    TicketEvent,
    TicketFilter,
    TicketSnapshot,
    WriteBack,
)
from service.connectors.webhooks import verify_hub_signature
from service.errors import InputError, UnauthorizedError
from service.settings import ZammadSettings

__all__ = ["ZammadSystem"]

POLL_LIMIT = 50


def _name(value: Any) -> str | None:
    """A reference as Zammad writes it: a name (expanded API) or an object (webhooks)."""
    if isinstance(value, dict):
        value = value.get("name") or value.get("login")
    return str(value) if value not in (None, "") else None


class ZammadSystem:
    name = "zammad"

    def __init__(
        self,
        settings: ZammadSettings,
        mapping: ConnectorMapping,
    ) -> None:
        self.settings = settings
        self.mapping = mapping
        self.http = SystemClient(
            self.name,
            httpx.AsyncClient(
                base_url=settings.url.rstrip("/"),
                headers={"Authorization": f"Token token={settings.token}"},
                timeout=settings.timeout_s,
            ),
        )

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        if not self.settings.webhook_secret:
            raise UnauthorizedError(
                "the Zammad webhook is not accepted: TRIAGE_ZAMMAD_WEBHOOK_SECRET is not set; "
                "set it to the webhook's HMAC-SHA1 signature token"
            )
        verify_hub_signature(
            self.settings.webhook_secret,
            body,
            headers.get("x-hub-signature"),
            "sha1",
            "TRIAGE_ZAMMAD_WEBHOOK_SECRET",
        )

    async def event(
        self, headers: Mapping[str, str], payload: dict[str, Any]
    ) -> TicketEvent | None:
        ticket = payload.get("ticket")
        if not isinstance(ticket, dict) or not str(ticket.get("id", "")).isdigit():
            raise InputError(
                'body: expected Zammad\'s webhook payload {"ticket": {"id": <number>, ...}, '
                f'"article": {{...}}}}, found keys {sorted(payload)}'
            )
        article = payload.get("article") if isinstance(payload.get("article"), dict) else None
        snapshot = await self._snapshot(ticket, article)
        event_id = headers.get("x-zammad-delivery") or (
            f"{snapshot.ticket_id}:{ticket.get('updated_at')}"
        )
        return TicketEvent(event_id, snapshot, created=None)

    async def _articles(self, ticket_id: str) -> list[dict[str, Any]]:
        found = await self.http.call("GET", f"/api/v1/ticket_articles/by_ticket/{ticket_id}")
        return [a for a in found or [] if isinstance(a, dict)]

    async def _snapshot(
        self, ticket: Mapping[str, Any], article: Mapping[str, Any] | None
    ) -> TicketSnapshot:
        ticket_id = str(ticket["id"])
        state = _name(ticket.get("state")) or ""
        closed = state.casefold() in {s.casefold() for s in self.mapping.closed_states}
        articles: list[dict[str, Any]] | None = None

        body = ""
        if article and not article.get("internal") and ticket.get("article_count") in (1, None):
            body = str(article.get("body") or "")
        if not body:
            articles = await self._articles(ticket_id)
            customer = [a for a in articles if not a.get("internal")]
            body = str((customer or articles or [{}])[0].get("body") or "")

        resolution = None
        if closed:
            candidates: list[Mapping[str, Any]] = [article] if article else []
            if not _is_answer(article):
                candidates = list(
                    articles if articles is not None else await self._articles(ticket_id)
                )
            answers = [a for a in candidates if _is_answer(a)]
            resolution = str(answers[-1].get("body")) if answers else None
        return TicketSnapshot(
            ticket_id=ticket_id,
            subject=str(ticket.get("title") or ""),
            body=body,
            values={
                "queue": _name(ticket.get("group")),
                "priority": _name(ticket.get("priority")),
            },
            closed=closed,
            resolution=resolution,
            actor=_name(ticket.get("updated_by")),
        )

    async def write(self, ticket: TicketSnapshot, change: WriteBack) -> dict[str, Any]:
        written: dict[str, Any] = {}
        fields: dict[str, Any] = {}
        if "queue" in change.values:
            fields["group"] = change.values["queue"]
        if "priority" in change.values:
            fields["priority"] = change.values["priority"]
        if change.assignee:
            fields["owner"] = change.assignee
        if fields:
            await self.http.call("PUT", f"/api/v1/tickets/{ticket.ticket_id}", json=fields)
        if change.tag:
            await self.http.call(
                "POST",
                "/api/v1/tags/add",
                expected=(200, 201),
                json={"item": change.tag, "object": "Ticket", "o_id": int(ticket.ticket_id)},
            )
        if change.note:
            note = await self.http.call(
                "POST",
                "/api/v1/ticket_articles",
                expected=(200, 201),
                json={
                    "ticket_id": int(ticket.ticket_id),
                    "subject": "Ticket Triage",
                    "body": change.note,
                    "content_type": "text/plain",
                    "type": "note",
                    "internal": True,
                },
            )
            written["note_id"] = note.get("id") if isinstance(note, dict) else None
        return written

    async def poll(self, wanted: TicketFilter) -> list[TicketSnapshot]:
        found = await self.http.call(
            "GET",
            "/api/v1/tickets/search",
            params={
                "query": self.settings.poll_query,
                "limit": POLL_LIMIT,
                "expand": "true",
                "sort_by": "created_at",
                "order_by": "desc",
            },
        )
        tickets = found if isinstance(found, list) else []
        return [
            await self._snapshot(ticket, None)
            for ticket in tickets
            if isinstance(ticket, dict)
            and str(ticket.get("id", "")).isdigit()
            and await wanted(str(ticket["id"]))
        ]

    async def close(self) -> None:
        await self.http.close()


def _is_answer(article: Mapping[str, Any] | None) -> bool:
    """An agent's article the customer sees: what resolved the ticket."""
    if not article or article.get("internal"):
        return False
    body = str(article.get("body") or "")
    return (
        article.get("sender") == "Agent"
        and bool(body.strip())
        and (not body.startswith(NOTE_MARKER))
    )
