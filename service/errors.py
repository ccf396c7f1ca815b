"""The service's errors, each carrying the HTTP status it maps to (see ``service.api.app``)."""

from __future__ import annotations

__all__ = [
    "BusyError",
    "ForbiddenError",
    "InputError",
    "KnowledgeNotReadyError",
    "ModelLoadError",
    "ModelNotReadyError",
    "NotFoundError",
    "RequestTimeoutError",
    "ServiceError",
    "StorageUnavailableError",
    "UnauthorizedError",
    "UpstreamError",
]


class ServiceError(Exception):
    """Base class; ``status_code`` is the HTTP answer, ``retry_after`` seconds for 503s."""

    status_code = 500
    retry_after: int | None = None


class InputError(ServiceError):
    """The request is well-formed JSON but its content is out of bounds."""

    status_code = 400


class NotFoundError(ServiceError):
    """The request names something that does not exist."""

    status_code = 404


class ModelLoadError(ServiceError):
    """A bundle asked for by a reload is missing or broken; the old model keeps serving."""

    status_code = 422


class ModelNotReadyError(ServiceError):
    """The model is still loading."""

    status_code = 503
    retry_after = 2


class BusyError(ServiceError):
    """Too many tickets are waiting for the model."""

    status_code = 503
    retry_after = 1


class KnowledgeNotReadyError(ServiceError):
    """The knowledge base is still opening, or embedding its entries for a new model."""

    status_code = 503
    retry_after = 5


class UnauthorizedError(ServiceError):
    """No API key, or one that is unknown or revoked."""

    status_code = 401


class ForbiddenError(ServiceError):
    """A valid API key without the scope the route needs."""

    status_code = 403


class RequestTimeoutError(ServiceError):
    """The request ran longer than ``TRIAGE_REQUEST_TIMEOUT_S``."""

    status_code = 504


class StorageUnavailableError(ServiceError):
    """The database did not take a write; nothing was acknowledged."""

    status_code = 503
    retry_after = 2


class UpstreamError(ServiceError):
    """A ticket system a connector calls refused the call or could not be reached."""

    status_code = 502
