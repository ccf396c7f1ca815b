"""Hostile requests against a running server with authentication on: each gets its 4xx,
none a 5xx, and the server keeps serving."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import create_keys, free_port, running_server, server_environment

GOOD = {"subject": "VPN down", "body": "The VPN drops every five minutes."}
ENTRY = {"source_id": "H-1", "body": "Printer jams", "resolution": "Cleaned the rollers."}


@dataclass
class Target:
    url: str
    keys: dict[str, str]  # scope name -> key

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}


@pytest.fixture(scope="module")
def target(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    folder = tmp_path_factory.mktemp("hostile")
    keys = create_keys(
        folder,
        {"predict": ["predict"], "writer": ["predict", "knowledge:write"], "flood": ["predict"]},
    )
    environment = server_environment(
        trained,
        free_port(),
        folder,
        TRIAGE_AUTH_ENABLED="true",
        TRIAGE_MAX_BODY_BYTES="65536",
        TRIAGE_MAX_TEXT_CHARS="5000",
        TRIAGE_MAX_BATCH_REQUEST="8",
        TRIAGE_MAX_BATCH_WAIT_MS="0",
        TRIAGE_RATE_LIMIT_REQUESTS="60",
    )
    with running_server(environment, folder / "server.log") as server:
        yield Target(server.url, keys)
        assert server.process.poll() is None, "the server died under hostile requests"


def raw(
    target: Target, method: str, path: str, who: str | None, content: bytes, **headers: str
) -> httpx.Response:
    sent = {"Content-Type": "application/json", **headers}
    if who:
        sent.update(target.headers(who))
    return httpx.request(method, target.url + path, content=content, headers=sent, timeout=30)


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


CASES = [
    # (name, method, path, key, body, expected status)
    ("no key", "POST", "/v1/classify", None, body(GOOD), 401),
    ("forged key", "POST", "/v1/classify", "forged", body(GOOD), 401),
    ("missing scope", "POST", "/v1/knowledge", "predict", body({"entries": [ENTRY]}), 403),
    ("reload without admin", "POST", "/v1/models/reload", "writer", b"{}", 403),
    ("oversized body", "POST", "/v1/classify", "predict", body({"body": "x" * 70_000}), 413),
    ("malformed JSON", "POST", "/v1/classify", "predict", b'{"body": "VPN', 400),
    ("not an object", "POST", "/v1/classify", "predict", b'["VPN down"]', 400),
    ("wrong type", "POST", "/v1/classify", "predict", body({"body": 42}), 400),
    ("unknown field", "POST", "/v1/classify", "predict", body({**GOOD, "admin": True}), 400),
    ("empty request", "POST", "/v1/classify", "predict", b"", 400),
    ("blank ticket", "POST", "/v1/classify", "predict", body({"body": " \n\t "}), 400),
    ("text too long", "POST", "/v1/classify", "predict", body({"body": "x" * 6000}), 400),
    ("NUL in text", "POST", "/v1/classify", "predict", body({"body": "a\u0000b"}), 400),
    ("bad language", "POST", "/v1/classify", "predict", body({**GOOD, "language": "x"}), 400),
    ("invalid UTF-8", "POST", "/v1/classify", "predict", b'{"body": "\xff\xfe"}', 400),
    ("NaN", "POST", "/v1/classify", "predict", b'{"body": NaN}', 400),
    ("deep nesting", "POST", "/v1/classify", "predict", b"[" * 5000 + b"]" * 5000, 400),
    ("batch too big", "POST", "/v1/classify/batch", "predict", body({"tickets": [GOOD] * 9}), 400),
    ("empty batch", "POST", "/v1/classify/batch", "predict", body({"tickets": []}), 400),
    ("k too large", "POST", "/v1/suggest", "predict", body({**GOOD, "k": 10**9}), 400),
    ("k negative", "POST", "/v1/suggest", "predict", body({**GOOD, "k": -1}), 400),
    (
        "NUL in source id",
        "POST",
        "/v1/knowledge",
        "writer",
        body({"entries": [{**ENTRY, "source_id": "a\u0000"}]}),
        400,
    ),
    ("NUL in path", "GET", "/v1/knowledge/a%00b", "predict", b"", 400),
    ("unknown entry", "GET", "/v1/knowledge/..%2F..%2Fetc%2Fpasswd", "predict", b"", 404),
    ("unknown route", "POST", "/v1/admin", "predict", b"{}", 404),
    ("wrong method", "GET", "/v1/classify", "predict", b"", 405),
]


@pytest.mark.parametrize(
    ("method", "path", "who", "content", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_hostile_request_gets_its_4xx(
    target: Target, method: str, path: str, who: str | None, content: bytes, expected: int
) -> None:
    if who == "forged":
        target.keys["forged"] = "tt_0123abcd_" + "A" * 43
    answer = raw(target, method, path, who, content)

    assert answer.status_code == expected, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["detail"]


def test_a_flood_is_cut_off_with_429_and_others_keep_being_served(target: Target) -> None:
    with httpx.Client(base_url=target.url, headers=target.headers("flood"), timeout=30) as client:
        statuses = [client.post("/v1/classify", json=GOOD).status_code for _ in range(80)]
    other = httpx.post(
        f"{target.url}/v1/classify", json=GOOD, headers=target.headers("predict"), timeout=30
    )

    assert set(statuses) == {200, 429}
    assert statuses.index(429) == 60  # the 61st request in the minute is the first refused
    assert other.status_code == 200


def test_the_server_still_serves_after_it_all(target: Target) -> None:
    answer = httpx.post(
        f"{target.url}/v1/classify", json=GOOD, headers=target.headers("writer"), timeout=30
    )

    assert answer.status_code == 200 and answer.json()["queue"]["label"]
    assert httpx.get(f"{target.url}/health", timeout=5).status_code == 200
