"""Who may call the API, how often, and for how long: API keys, scopes, rate limits and
the request deadline, as Litestar middleware and a guard.

Each ``/v1`` handler names the scope it needs in its ``opt`` (``{"scope": "predict"}``);
one without a scope needs ``admin``. ``/health``, ``/ready``, ``/metrics`` and the OpenAPI
page are open, so that probes and scrapers need no key.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from cachetools import TTLCache
from litestar import MediaType, Request, Response
from litestar.connection import ASGIConnection
from litestar.exceptions import TooManyRequestsException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import (
    AbstractAuthenticationMiddleware,
    AbstractMiddleware,
    AuthenticationResult,
    DefineMiddleware,
)
from litestar.middleware.rate_limit import RateLimitConfig, get_remote_address
from litestar.stores.base import Store
from litestar.stores.memory import MemoryStore
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import ForbiddenError, RequestTimeoutError, UnauthorizedError
from service.security.keys import ApiKeyStore, KeyIdentity
from service.settings import Settings

__all__ = [
    "PUBLIC_PATHS",
    "SIGNED_PATHS",
    "ApiKeyMiddleware",
    "ApiKeyVerifier",
    "RequestTimeoutMiddleware",
    "check_scope",
    "presented_key",
    "rate_limit_config",
    "rate_limit_store",
    "rate_limited",
    "require_scope",
]

logger = logging.getLogger(__name__)

#: Paths that need no key and are not rate limited (probes, metrics, the API's own docs).
PUBLIC_PATHS = ["^/health$", "^/ready$", "^/metrics", "^/docs"]
#: Paths authenticated by the calling ticket system's signature or token, not an API key.
SIGNED_PATHS = ["^/v1/connectors/[a-z]+/events$"]
HOW_TO_SEND = (
    "send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'; "
    "an administrator makes one with `python -m service keys create`"
)


class ApiKeyVerifier:
    """Checks presented keys against the database, remembering answers for ``cache_s``."""

    def __init__(self, store: ApiKeyStore, cache_s: float) -> None:
        self.store = store
        self._cache: TTLCache[str, KeyIdentity | None] | None = (
            TTLCache(maxsize=10_000, ttl=cache_s) if cache_s > 0 else None
        )

    async def verify(self, key: str) -> KeyIdentity | None:
        if self._cache is not None and key in self._cache:
            return self._cache[key]
        identity = await asyncio.to_thread(self.store.verify, key)
        if self._cache is not None:
            self._cache[key] = identity
        return identity


def presented_key(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    authorization = connection.headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    header = connection.headers.get("x-api-key", "").strip()
    if header:
        return header
    # A web page's own calls carry the key of its signed-in visitor in the session cookie.
    session = connection.scope.get("session")
    key = session.get("key") if isinstance(session, dict) else None
    return key if isinstance(key, str) and key else None


class ApiKeyMiddleware(AbstractAuthenticationMiddleware):
    """Puts the caller's ``KeyIdentity`` in ``scope["auth"]``, or answers 401."""

    def __init__(
        self, app: ASGIApp, verifier: ApiKeyVerifier, page_paths: list[str] | None = None
    ) -> None:
        # Web pages check sign-in themselves, to send a browser to the sign-in page;
        # connector webhooks are authenticated by the calling system's signature instead.
        super().__init__(app, exclude=[*PUBLIC_PATHS, *SIGNED_PATHS, *(page_paths or [])])
        self.verifier = verifier

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        key = presented_key(connection)
        if key is None:
            raise UnauthorizedError(f"this route needs an API key; {HOW_TO_SEND}")
        identity = await self.verifier.verify(key)
        if identity is None:
            shown = key[:11] + "..." if key.startswith("tt_") else "the key sent"
            raise UnauthorizedError(
                f"API key {shown} is unknown, revoked or malformed; expected a key like "
                "tt_0123abcd_<43 characters> from `python -m service keys create`"
            )
        return AuthenticationResult(user=identity.name, auth=identity)


