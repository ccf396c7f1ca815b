"""What the OpenAPI schema says about errors and access, shared by every route.

Every error answer has the same body, ``{"status_code": ..., "detail": "..."}`` (a
validation error adds ``extra`` with the fields at fault); each route lists the
statuses it can answer, so that clients and the schema fuzzer know them.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar.openapi.datastructures import ResponseSpec

__all__ = ["SECURITY_SCHEME", "ErrorBody", "errors_of", "protected", "public"]

SECURITY_SCHEME = "apiKey"

_MEANINGS = {
    400: "The request's content is out of bounds or malformed; `detail` says which field.",
    401: "No API key, or an unknown or revoked one.",
    403: "The API key lacks the scope this route needs.",
    404: "No such entry.",
    409: "The shadow evaluation found the candidate worse than the active model.",
    413: "The request body is larger than TRIAGE_MAX_BODY_BYTES.",
    422: "The bundle asked for could not be loaded; the previous model keeps serving.",
    429: "Rate limit exceeded; `Retry-After` says when to retry.",
    502: "The ticket system a connector calls refused the call or could not be reached.",
    503: "Still loading, or at capacity; `Retry-After` says when to retry.",
    504: "The request ran longer than TRIAGE_REQUEST_TIMEOUT_S.",
}


class ErrorBody(msgspec.Struct):
    status_code: int
    detail: str
    extra: Any = None


def errors_of(*statuses: int) -> dict[int, ResponseSpec]:
    return {
        status: ResponseSpec(data_container=ErrorBody, description=_MEANINGS[status])
        for status in statuses
    }


def protected(scope: str, *statuses: int, **opt: Any) -> dict[str, Any]:
    """Route arguments for a ``/v1`` route that needs an API key with ``scope``; ``opt``
    adds route options (``no_timeout=True``)."""
    return {
        "opt": {"scope": scope, **opt},
        "security": [{SECURITY_SCHEME: []}],
        "responses": errors_of(*sorted({400, 401, 403, 429, 504, *statuses})),
    }


def public(*statuses: int) -> dict[str, Any]:
    """Route arguments for a route open to anyone (probes)."""
    return {"security": [{}], "responses": errors_of(*statuses) if statuses else None}
