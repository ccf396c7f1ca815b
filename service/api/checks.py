"""Checks on request text shared by the classification and knowledge routes."""

from __future__ import annotations

from collections.abc import Mapping

from service.errors import InputError

__all__ = ["check_no_nul", "check_ticket_text"]


def check_ticket_text(where: str, subject: str | None, body: str, limit: int) -> None:
    """Refuse a blank body, or a subject and body longer than ``limit`` characters together."""
    check_no_nul(where, {"subject": subject, "body": body})
    if not body.strip():
        raise InputError(f"{where}.body: expected ticket text, found only whitespace")
    length = len(body) + len(subject or "")
    if length > limit:
        raise InputError(
            f"{where}: expected at most {limit} characters of subject and body, found {length}"
        )


def check_no_nul(where: str, fields: Mapping[str, object]) -> None:
    """Refuse NUL characters, which PostgreSQL cannot store in text and no ticket needs.

    ``fields`` maps names to strings, lists of strings or mappings of strings.
    """
    for name, value in fields.items():
        if isinstance(value, Mapping):
            texts = [str(k) for k in value] + [str(v) for v in value.values()]
        elif isinstance(value, list | tuple):
            texts = [str(item) for item in value]
        else:
            texts = [] if value is None else [str(value)]
        if any("\x00" in text for text in texts):
            raise InputError(f"{where}.{name}: expected text without NUL (\\u0000) characters")
