"""OTOBO and Znuny: the GenericInterface REST web service ``GenericTicketConnectorREST``
(as shipped in ``development/webservices/``), and an invoker that calls us on ticket events.

Operations used (route, method): SessionCreate ``/Session`` POST, TicketGet
``/Ticket/:TicketID`` GET, TicketSearch ``/Ticket`` GET, TicketUpdate ``/Ticket/:TicketID``
PATCH. The connector logs in once with ``UserLogin``/``Password`` and sends the
``SessionID`` after that (a new one when the old one expires). An operation's error comes
back as ``{"Error": {"ErrorCode": ..., "ErrorMessage": ...}}``.

The web service's invoker (HTTP::REST requester, basic authentication with the shared
secret as password) posts to ``/v1/connectors/otobo/events`` on TicketCreate,
TicketQueueUpdate, TicketPriorityUpdate and TicketStateUpdate; the connector needs only the
``TicketID`` and the event name from it and reads the ticket itself with TicketGet.
"""

from __future__ import annotations

import base64
import binascii
import hmac
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
from service.errors import InputError, UnauthorizedError, UpstreamError
from service.settings import OtoboSettings

__all__ = ["OtoboSystem"]

POLL_LIMIT = 50


def _ticket_id(payload: Mapping[str, Any]) -> str | None:
    for holder in (payload, payload.get("Event"), payload.get("Ticket")):
        if isinstance(holder, dict) and holder.get("TicketID") not in (None, ""):
            return str(holder["TicketID"])
    return None


def _event_name(payload: Mapping[str, Any]) -> str | None:
    event = payload.get("Event")
    if isinstance(event, dict):
        event = event.get("Event")
    return str(event) if event else None


