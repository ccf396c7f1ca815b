"""Jira Service Management (Cloud): Jira REST API v3, the Service Desk REST API, webhooks.

A webhook (System > WebHooks, with a secret) for "issue created" and "issue updated" posts
``{"webhookEvent": "jira:issue_created" | "jira:issue_updated", "issue": {...},
"changelog": {...}, "user": {...}}`` to ``/v1/connectors/jira/events``, signed with
``X-Hub-Signature: sha256=<hex>``; ``X-Atlassian-Webhook-Identifier`` is the event id.
The connector writes ``PUT /rest/api/3/issue/{key}`` (priority and the queue field, by
name; the review label), ``PUT /rest/api/3/issue/{key}/assignee`` (accountId) and an
internal comment ``POST /rest/servicedeskapi/request/{key}/comment`` with ``"public":
false``; it polls ``GET /rest/api/3/search/jql`` and reads the agent's reply of a resolved
issue from ``GET /rest/api/3/issue/{key}/comment``.

The queue is the issue's first component unless the mapping's ``options.queue_field``
names a single-select custom field (``customfield_10050``).
"""

from __future__ import annotations

import logging
import re
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
from service.settings import JiraSettings

__all__ = ["JiraSystem", "adf_text"]

logger = logging.getLogger(__name__)

POLL_LIMIT = 50
ISSUE_EVENTS = ("jira:issue_created", "jira:issue_updated")
ISSUE_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*-\d+$")


def _object(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (a field Jira left null)."""
    return value if isinstance(value, dict) else {}


def adf_text(document: Any) -> str:
    """Plain text of an Atlassian Document Format node (or a v2 string, unchanged)."""
    if document is None:
        return ""
    if isinstance(document, str):
        return document
    if not isinstance(document, dict):
        return ""
    if document.get("type") == "text":
        return str(document.get("text", ""))
    if document.get("type") == "hardBreak":
        return "\n"
    inner = "".join(adf_text(child) for child in document.get("content") or [])
    block = document.get("type") in ("paragraph", "heading", "listItem", "codeBlock")
    return inner + "\n" if block else inner


class JiraSystem:
    name = "jira"

    def __init__(
        self,
        settings: JiraSettings,
        mapping: ConnectorMapping,
    ) -> None:
        self.settings = settings
        self.mapping = mapping
        self.queue_field = mapping.options.get("queue_field", "components")
        self.http = SystemClient(
            self.name,
            httpx.AsyncClient(
                base_url=settings.url.rstrip("/"),
                auth=(settings.email, settings.api_token),
                headers={"Accept": "application/json"},
                timeout=settings.timeout_s,
            ),
        )

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        if not self.settings.webhook_secret:
            raise UnauthorizedError(
                "the Jira webhook is not accepted: TRIAGE_JIRA_WEBHOOK_SECRET is not set; set "
                "it to the webhook's secret"
            )
        verify_hub_signature(
            self.settings.webhook_secret,
            body,
            headers.get("x-hub-signature"),
            "sha256",
            "TRIAGE_JIRA_WEBHOOK_SECRET",
        )

    def _queue(self, fields: Mapping[str, Any]) -> str | None:
        value = fields.get(self.queue_field)
        if isinstance(value, list):
            value = value[0] if value else None
        if isinstance(value, dict):
            value = value.get("name") or value.get("value")
        return str(value) if value else None

    async def _snapshot(self, issue: Mapping[str, Any], actor: str | None) -> TicketSnapshot:
        key = str(issue["key"])
        fields = _object(issue.get("fields"))
        category = _object(_object(fields.get("status")).get("statusCategory")).get("key")
        closed = category == "done" or bool(fields.get("resolution"))
        priority = _object(fields.get("priority"))
        return TicketSnapshot(
            ticket_id=key,
            subject=str(fields.get("summary") or ""),
            body=adf_text(fields.get("description")).strip(),
            values={"queue": self._queue(fields), "priority": priority.get("name")},
            closed=closed,
            resolution=await self._reply(key) if closed else None,
            actor=actor,
        )

    async def _reply(self, key: str) -> str | None:
        """The newest public comment not written by the connector: the agent's answer."""
        answer = await self.http.call(
            "GET",
            f"/rest/api/3/issue/{key}/comment",
            params={"orderBy": "-created", "maxResults": 20},
        )
        for comment in _object(answer).get("comments", []):
            text = adf_text(_object(comment).get("body")).strip()
            if comment.get("jsdPublic", True) and text and not text.startswith(NOTE_MARKER):
                return text
        return None

    async def event(
        self, headers: Mapping[str, str], payload: dict[str, Any]
    ) -> TicketEvent | None:
        kind = payload.get("webhookEvent")
        if kind not in ISSUE_EVENTS:
            return None
        issue = payload.get("issue")
        if not isinstance(issue, dict) or not ISSUE_KEY.match(str(issue.get("key", ""))):
            raise InputError(
                f"body: expected a {kind} payload with issue.key like SD-12, found keys "
                f"{sorted(payload)}"
            )
        actor = _object(payload.get("user")).get("accountId")
        snapshot = await self._snapshot(issue, str(actor) if actor else None)
        event_id = headers.get("x-atlassian-webhook-identifier") or (
            f"{kind}:{issue.get('id', issue['key'])}:{payload.get('timestamp')}"
        )
        return TicketEvent(event_id, snapshot, created=kind == "jira:issue_created")

    async def write(self, ticket: TicketSnapshot, change: WriteBack) -> dict[str, Any]:
        key = ticket.ticket_id
        fields: dict[str, Any] = {}
        if "priority" in change.values:
            fields["priority"] = {"name": change.values["priority"]}
        if "queue" in change.values:
            queue = change.values["queue"]
            fields[self.queue_field] = (
                [{"name": queue}] if self.queue_field == "components" else {"value": queue}
            )
        edit: dict[str, Any] = {}
        if fields:
            edit["fields"] = fields
        if change.tag:
            edit["update"] = {"labels": [{"add": change.tag}]}
        if edit:
            await self.http.call("PUT", f"/rest/api/3/issue/{key}", expected=(204,), json=edit)
        if change.assignee and change.assignee not in self.mapping.agents.values():
            # Jira assigns by accountId only; a routing name it does not know would be refused.
            logger.warning(
                "jira %s: not assigned to %r: the mapping %s names no accountId for this agent "
                "(agents: {name: accountId})",
                key,
                change.assignee,
                self.mapping.source,
            )
        elif change.assignee:
            await self.http.call(
                "PUT",
                f"/rest/api/3/issue/{key}/assignee",
                expected=(204,),
                json={"accountId": change.assignee},
            )
        written: dict[str, Any] = {}
        if change.note:
            comment = await self.http.call(
                "POST",
                f"/rest/servicedeskapi/request/{key}/comment",
                expected=(201,),
                json={"body": change.note, "public": False},
            )
            written["note_id"] = comment.get("id") if isinstance(comment, dict) else None
        return written

    async def poll(self, wanted: TicketFilter) -> list[TicketSnapshot]:
        answer = await self.http.call(
            "GET",
            "/rest/api/3/search/jql",
            params={
                "jql": self.settings.poll_jql,
                "maxResults": POLL_LIMIT,
                "fields": f"summary,description,priority,status,resolution,{self.queue_field}",
            },
        )
        issues = _object(answer).get("issues", [])
        return [
            await self._snapshot(issue, None)
            for issue in issues
            if ISSUE_KEY.match(str(_object(issue).get("key", "")))
            and await wanted(str(issue["key"]))
        ]

    async def close(self) -> None:
        await self.http.close()
