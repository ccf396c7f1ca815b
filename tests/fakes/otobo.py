"""OTOBO / Znuny GenericInterface, the web service ``GenericTicketConnectorREST`` as shipped
in ``development/webservices/GenericTicketConnectorREST.yml``: SessionCreate ``POST
/Session``, TicketGet ``GET /Ticket/:TicketID``, TicketSearch ``GET /Ticket``, TicketUpdate
``PATCH /Ticket/:TicketID``. Operation errors come back, as there, with HTTP 200 and
``{"Error": {"ErrorCode": ..., "ErrorMessage": ...}}``."""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

from tests.fakes.server import FakeServer, Reply, Request

__all__ = ["WEBSERVICE", "FakeOtobo"]

WEBSERVICE = "/otobo/nph-genericinterface.pl/Webservice/GenericTicketConnectorREST"
CHANNELS = ("Email", "Phone", "Internal", "Chat")


def _error(code: str, message: str) -> Reply:
    return Reply(200, {"Error": {"ErrorCode": code, "ErrorMessage": message}})


class FakeOtobo(FakeServer):
    def __init__(
        self,
        user: str,
        password: str,
        queues: list[str],
        priorities: tuple[str, ...] = ("2 low", "3 normal", "4 high"),
        agents: tuple[str, ...] = ("triage", "anna", "agent"),
    ) -> None:
        super().__init__()
        self.user, self.password = user, password
        self.queues, self.priorities, self.agents = set(queues), set(priorities), set(agents)
        self.sessions: set[str] = set()
        self.tickets: dict[int, dict[str, Any]] = {}
        self.writes: list[dict[str, Any]] = []
        self.route("POST", f"{WEBSERVICE}/Session", self._session_create)
        self.route("GET", f"{WEBSERVICE}/Ticket", self._search)
        self.route("GET", f"{WEBSERVICE}/Ticket/{{id}}", self._get)
        self.route("PATCH", f"{WEBSERVICE}/Ticket/{{id}}", self._update)

    # What happens in OTOBO on its own.

    def create_ticket(self, title: str, body: str, queue: str = "Raw") -> int:
        ticket_id = len(self.tickets) + 1
        self.tickets[ticket_id] = {
            "TicketID": str(ticket_id),
            "TicketNumber": f"202612041000{ticket_id:04d}",
            "Title": title,
            "Queue": queue,
            "Priority": "3 normal",
            "State": "new",
            "StateType": "new",
            "Owner": "root@localhost",
            "Changed": f"2026-12-04 10:00:0{ticket_id % 10}",
            "Article": [],
        }
        self._article(ticket_id, title, body, "customer", visible=1, channel="Email")
        return ticket_id

    def agent_update(self, ticket_id: int, **fields: str) -> None:
        ticket = self.tickets[ticket_id]
        ticket.update(fields)
        ticket["Changed"] = f"2026-12-04 11:{len(self.writes) + len(ticket['Article']):02d}:00"

    def agent_close(self, ticket_id: int, reply: str) -> None:
        self._article(ticket_id, "Re: ticket", reply, "agent", visible=1, channel="Email")
        self.agent_update(ticket_id, State="closed successful", StateType="closed")

    def invoker_call(self, ticket_id: int, event: str, secret: str) -> tuple[bytes, dict[str, str]]:
        """What the web service's invoker posts (HTTP::REST requester with basic auth)."""
        body = json.dumps({"Event": {"Event": event, "TicketID": str(ticket_id)}}).encode()
        token = base64.b64encode(f"otobo:{secret}".encode()).decode()
        return body, {"Content-Type": "application/json", "Authorization": f"Basic {token}"}

    # The web service.

    def _article(
        self, ticket_id: int, subject: str, body: str, sender: str, visible: int, channel: str
    ) -> str:
        articles = self.tickets[ticket_id]["Article"]
        article_id = str(sum(len(t["Article"]) for t in self.tickets.values()) + 1)
        articles.append(
            {
                "ArticleID": article_id,
                "Subject": subject,
                "Body": body,
                "SenderType": sender,
                "IsVisibleForCustomer": visible,
                "CommunicationChannel": channel,
                "ContentType": "text/plain; charset=utf8",
            }
        )
        return article_id

    def _authenticated(self, data: dict[str, Any]) -> bool:
        if data.get("SessionID"):
            return data["SessionID"] in self.sessions
        return data.get("UserLogin") == self.user and data.get("Password") == self.password

    def _session_create(self, request: Request) -> Reply:
        data = request.json() or {}
        if data.get("UserLogin") != self.user or data.get("Password") != self.password:
            return _error("SessionCreate.AuthFail", "SessionCreate: Authorization failing!")
        session = secrets.token_hex(16)
        self.sessions.add(session)
        return Reply(200, {"SessionID": session})

    def _get(self, request: Request) -> Reply:
        data = {key: values[0] for key, values in request.query.items()}
        if not self._authenticated(data):
            return _error("TicketGet.AuthFail", "TicketGet: Authorization failing!")
        ticket = self.tickets.get(int(request.params["id"]))
        if ticket is None:
            return _error("TicketGet.AccessDenied", "TicketGet: User does not have access!")
        shown = dict(ticket)
        if data.get("AllArticles") != "1":
            shown.pop("Article")
        return Reply(200, {"Ticket": [shown]})

    def _search(self, request: Request) -> Reply:
        data = {key: values[0] for key, values in request.query.items()}
        if not self._authenticated(data):
            return _error("TicketSearch.AuthFail", "TicketSearch: Authorization failing!")
        queues = request.query.get("Queues")
        found = [
            ticket["TicketID"]
            for ticket in self.tickets.values()
            if ticket["StateType"] == data.get("StateType", ticket["StateType"])
            and (not queues or ticket["Queue"] in queues)
        ]
        return Reply(200, {"TicketID": found} if found else {})

    def _update(self, request: Request) -> Reply:
        data = request.json() or {}
        if not self._authenticated(data):
            return _error("TicketUpdate.AuthFail", "TicketUpdate: User could not be authenticated!")
        ticket_id = int(request.params["id"])
        ticket = self.tickets.get(ticket_id)
        if ticket is None or str(data.get("TicketID", ticket_id)) != str(ticket_id):
            return _error("TicketUpdate.AccessDenied", "TicketUpdate: User does not have access!")
        fields = data.get("Ticket") or {}
        for name, valid in (
            ("Queue", self.queues),
            ("Priority", self.priorities),
            ("Owner", self.agents),
        ):
            if name in fields and fields[name] not in valid:
                return _error(
                    "TicketUpdate.InvalidParameter", f"TicketUpdate: Ticket->{name} is invalid!"
                )
        article = data.get("Article")
        if article is not None:
            for needed in ("Subject", "Body"):
                if not article.get(needed):
                    return _error(
                        "TicketUpdate.MissingParameter",
                        f"TicketUpdate: Article->{needed} parameter is missing!",
                    )
            if article.get("CommunicationChannel") not in CHANNELS:
                return _error(
                    "TicketUpdate.MissingParameter",
                    "TicketUpdate: Article->CommunicationChannel is missing or invalid!",
                )
        self.writes.append(data)
        ticket.update(fields)
        answer: dict[str, Any] = {
            "TicketID": str(ticket_id),
            "TicketNumber": ticket["TicketNumber"],
        }
        if article is not None:
            answer["ArticleID"] = self._article(
                ticket_id,
                article["Subject"],
                article["Body"],
                article.get("SenderType", "agent"),
                visible=int(article.get("IsVisibleForCustomer", 1)),
                channel=article["CommunicationChannel"],
            )
        return Reply(200, answer)