class OtoboSystem:
    name = "otobo"

    def __init__(
        self,
        settings: OtoboSettings,
        mapping: ConnectorMapping,
    ) -> None:
        self.settings = settings
        self.mapping = mapping
        base = settings.url.rstrip("/") + "/" + settings.webservice.strip("/")
        self.http = SystemClient(
            self.name,
            httpx.AsyncClient(base_url=base, timeout=settings.timeout_s),
        )
        self._session: str | None = None

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        secret = self.settings.webhook_secret
        if not secret:
            raise UnauthorizedError(
                "the OTOBO invoker is not accepted: TRIAGE_OTOBO_WEBHOOK_SECRET is not set; "
                "set it, and the same password in the invoker's basic authentication"
            )
        scheme, _, encoded = headers.get("authorization", "").partition(" ")
        try:
            password = base64.b64decode(encoded, validate=True).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            password = ""
        if scheme.lower() != "basic" or not hmac.compare_digest(password, secret):
            raise UnauthorizedError(
                "Authorization: expected HTTP basic authentication with the password "
                "TRIAGE_OTOBO_WEBHOOK_SECRET (the invoker's BasicAuthPassword), found "
                + ("another password" if scheme.lower() == "basic" else "none")
            )

    async def _operation(
        self, operation: str, method: str, path: str, data: dict[str, Any], retry: bool = True
    ) -> dict[str, Any]:
        """Call an operation with the session; a session that expired is made again once."""
        if self._session is None:
            self._session = await self._new_session()
        authenticated = {**data, "SessionID": self._session}
        if method == "GET":
            answer = await self.http.call(method, path, params=authenticated)
        else:
            answer = await self.http.call(method, path, json=authenticated)
        if not isinstance(answer, dict):
            raise UpstreamError(f"otobo: {operation}: expected a JSON object, found {answer!r}")
        error = answer.get("Error")
        if isinstance(error, dict):
            code = str(error.get("ErrorCode", ""))
            if code.endswith(".AuthFail") and retry:
                self._session = None
                return await self._operation(operation, method, path, data, retry=False)
            raise UpstreamError(
                f"otobo: {operation} ({method} {path}) answered {code}: {error.get('ErrorMessage')}"
            )
        return answer

    async def _new_session(self) -> str:
        answer = await self.http.call(
            "POST",
            "/Session",
            json={"UserLogin": self.settings.user, "Password": self.settings.password},
        )
        if not isinstance(answer, dict) or not answer.get("SessionID"):
            error = answer.get("Error", {}) if isinstance(answer, dict) else {}
            raise UpstreamError(
                f"otobo: SessionCreate for user {self.settings.user!r} answered "
                f"{error.get('ErrorCode', 'no SessionID')}; check TRIAGE_OTOBO_USER and "
                "TRIAGE_OTOBO_PASSWORD"
            )
        return str(answer["SessionID"])

    async def get(self, ticket_id: str) -> tuple[TicketSnapshot, str]:
        """The ticket, and its change time (``Changed``)."""
        answer = await self._operation(
            "TicketGet", "GET", f"/Ticket/{ticket_id}", {"AllArticles": 1}
        )
        tickets = answer.get("Ticket")
        if not isinstance(tickets, list) or not tickets:
            raise UpstreamError(f"otobo: TicketGet {ticket_id}: expected a Ticket, found none")
        ticket = tickets[0]
        articles = [a for a in ticket.get("Article") or [] if isinstance(a, dict)]
        closed = str(ticket.get("StateType", "")).casefold() == "closed" or str(
            ticket.get("State", "")
        ).casefold() in {s.casefold() for s in self.mapping.closed_states}
        answers = [
            a
            for a in articles
            if str(a.get("SenderType", "")).casefold() == "agent"
            and str(a.get("IsVisibleForCustomer", "0")) == "1"
            and not str(a.get("Body", "")).startswith(NOTE_MARKER)
        ]
        snapshot = TicketSnapshot(
            ticket_id=str(ticket.get("TicketID", ticket_id)),
            subject=str(ticket.get("Title") or ""),
            body=str(articles[0].get("Body") or "") if articles else "",
            values={"queue": ticket.get("Queue"), "priority": ticket.get("Priority")},
            closed=closed,
            resolution=str(answers[-1]["Body"]) if closed and answers else None,
            actor=None,
        )
        return snapshot, str(ticket.get("Changed", ""))

    async def event(
        self, headers: Mapping[str, str], payload: dict[str, Any]
    ) -> TicketEvent | None:
        ticket_id = _ticket_id(payload)
        if ticket_id is None or not ticket_id.isdigit():
            raise InputError(
                "body: expected the invoker's data with a numeric TicketID (at the top, in "
                f"Event or in Ticket), found keys {sorted(payload)}"
            )
        name = _event_name(payload)
        snapshot, changed = await self.get(ticket_id)
        article = payload.get("ArticleID") or ""
        event_id = f"{name or 'event'}:{ticket_id}:{changed}:{article}"
        created = None if name is None else name == "TicketCreate"
        return TicketEvent(event_id, snapshot, created=created)

    async def write(self, ticket: TicketSnapshot, change: WriteBack) -> dict[str, Any]:
        data: dict[str, Any] = {"TicketID": ticket.ticket_id}
        fields: dict[str, Any] = {}
        if "queue" in change.values:
            fields["Queue"] = change.values["queue"]
        if "priority" in change.values:
            fields["Priority"] = change.values["priority"]
        if change.assignee:
            fields["Owner"] = change.assignee
        if fields:
            data["Ticket"] = fields
        if change.note:
            data["Article"] = {
                "CommunicationChannel": "Internal",
                "IsVisibleForCustomer": 0,
                "SenderType": "system",
                "Subject": "Ticket Triage",
                "Body": change.note,
                "ContentType": "text/plain; charset=utf8",
            }
        if len(data) == 1:
            return {}
        answer = await self._operation("TicketUpdate", "PATCH", f"/Ticket/{ticket.ticket_id}", data)
        return {"note_id": answer.get("ArticleID")} if answer.get("ArticleID") else {}

    async def poll(self, wanted: TicketFilter) -> list[TicketSnapshot]:
        search: dict[str, Any] = {
            "StateType": self.settings.poll_state_type,
            "Limit": POLL_LIMIT,
            "SortBy": "Age",
            "OrderBy": "Up",
        }
        queues = [q.strip() for q in self.settings.poll_queues.split(",") if q.strip()]
        if queues:
            search["Queues"] = queues
        answer = await self._operation("TicketSearch", "GET", "/Ticket", search)
        ids = [str(i) for i in answer.get("TicketID") or [] if str(i).isdigit()]
        return [(await self.get(ticket_id))[0] for ticket_id in ids if await wanted(ticket_id)]

    async def close(self) -> None:
        await self.http.close()
