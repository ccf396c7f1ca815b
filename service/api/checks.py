"""Checks on request text shared by the classification and knowledge routes."""

from __future__ import annotations

from service.errors import InputError

__all__ = ["check_ticket_text"]


def check_ticket_text(where: str, subject: str | None, body: str, limit: int) -> None:
    """Refuse a blank body, or a subject and body longer than ``limit`` characters together."""
    if not body.strip():
        raise InputError(f"{where}.body: expected ticket text, found only whitespace")
    length = len(body) + len(subject or "")
    if length > limit:
        raise InputError(
            f"{where}: expected at most {limit} characters of subject and body, found {length}"
        )
