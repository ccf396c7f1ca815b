"""Zammad REST API v1, the parts the connector uses (https://docs.zammad.org/en/latest/api/):
token authentication, tickets (``GET``/``PUT /api/v1/tickets/{id}``, names accepted for
``group``, ``priority`` and ``owner``), ``GET /api/v1/tickets/search``, articles
(``POST /api/v1/ticket_articles``, ``GET /api/v1/ticket_articles/by_ticket/{id}``) and
``POST /api/v1/tags/add``; plus the default trigger webhook payload for test events."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

from tests.fakes.server import FakeServer, Reply, Request

__all__ = ["FakeZammad"]

TICKET_FIELDS = {"group", "priority", "owner", "state", "title"}


class FakeZammad(FakeServer):
    def __init__(
        self,
        token: str,
        groups: list[str],
        priorities: tuple[str, ...] = ("1 low", "2 normal", "3 high"),
        users: tuple[str, ...] = ("connector@example.com", "anna@example.com", "agent@x.org"),
    ) -> None:
        super().__init__()
        self.token = token
        self.groups = set(groups)
        self.priorities = set(priorities)
        self.users = set(users)
        self.tickets: dict[int, dict[str, Any]] = {}
        self.articles: dict[int, dict[str, Any]] = {}
        self.tags: dict[int, list[str]] = {}
        #: Every accepted write: (method, path, JSON body).
        self.writes: list[tuple[str, str, Any]] = []
        self.route("GET", "/api/v1/tickets/search", self._search)
        self.route("GET", "/api/v1/tickets/{id}", self._get)
        self.route("PUT", "/api/v1/tickets/{id}", self._update)
        self.route("POST", "/api/v1/ticket_articles", self._add_article)
        self.route("GET", "/api/v1/ticket_articles/by_ticket/{id}", self._articles)
        self.route("POST", "/api/v1/tags/add", self._add_tag)

    # What the system does on its own (customers writing in, agents working).

    def create_ticket(self, title: str, body: str, group: str = "Users") -> int:
        ticket_id = len(self.tickets) + 1
        self.tickets[ticket_id] = {
            "id": ticket_id,
            "number": str(31000 + ticket_id),
            "title": title,
            "group": group,
            "priority": "2 normal",
            "state": "new",
            "owner": "-",
            "updated_by": "customer@example.com",
            "article_ids": [],
            "created_at": "2026-12-04T10:00:00.000Z",
            "updated_at": f"2026-12-04T10:00:0{ticket_id % 10}.000Z",
        }
        self._article(ticket_id, body, sender="Customer", internal=False, by="customer")
        return ticket_id

    def agent_update(self, ticket_id: int, by: str = "agent@x.org", **fields: str) -> None:
        ticket = self.tickets[ticket_id]
        ticket.update(fields, updated_by=by)
        ticket["updated_at"] = f"2026-12-04T11:{len(self.writes):02d}:00.000Z"

    def agent_close(self, ticket_id: int, reply: str, by: str = "agent@x.org") -> None:
        self._article(ticket_id, reply, sender="Agent", internal=False, by=by)
        self.agent_update(ticket_id, by=by, state="closed")

    def webhook(self, ticket_id: int, secret: str) -> tuple[bytes, dict[str, str]]:
        """The default trigger payload of the ticket and its latest article, with the
        headers Zammad sends (signature over the body with the HMAC-SHA1 token)."""
        ticket = dict(self.tickets[ticket_id])
        latest = self.articles[ticket["article_ids"][-1]]
        payload = {
            "ticket": {
                **{k: v for k, v in ticket.items() if k not in ("group", "priority", "state")},
                "group": {"name": ticket["group"], "active": True},
                "priority": {"name": ticket["priority"]},
                "state": {"name": ticket["state"]},
                "updated_by": {"login": ticket["updated_by"]},
                "article_count": len(ticket["article_ids"]),
            },
            "article": latest,
        }
        body = json.dumps(payload).encode()
        signature = hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Zammad User Agent",
            "X-Zammad-Trigger": "ticket triage",
            "X-Zammad-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature": f"sha1={signature}",
        }
        return body, headers

    def writes_for(self, ticket_id: int) -> list[tuple[str, str, Any]]:
        """The accepted writes that changed ``ticket_id``."""
        return [
            (method, path, body)
            for method, path, body in self.writes
            if path == f"/api/v1/tickets/{ticket_id}"
            or body.get("ticket_id") == ticket_id
            or body.get("o_id") == ticket_id
        ]

    # The REST API.

    def _authorised(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Token token={self.token}"

    def _article(
        self, ticket_id: int, body: str, sender: str, internal: bool, by: str, type_: str = "email"
    ) -> dict[str, Any]:
        article_id = 100 + len(self.articles) + 1
        article = {
            "id": article_id,
            "ticket_id": ticket_id,
            "body": body,
            "content_type": "text/plain",
            "internal": internal,
            "sender": sender,
            "type": type_,
            "created_by": by,
        }
        self.articles[article_id] = article
        self.tickets[ticket_id]["article_ids"].append(article_id)
        return article

    def _ticket(self, request: Request) -> dict[str, Any] | None:
        return self.tickets.get(int(request.params["id"]))

    def _get(self, request: Request) -> Reply:
        if not self._authorised(request):
            return Reply(401, {"error": "authentication failed"})
        ticket = self._ticket(request)
        return Reply(200, ticket) if ticket else Reply(404, {"error": "Couldn't find Ticket"})

    def _search(self, request: Request) -> Reply:
        if not self._authorised(request):
            return Reply(401, {"error": "authentication failed"})
        query = request.arg("query") or ""
        if request.arg("expand") != "true":
            return Reply(400, {"error": "this fake answers expand=true searches only"})
        field, _, value = query.partition(":")
        if field != "state.name":
            return Reply(422, {"error": f"unsupported query {query!r}"})
        found = [t for t in self.tickets.values() if t["state"] == value]
        return Reply(200, found[: int(request.arg("limit") or 50)])

    def _update(self, request: Request) -> Reply:
        if not self._authorised(request):
            return Reply(401, {"error": "authentication failed"})
        ticket = self._ticket(request)
        if ticket is None:
            return Reply(404, {"error": "Couldn't find Ticket"})
        data = request.json()
        if not isinstance(data, dict) or set(data) - TICKET_FIELDS:
            return Reply(422, {"error": f"unknown attributes {sorted(set(data) - TICKET_FIELDS)}"})
        lookups = {"group": self.groups, "priority": self.priorities, "owner": self.users}
        for name, valid in lookups.items():
            if name in data and data[name] not in valid:
                return Reply(422, {"error": f"No lookup value found for '{name}': {data[name]!r}"})
        self.writes.append(("PUT", request.path, data))
        ticket.update(data, updated_by="connector@example.com")
        return Reply(200, ticket)

    def _add_article(self, request: Request) -> Reply:
        if not self._authorised(request):
            return Reply(401, {"error": "authentication failed"})
        data = request.json()
        ticket_id = data.get("ticket_id")
        if not isinstance(ticket_id, int) or ticket_id not in self.tickets:
            return Reply(422, {"error": "Couldn't find Ticket with 'id'"})
        if not isinstance(data.get("internal"), bool) or not data.get("body"):
            return Reply(422, {"error": "body and a boolean internal are needed"})
        self.writes.append(("POST", request.path, data))
        article = self._article(
            ticket_id,
            data["body"],
            sender="Agent",
            internal=data["internal"],
            by="connector@example.com",
            type_=data.get("type", "note"),
        )
        return Reply(201, article)

    def _articles(self, request: Request) -> Reply:
        if not self._authorised(request):
            return Reply(401, {"error": "authentication failed"})
        ticket = self._ticket(request)
        if ticket is None:
            return Reply(404, {"error": "Couldn't find Ticket"})
        return Reply(200, [self.articles[a] for a in ticket["article_ids"]])

    def _add_tag(self, request: Request) -> Reply:
        if not self._authorised(request):
            return Reply(401, {"error": "authentication failed"})
        data = request.json()
        if data.get("object") != "Ticket" or data.get("o_id") not in self.tickets:
            return Reply(422, {"error": "object Ticket and an existing o_id are needed"})
        self.writes.append(("POST", request.path, data))
        self.tags.setdefault(data["o_id"], []).append(str(data["item"]))
        return Reply(201, True)
