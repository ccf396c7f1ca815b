"""The knowledge base's values: what callers give, what they get back."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = [
    "EntryInput",
    "KnowledgeRecord",
    "SuggestFilters",
    "Suggestion",
    "WriteResult",
    "as_utc",
]


def as_utc(moment: datetime) -> datetime:
    """A timestamp without a zone is taken as UTC; one with a zone is kept."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class EntryInput:
    """A resolved ticket to store; ``language`` is detected from the text when absent."""

    source_id: str
    body: str
    resolution: str
    subject: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    language: str | None = None
    tags: Sequence[str] = ()
    source_system: str | None = None
    created_at: datetime | None = None
    resolved_at: datetime | None = None

    def content_hash(self, language: str) -> str:
        """SHA-256 over every stored field, so an unchanged re-import is recognised."""
        payload = {
            "subject": self.subject,
            "body": self.body,
            "resolution": self.resolution,
            "labels": dict(sorted(self.labels.items())),
            "language": language,
            "tags": list(self.tags),
            "source_system": self.source_system,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
        }
        encoded = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode("utf-8")
        return hashlib.sha256(encoded).hexdigest()


@dataclass(frozen=True)
class WriteResult:
    source_id: str
    #: ``created``, ``updated`` or ``unchanged``.
    status: str


@dataclass(frozen=True)
class KnowledgeRecord:
    """A stored entry as the API shows it."""

    source_id: str
    subject: str
    body: str
    resolution: str
    labels: dict[str, str]
    language: str
    tags: list[str]
    source_system: str | None
    created_at: datetime
    resolved_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True)
class SuggestFilters:
    """Restrict suggestions to some queues, languages or a creation-date window."""

    queues: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    created_after: datetime | None = None
    created_before: datetime | None = None

    @property
    def active(self) -> bool:
        return bool(self.queues or self.languages or self.created_after or self.created_before)


@dataclass(frozen=True)
class Suggestion:
    """A similar resolved ticket; ``duplicates`` are near-identical ones folded into it."""

    record: KnowledgeRecord
    score: float
    duplicates: list[str] = field(default_factory=list)
