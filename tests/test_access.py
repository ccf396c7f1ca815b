"""API keys, scopes, rate limits and the request deadline, through the real app."""

from __future__ import annotations

import dataclasses
import logging
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from litestar.testing import TestClient

from service.api.app import create_app, warn_about_access
from service.security.keys import ApiKeyError, ApiKeyStore, hash_key
from service.settings import (
    AuthSettings,
    KnowledgeSettings,
    RateLimitSettings,
    Settings,
    SettingsError,
)
from service.storage import create_database_engine, upgrade_schema
from tests.servers import ROOT
from tests.test_api import TICKET, settings_for, wait_ready

REDIS_URL = os.environ.get("TRIAGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def key_store(settings: Settings) -> ApiKeyStore:
    engine = create_database_engine(settings.resolved_database_url)
    upgrade_schema(engine)
    return ApiKeyStore(engine)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def secured(trained: Path, tmp_path: Path) -> Settings:
    return settings_for(
        trained, tmp_path, auth=AuthSettings(enabled=True, cache_s=0), max_batch_wait_ms=0
    )


@pytest.fixture
def client(secured: Settings) -> Iterator[TestClient[Any]]:
    with TestClient(create_app(secured)) as test_client:
        wait_ready(test_client)
        yield test_client


@pytest.fixture
def keys(secured: Settings) -> ApiKeyStore:
    return key_store(secured)


def test_a_request_without_a_key_is_refused_with_401_saying_how_to_send_one(
    client: TestClient[Any],
) -> None:
    answer = client.post("/v1/classify", json=TICKET)

    assert answer.status_code == 401
    assert "Authorization: Bearer <key>" in answer.json()["detail"]


def test_an_unknown_key_is_refused_with_401(client: TestClient[Any]) -> None:
    forged = "tt_0123abcd_" + "x" * 43

    answer = client.post("/v1/classify", json=TICKET, headers=bearer(forged))

    assert answer.status_code == 401
    assert "tt_0123abcd..." in answer.json()["detail"]


def test_a_key_with_the_scope_is_let_in_by_either_header(
    client: TestClient[Any], keys: ApiKeyStore
) -> None:
    key = keys.create("alice", ["predict"]).secret

    by_bearer = client.post("/v1/classify", json=TICKET, headers=bearer(key))
    by_header = client.post("/v1/classify", json=TICKET, headers={"X-API-Key": key})

    assert by_bearer.status_code == 200 and by_header.status_code == 200


def test_a_key_without_the_scope_is_refused_with_403_naming_the_scope(
    client: TestClient[Any], keys: ApiKeyStore
) -> None:
    key = keys.create("reader", ["predict"]).secret
    entry = {"source_id": "T-1", "body": "VPN down", "resolution": "Restarted the gateway."}

    write = client.post("/v1/knowledge", json={"entries": [entry]}, headers=bearer(key))
    reload = client.post("/v1/models/reload", headers=bearer(key))

    assert write.status_code == 403
    assert "needs 'knowledge:write'" in write.json()["detail"]
    assert reload.status_code == 403


def test_admin_grants_every_scope(client: TestClient[Any], keys: ApiKeyStore) -> None:
    key = keys.create("ops", ["admin"]).secret
    entry = {"source_id": "T-1", "body": "VPN down", "resolution": "Restarted the gateway."}

    write = client.post("/v1/knowledge", json={"entries": [entry]}, headers=bearer(key))

    assert write.status_code == 200 and write.json()["created"] == 1


def test_a_revoked_key_is_refused(client: TestClient[Any], keys: ApiKeyStore) -> None:
    made = keys.create("leaver", ["predict"])
    assert client.post("/v1/classify", json=TICKET, headers=bearer(made.secret)).status_code == 200

    keys.revoke(made.info.prefix)

    assert client.post("/v1/classify", json=TICKET, headers=bearer(made.secret)).status_code == 401


@pytest.mark.parametrize("path", ["/health", "/ready", "/metrics", "/docs/openapi.json"])
def test_probes_metrics_and_the_schema_need_no_key(client: TestClient[Any], path: str) -> None:
    assert client.get(path).status_code == 200


def test_the_schema_declares_the_key_and_the_errors(client: TestClient[Any]) -> None:
    schema = client.get("/docs/openapi.json").json()

    classify = schema["paths"]["/v1/classify"]["post"]
    assert classify["security"] == [{"apiKey": []}]
    assert {"401", "403", "429"} <= set(classify["responses"])
    assert schema["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"


def test_only_the_hash_of_a_key_is_stored(database_url: str) -> None:
    engine = create_database_engine(database_url)
    upgrade_schema(engine)
    keys = ApiKeyStore(engine)

    made = keys.create("bob", ["predict", "knowledge:write"])

    with engine.connect() as connection:
        stored = connection.exec_driver_sql("SELECT secret_hash, scopes FROM api_keys").one()
    assert stored[0] == hash_key(made.secret) and made.secret not in str(stored)
    identity = keys.verify(made.secret)
    assert identity is not None and identity.scopes == {"predict", "knowledge:write"}
    assert keys.verify(made.secret[:-1] + ("A" if made.secret[-1] != "A" else "B")) is None
    engine.dispose()


def test_unknown_scopes_are_refused_with_the_valid_ones(tmp_path: Path) -> None:
    keys = key_store(Settings(data_dir=tmp_path))

    with pytest.raises(ApiKeyError, match="expected one or more of predict, knowledge:write"):
        keys.create("eve", ["root"])


def keys_command(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", "keys", *args],
        cwd=ROOT,
        env={**os.environ, "TRIAGE_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_keys_command_makes_lists_and_revokes(tmp_path: Path) -> None:
    key_file = tmp_path / "secrets" / "key"

    made = keys_command(
        tmp_path, "create", "--name", "zammad", "--scope", "predict", "--output", str(key_file)
    )
    again = keys_command(tmp_path, "create", "--name", "other", "--scope", "admin", "--if-none")
    secret = key_file.read_text().strip()
    prefix = secret.split("_")[1]
    listed = keys_command(tmp_path, "list")
    revoked = keys_command(tmp_path, "revoke", prefix)
    after = keys_command(tmp_path, "list", "--all")

    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert secret not in made.stdout  # written to the file, not shown
    assert "1 API keys exist; not making another" in again.stdout
    assert f"tt_{prefix}_...  zammad  predict" in listed.stdout and secret not in listed.stdout
    assert revoked.returncode == 0 and "revoked" in after.stdout
    assert key_store(Settings(data_dir=tmp_path)).verify(secret) is None


def test_revoking_an_unknown_key_is_an_error_message_not_a_traceback(tmp_path: Path) -> None:
    result = keys_command(tmp_path, "revoke", "deadbeef")

    assert result.returncode == 2
    assert "no API key 'deadbeef'" in result.stderr


def test_a_misspelt_switch_stops_start_up_instead_of_opening_the_service() -> None:
    with pytest.raises(SettingsError, match="TRIAGE_AUTH_ENABLED: expected true or false"):
        Settings.from_env({"TRIAGE_AUTH_ENABLED": "flase"})


def test_start_up_warns_when_authentication_is_off_on_a_public_address(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(data_dir=tmp_path, host="0.0.0.0", auth=AuthSettings(enabled=False))

    with caplog.at_level(logging.WARNING):
        warn_about_access(settings, key_store(settings))

    assert "authentication is OFF" in caplog.text and "0.0.0.0" in caplog.text


def test_start_up_says_quietly_nothing_on_loopback_without_authentication(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(data_dir=tmp_path, auth=AuthSettings(enabled=False))

    with caplog.at_level(logging.WARNING):
        warn_about_access(settings, key_store(settings))

    assert caplog.text == ""


# Rate limits.


def limited(trained: Path, data_dir: Path, **limits: Any) -> Settings:
    return settings_for(
        trained,
        data_dir,
        auth=AuthSettings(enabled=True, cache_s=5),
        rate_limit=RateLimitSettings(**limits),
        max_batch_wait_ms=0,
    )


def test_a_key_over_its_rate_gets_429_with_retry_after(trained: Path, tmp_path: Path) -> None:
    settings = limited(trained, tmp_path, requests=3, per="minute")
    keys = key_store(settings)
    first, second = keys.create("a", ["predict"]).secret, keys.create("b", ["predict"]).secret

    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        answers = [
            client.post("/v1/classify", json=TICKET, headers=bearer(first)) for _ in range(4)
        ]
        other = client.post("/v1/classify", json=TICKET, headers=bearer(second))

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert 1 <= int(answers[-1].headers["Retry-After"]) <= 60
    assert "rate limit of 3 requests per 60 seconds" in answers[-1].json()["detail"]
    assert other.status_code == 200  # each key has its own allowance


def test_replicas_sharing_redis_share_the_limit(trained: Path, tmp_path: Path) -> None:
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Redis is not reachable at {REDIS_URL}: {exc}")
    settings = limited(trained, tmp_path, requests=4, per="minute", redis_url=REDIS_URL)
    key = key_store(settings).create("shared", ["predict"]).secret
    # Two replicas: one database, an index folder each, the limits in Redis.
    replicas = [
        dataclasses.replace(settings, knowledge=KnowledgeSettings(index_dir=tmp_path / name))
        for name in ("one", "two")
    ]

    with (
        TestClient(create_app(replicas[0])) as one,
        TestClient(create_app(replicas[1])) as two,
    ):
        wait_ready(one)
        wait_ready(two)
        statuses = [
            (one if i % 2 else two).post("/v1/classify", json=TICKET, headers=bearer(key))
            for i in range(6)
        ]

    assert [s.status_code for s in statuses] == [200, 200, 200, 200, 429, 429]


# The deadline.


def test_a_request_past_its_deadline_is_answered_504(trained: Path, tmp_path: Path) -> None:
    # A ticket alone waits max_batch_wait_ms for company: longer than the deadline here.
    settings = settings_for(trained, tmp_path, max_batch_wait_ms=1000, request_timeout_s=0.2)

    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        answer = client.post("/v1/classify", json=TICKET)
        afterwards = client.get("/health")

    assert answer.status_code == 504
    assert "TRIAGE_REQUEST_TIMEOUT_S=0.2 s" in answer.json()["detail"]
    assert afterwards.status_code == 200