async def require_scope(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Guard: the caller's key must grant the handler's scope (``admin`` grants all).

    A coroutine, since Litestar runs a plain function guard in a worker thread: a thread
    hop on every request for a dictionary lookup."""
    check_scope(connection.scope, handler.opt.get("scope", "admin"))


def check_scope(scope_of_request: Any, scope: str) -> None:
    """Refuse with 403 unless the request's key grants ``scope`` (for a scope that depends
    on the request's content, such as assigning while routing)."""
    identity = scope_of_request.get("auth")
    if not isinstance(identity, KeyIdentity):
        return  # authentication is switched off
    if not identity.allows(scope):
        raise ForbiddenError(
            f"API key {identity.prefix} ({identity.name}) has scopes "
            f"{sorted(identity.scopes)}; this route needs {scope!r} (or 'admin')"
        )


def _rate_limit_identity(request: Request[Any, Any, Any]) -> str:
    identity = request.scope.get("auth")
    if isinstance(identity, KeyIdentity):
        return f"key:{identity.prefix}"
    return f"address:{get_remote_address(request)}"


def rate_limit_config(settings: Settings) -> RateLimitConfig | None:
    limits = settings.rate_limit
    if limits.requests == 0:
        return None
    return RateLimitConfig(
        rate_limit=(limits.per, limits.requests),  # type: ignore[arg-type]
        exclude=PUBLIC_PATHS,
        identifier_for_request=_rate_limit_identity,
        store="rate_limit",
    )


def rate_limit_store(settings: Settings) -> Store:
    """Redis when configured, so that every replica counts against the same limit."""
    url = settings.rate_limit.redis_url
    if not url:
        return MemoryStore()
    from litestar.stores.redis import RedisStore

    return RedisStore.with_client(url=url, namespace="ticket-triage-rate-limit")


def rate_limited(
    request: Request[Any, Any, Any], exc: TooManyRequestsException
) -> Response[dict[str, Any]]:
    """429 with ``Retry-After`` (seconds until the window frees a request)."""
    headers = dict(exc.headers or {})
    retry_after = max(1, int(headers.get("RateLimit-Reset", "1")))
    limit = headers.get("RateLimit-Policy", "").replace("; w=", " requests per ")
    headers["Retry-After"] = str(retry_after)
    detail = (
        f"rate limit of {limit} seconds exceeded for this "
        f"{'API key' if isinstance(request.scope.get('auth'), KeyIdentity) else 'client'}; "
        f"retry in {retry_after} s"
    )
    return Response(
        {"status_code": 429, "detail": detail},
        status_code=429,
        headers=headers,
        media_type=MediaType.JSON,
    )


class RequestTimeoutMiddleware(AbstractMiddleware):
    """Answers 504 when a request runs past its deadline and nothing was sent yet.

    The handler's work is cancelled; a write already handed to a worker thread may still
    commit, which is harmless because knowledge writes are idempotent on ``source_id``.
    A handler with ``opt={"no_timeout": True}`` (model reloads) runs to its end.
    """

    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        super().__init__(app, exclude=PUBLIC_PATHS, exclude_opt_key="no_timeout")
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        began = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout_s):
                await self.app(scope, receive, tracking_send)
        except TimeoutError:
            if started:
                raise
            logger.warning(
                "%s %s ran past its deadline of %.1f s; answered 504",
                scope.get("method"),
                scope.get("path"),
                time.monotonic() - began,
            )
            raise RequestTimeoutError(
                f"the request took longer than TRIAGE_REQUEST_TIMEOUT_S={self.timeout_s:g} s; "
                "send fewer tickets per call, or retry when the service is less busy"
            ) from None


def access_middleware(
    settings: Settings,
    verifier: ApiKeyVerifier,
    session: DefineMiddleware | None = None,
    page_paths: list[str] | None = None,
) -> list[DefineMiddleware]:
    """The deadline, then the web session (if any), then authentication, then rate limiting
    (which counts per key)."""
    stack = [DefineMiddleware(RequestTimeoutMiddleware, timeout_s=settings.request_timeout_s)]
    if session is not None:
        stack.append(session)
    if settings.auth.enabled:
        stack.append(DefineMiddleware(ApiKeyMiddleware, verifier=verifier, page_paths=page_paths))
    limits = rate_limit_config(settings)
    if limits is not None:
        stack.append(limits.middleware)
    return stack
