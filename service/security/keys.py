"""API keys: made and revoked from the command line, checked on every request.

A key reads ``tt_<prefix>_<secret>``: the prefix (8 hex digits) is its public
name, safe to show and log; the secret is 256 random bits. Only the SHA-256 of
the whole key is stored, so a copy of the database lets no one in. SHA-256 and
not a slow password hash: the keys are random, not chosen by people, so there is
nothing to guess, and a check costs microseconds.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.storage.tables import ApiKey, utc_now

__all__ = [
    "ROLE_GRANTS",
    "SCOPES",
    "ApiKeyError",
    "ApiKeyStore",
    "KeyIdentity",
    "KeyInfo",
    "NewKey",
]

#: ``predict``: classify, suggest, route (without assigning) and read; ``knowledge:write``:
#: add and delete knowledge entries; ``routing:write``: assign tickets, close assignments,
#: set agents' availability; ``feedback:write``: post agents' feedback; ``connectors:write``:
#: poll ticket systems and replay outbound webhooks; ``admin``: everything, including teams,
#: agents' profiles, model reloads, promotion and rollback.
#: The roles of the web interfaces are scopes too: ``agent`` (the agent view, and what it
#: calls: predict, feedback:write, routing:write) and ``lead`` (an agent who also sees the
#: dashboard and reports).
SCOPES = (
    "predict",
    "knowledge:write",
    "routing:write",
    "feedback:write",
    "connectors:write",
    "agent",
    "lead",
    "admin",
)
#: What each role grants besides itself.
ROLE_GRANTS = {
    "agent": frozenset({"predict", "feedback:write", "routing:write"}),
    "lead": frozenset({"agent", "predict", "feedback:write", "routing:write"}),
}
_KEY = re.compile(r"^tt_([0-9a-f]{8})_([A-Za-z0-9_-]{43})$")


class ApiKeyError(ValueError):
    """A key command was given something it cannot use; the message says what."""


@dataclass(frozen=True)
class KeyIdentity:
    """Who a verified request comes from."""

    id: int
    name: str
    prefix: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        if scope in self.scopes or "admin" in self.scopes:
            return True
        return any(scope in ROLE_GRANTS.get(granted, ()) for granted in self.scopes)


@dataclass(frozen=True)
class KeyInfo:
    id: int
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class NewKey:
    """A key just made: ``secret`` is shown once and stored nowhere."""

    secret: str
    info: KeyInfo


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def check_scopes(scopes: Iterable[str]) -> list[str]:
    chosen = sorted(set(scopes))
    unknown = [scope for scope in chosen if scope not in SCOPES]
    if not chosen or unknown:
        raise ApiKeyError(f"scopes: expected one or more of {', '.join(SCOPES)}, found {chosen}")
    return chosen


def _info(row: ApiKey) -> KeyInfo:
    return KeyInfo(row.id, row.name, row.prefix, list(row.scopes), row.created_at, row.revoked_at)


class ApiKeyStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, name: str, scopes: Sequence[str]) -> NewKey:
        if not name.strip():
            raise ApiKeyError("name: expected who holds the key, found nothing")
        chosen = check_scopes(scopes)
        for _ in range(5):  # a prefix collision (1 in 4 billion) just draws again
            prefix = secrets.token_hex(4)
            secret = f"tt_{prefix}_{secrets.token_urlsafe(32)}"
            row = ApiKey(name=name.strip(), prefix=prefix, secret_hash=hash_key(secret))
            row.scopes, row.created_at = chosen, utc_now()
            try:
                with Session(self.engine) as session, session.begin():
                    session.add(row)
                    session.flush()
                    info = _info(row)
            except IntegrityError:
                continue
            return NewKey(secret, info)
        raise RuntimeError("could not draw an unused key prefix")

    def list(self, include_revoked: bool = False) -> list[KeyInfo]:
        query = select(ApiKey).order_by(ApiKey.id)
        if not include_revoked:
            query = query.where(ApiKey.revoked_at.is_(None))
        with Session(self.engine) as session:
            return [_info(row) for row in session.scalars(query)]

    def revoke(self, prefix: str) -> KeyInfo:
        """Revoke the key with this prefix (or the whole key); revoking twice is harmless."""
        match = _KEY.match(prefix)
        prefix = match.group(1) if match else prefix.strip()
        with Session(self.engine) as session, session.begin():
            row = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
            if row is None:
                raise ApiKeyError(f"prefix: no API key {prefix!r}; `keys list` shows them")
            if row.revoked_at is None:
                row.revoked_at = utc_now()
            return _info(row)

    def verify(self, key: str) -> KeyIdentity | None:
        """The key's holder and scopes; None for a malformed, unknown or revoked key."""
        match = _KEY.match(key)
        if match is None:
            return None
        with Session(self.engine) as session:
            row = session.scalar(select(ApiKey).where(ApiKey.prefix == match.group(1)))
        if row is None or row.revoked_at is not None:
            return None
        if not hmac.compare_digest(row.secret_hash, hash_key(key)):
            return None
        return KeyIdentity(row.id, row.name, row.prefix, frozenset(row.scopes))

    def count_active(self) -> int:
        return len(self.list())
