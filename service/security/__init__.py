"""Access control and personal data: API keys with scopes, and redaction of PII."""

from service.security.keys import SCOPES, ApiKeyError, ApiKeyStore, KeyIdentity, NewKey
from service.security.privacy import RedactingFilter, Redactor

__all__ = [
    "SCOPES",
    "ApiKeyError",
    "ApiKeyStore",
    "KeyIdentity",
    "NewKey",
    "RedactingFilter",
    "Redactor",
]
