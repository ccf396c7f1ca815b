"""HTTP calls to ticket systems: one client per system, errors that say what was called."""

from __future__ import annotations

import logging
import re
from typing import Any

import httpx

from service.errors import UpstreamError

__all__ = ["RedactQueryFilter", "SystemClient"]

logger = logging.getLogger(__name__)

_SECRET_QUERY = re.compile(r"((?:SessionID|Password|UserLogin|token)=)[^&\s\"']+", re.IGNORECASE)


class RedactQueryFilter(logging.Filter):
    """httpx logs each request's URL; GenericInterface GET calls carry the session in the
    query string. This keeps such values out of every log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _SECRET_QUERY.sub(r"\1<redacted>", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


logging.getLogger("httpx").addFilter(RedactQueryFilter())


class SystemClient:
    """An ``httpx.AsyncClient`` for one system whose failures become ``UpstreamError``."""

    def __init__(self, system: str, client: httpx.AsyncClient) -> None:
        self.system = system
        self.client = client

    async def call(
        self, method: str, path: str, *, expected: tuple[int, ...] = (200,), **options: Any
    ) -> Any:
        """The JSON answer of ``method path`` (None for an empty one); anything but an
        ``expected`` status is an ``UpstreamError`` naming the call and the answer."""
        try:
            answer = await self.client.request(method, path, **options)
        except httpx.HTTPError as exc:
            raise UpstreamError(
                f"{self.system}: {method} {path} failed ({type(exc).__name__}: {exc}); check "
                "the connector's URL and that the system is reachable"
            ) from exc
        if answer.status_code not in expected:
            raise UpstreamError(
                f"{self.system}: {method} {path}: expected HTTP {'/'.join(map(str, expected))}, "
                f"found {answer.status_code}: {answer.text[:300]}"
            )
        if not answer.content:
            return None
        try:
            return answer.json()
        except ValueError as exc:
            raise UpstreamError(
                f"{self.system}: {method} {path}: expected a JSON answer, found "
                f"{answer.text[:100]!r}"
            ) from exc

    async def close(self) -> None:
        await self.client.aclose()
