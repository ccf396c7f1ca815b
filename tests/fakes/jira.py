"""Jira Cloud REST API v3 and the Jira Service Management REST API, the parts the connector
uses (https://developer.atlassian.com/cloud/jira/platform/rest/v3/,
https://developer.atlassian.com/cloud/jira/service-desk/rest/): basic authentication with an
API token, ``PUT /rest/api/3/issue/{key}`` (``fields`` and ``update``; 204),
``PUT /rest/api/3/issue/{key}/assignee`` (accountId; 204), ``GET
/rest/api/3/issue/{key}/comment``, ``GET /rest/api/3/search/jql``, and
``POST /rest/servicedeskapi/request/{key}/comment`` (``body``, ``public``; 201); plus the
``jira:issue_created`` / ``jira:issue_updated`` webhook payloads."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from typing import Any

from tests.fakes.server import FakeServer, Reply, Request

__all__ = ["FakeJira", "adf"]

SETTABLE = {"priority", "components", "labels", "summary"}


def adf(text: str) -> dict[str, Any]:
    """``text`` as an Atlassian Document Format document, as v3 returns rich text."""
    return {
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}],
    }


def _errors(**errors: str) -> Reply:
    return Reply(400, {"errorMessages": [], "errors": errors})


class FakeJira(FakeServer):
    def __init__(
        self,
        email: str,
        api_token: str,
        components: list[str],
        priorities: tuple[str, ...] = ("Highest", "High", "Medium", "Low", "Lowest"),
        accounts: tuple[str, ...] = ("5b10a2844c20165700ede21g", "agent-account"),
    ) -> None:
        super().__init__()
        self.credentials = base64.b64encode(f"{email}:{api_token}".encode()).decode()
        self.components, self.priorities, self.accounts = set(components), priorities, accounts
        self.issues: dict[str, dict[str, Any]] = {}
        self.comments: dict[str, list[dict[str, Any]]] = {}
        self.writes: list[tuple[str, str, Any]] = []
        self.route("GET", "/rest/api/3/search/jql", self._search)
        self.route("GET", "/rest/api/3/issue/{key}", self._get)
        self.route("PUT", "/rest/api/3/issue/{key}", self._edit)
        self.route("PUT", "/rest/api/3/issue/{key}/assignee", self._assign)
        self.route("GET", "/rest/api/3/issue/{key}/comment", self._list_comments)
        self.route("POST", "/rest/servicedeskapi/request/{key}/comment", self._add_comment)

    # What happens in Jira on its own.

    def create_issue(self, summary: str, description: str) -> str:
        key = f"SD-{len(self.issues) + 1}"
        self.issues[key] = {
            "id": str(10000 + len(self.issues) + 1),
            "key": key,
            "fields": {
                "summary": summary,
                "description": adf(description),
                "priority": {"name": "Medium", "id": "3"},
                "components": [],
                "labels": [],
                "assignee": None,
                "status": {"name": "Waiting for support", "statusCategory": {"key": "new"}},
                "resolution": None,
            },
        }
        self.comments[key] = []
        return key

    def agent_update(self, key: str, **fields: Any) -> None:
        self.issues[key]["fields"].update(fields)

    def agent_resolve(self, key: str, reply: str) -> None:
        self._comment(key, adf(reply), public=True, author="agent-account")
        self.agent_update(
            key,
            status={"name": "Resolved", "statusCategory": {"key": "done"}},
            resolution={"name": "Done"},
        )

    def webhook(
        self,
        key: str,
        event: str,
        secret: str,
        changelog: list[dict[str, Any]] | None = None,
        user: str = "agent-account",
    ) -> tuple[bytes, dict[str, str]]:
        """A webhook delivery as Jira Cloud sends it, signed with the webhook's secret."""
        issue = json.loads(json.dumps(self.issues[key]))
        # Webhooks carry rich text in the REST API v2 form: a plain string.
        issue["fields"]["description"] = issue["fields"]["description"]["content"][0]["content"][0][
            "text"
        ]
        payload: dict[str, Any] = {
            "timestamp": 1764842400000,
            "webhookEvent": event,
            "issue_event_type_name": event.split(":")[-1],
            "user": {"accountId": user},
            "issue": issue,
        }
        if changelog is not None:
            payload["changelog"] = {"id": "10100", "items": changelog}
        body = json.dumps(payload).encode()
        signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return body, {
            "Content-Type": "application/json",
            "X-Atlassian-Webhook-Identifier": str(uuid.uuid4()),
            "X-Atlassian-Webhook-Flow": "Primary",
            "X-Hub-Signature": f"sha256={signature}",
        }

    # The REST APIs.

    def _authorised(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Basic {self.credentials}"

    def _issue(self, request: Request) -> dict[str, Any] | None:
        return self.issues.get(request.params["key"])

    def _comment(self, key: str, body: Any, public: bool, author: str) -> dict[str, Any]:
        comment = {
            "id": str(20000 + sum(len(c) for c in self.comments.values()) + 1),
            "author": {"accountId": author},
            "body": body,
            "jsdPublic": public,
            "created": "2026-12-04T11:00:00.000+0000",
        }
        self.comments[key].append(comment)
        return comment

    def _get(self, request: Request) -> Reply:
        if not self._authorised(request):
            return Reply(401, {"errorMessages": ["You are not authenticated."]})
        issue = self._issue(request)
        if issue is None:
            return Reply(404, {"errorMessages": ["Issue does not exist."], "errors": {}})
        return Reply(200, issue)

    def _search(self, request: Request) -> Reply:
        if not self._authorised(request):
            return Reply(401, {"errorMessages": ["You are not authenticated."]})
        if not request.arg("jql"):
            return _errors(jql="a JQL query is required")
        waiting = [
            issue
            for issue in self.issues.values()
            if issue["fields"]["status"]["statusCategory"]["key"] == "new"
        ]
        return Reply(
            200, {"issues": waiting[: int(request.arg("maxResults") or 50)], "isLast": True}
        )

    def _edit(self, request: Request) -> Reply:
        if not self._authorised(request):
            return Reply(401, {"errorMessages": ["You are not authenticated."]})
        issue = self._issue(request)
        if issue is None:
            return Reply(404, {"errorMessages": ["Issue does not exist."], "errors": {}})
        data = request.json() or {}
        fields, update = data.get("fields", {}), data.get("update", {})
        unknown = sorted((set(fields) | set(update)) - SETTABLE)
        if unknown:
            return _errors(**{name: f"Field '{name}' cannot be set." for name in unknown})
        if "priority" in fields and fields["priority"].get("name") not in self.priorities:
            return _errors(priority="Specify the Priority (name) in the string format")
        for component in fields.get("components", []):
            if component.get("name") not in self.components:
                return _errors(components=f"Component name '{component.get('name')}' is not valid")
        self.writes.append(("PUT", request.path, data))
        issue["fields"].update(fields)
        for operation in update.get("labels", []):
            if "add" in operation:
                issue["fields"]["labels"].append(operation["add"])
        return Reply(204)

    def _assign(self, request: Request) -> Reply:
        if not self._authorised(request):
            return Reply(401, {"errorMessages": ["You are not authenticated."]})
        issue = self._issue(request)
        data = request.json() or {}
        if issue is None or data.get("accountId") not in self.accounts:
            return _errors(assignee=f"User {data.get('accountId')!r} cannot be assigned issues.")
        self.writes.append(("PUT", request.path, data))
        issue["fields"]["assignee"] = {"accountId": data["accountId"]}
        return Reply(204)

    def _list_comments(self, request: Request) -> Reply:
        if not self._authorised(request):
            return Reply(401, {"errorMessages": ["You are not authenticated."]})
        key = request.params["key"]
        if key not in self.issues:
            return Reply(404, {"errorMessages": ["Issue does not exist."], "errors": {}})
        comments = list(self.comments[key])
        if request.arg("orderBy") == "-created":
            comments.reverse()
        return Reply(
            200, {"startAt": 0, "maxResults": 20, "total": len(comments), "comments": comments}
        )

    def _add_comment(self, request: Request) -> Reply:
        if not self._authorised(request):
            return Reply(401, {"errorMessages": ["You are not authenticated."]})
        key = request.params["key"]
        data = request.json() or {}
        if key not in self.issues:
            return Reply(404, {"errorMessage": "The request does not exist."})
        if not isinstance(data.get("body"), str) or not isinstance(data.get("public"), bool):
            return Reply(400, {"errorMessage": "body (a string) and public (a boolean) needed"})
        self.writes.append(("POST", request.path, data))
        comment = self._comment(key, adf(data["body"]), public=data["public"], author="triage")
        return Reply(201, {**comment, "body": data["body"], "public": data["public"]})
