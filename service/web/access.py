"""Who may open which page: a sign-in with an API key, kept in an encrypted cookie, and the
``agent`` and ``lead`` roles of the keys.

The cookie holds the key itself, encrypted and authenticated (AES-GCM) with the server's
session secret, HttpOnly and SameSite=Strict: the browser cannot read it and sends it to
this server only from its own pages. Every page and every API call made by a page checks
the key again, so a revoked key signs its browser out within the key cache's lifetime.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from litestar import Request
from litestar.middleware.session.client_side import CookieBackendConfig

from service.api.access import ApiKeyVerifier, presented_key
from service.security.keys import KeyIdentity
from service.settings import Settings

__all__ = [
    "WEB_PATHS",
    "NotAllowedError",
    "SignInRequiredError",
    "Visitor",
    "session_config",
    "visitor_of",
]

logger = logging.getLogger(__name__)

#: Pages (and their forms and scripts), which check sign-in themselves: a browser is sent to
#: the sign-in page instead of getting a 401.
WEB_PATHS = [
    "^/$",
    "^/help",
    "^/login",
    "^/logout",
    "^/agent",
    "^/dashboard",
    "^/reports",
    "^/static/",
]
SECRET_FILE = "web-session-secret"


class SignInRequiredError(Exception):
    """The page needs a signed-in visitor; they are sent to the sign-in page."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.login_url = f"/login?next={quote(path, safe='/?=&')}"


class NotAllowedError(Exception):
    """The signed-in key lacks the page's role."""

    def __init__(self, identity: KeyIdentity, role: str) -> None:
        super().__init__(f"key {identity.prefix} ({identity.name}) lacks the {role!r} role")
        self.identity = identity
        self.role = role


@dataclass(frozen=True)
class Visitor:
    """Who is looking at a page; with authentication off, anyone may do anything."""

    identity: KeyIdentity | None
    auth_enabled: bool

    @property
    def signed_in(self) -> bool:
        return self.identity is not None

    @property
    def name(self) -> str | None:
        return self.identity.name if self.identity else None

    def may(self, role: str) -> bool:
        if not self.auth_enabled:
            return True
        return self.identity is not None and self.identity.allows(role)


async def visitor_of(request: Request[Any, Any, Any], role: str | None = None) -> Visitor:
    """The page's visitor; with ``role``, refuse anyone without it (sign-in first)."""
    settings: Settings = request.app.state.settings
    if not settings.auth.enabled:
        return Visitor(None, False)
    verifier: ApiKeyVerifier = request.app.state.verifier
    # A key in the headers (a script fetching the CSV), else the signed-in browser's.
    key = presented_key(request)
    identity = await verifier.verify(key) if key else None
    visitor = Visitor(identity, True)
    if role is not None and not visitor.may(role):
        if identity is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise SignInRequiredError(target)
        raise NotAllowedError(identity, role)
    return visitor


def _stored_secret(data_dir: Path) -> str:
    """The session secret kept in the data folder, made on first start (mode 0600)."""
    path = data_dir / SECRET_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(32)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another worker made it first
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(secret + "\n")
    logger.info("made a web session secret in %s", path)
    return secret


def session_config(settings: Settings) -> CookieBackendConfig:
    secret = settings.web.session_secret or _stored_secret(settings.data_dir)
    return CookieBackendConfig(
        secret=hashlib.sha256(secret.encode("utf-8")).digest(),
        key="triage_session",
        max_age=settings.web.session_max_age_s,
        httponly=True,
        samesite="strict",
        exclude=["^/health$", "^/ready$", "^/metrics", "^/docs"],
    )
