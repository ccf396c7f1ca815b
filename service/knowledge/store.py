"""Database access for the knowledge base: entries, their embeddings and the change log.

Every write commits the entry rows and their change-log rows in one transaction;
when a method returns, the write is durable.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Engine, Select, delete, func, select
from sqlalchemy.orm import Session

from service.knowledge.records import EntryInput, KnowledgeRecord, SuggestFilters
from service.storage.tables import KnowledgeChange, KnowledgeEntry, utc_now

__all__ = ["EntryRow", "KnowledgeStore"]

UPSERT, DELETE = "upsert", "delete"
# Vectors are stored as little-endian float32 bytes.
_VECTOR_DTYPE = "<f4"


def _to_blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, _VECTOR_DTYPE).tobytes()


def _from_blob(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=_VECTOR_DTYPE)


@dataclass(frozen=True)
class EntryRow:
    """What a write needs to know of an entry already stored."""

    id: int
    subject: str
    body: str
    content_hash: str
    embedder: str


def to_record(row: KnowledgeEntry) -> KnowledgeRecord:
    return KnowledgeRecord(
        source_id=row.source_id,
        subject=row.subject,
        body=row.body,
        resolution=row.resolution,
        labels=dict(row.labels or {}),
        language=row.language,
        tags=list(row.tags or []),
        source_system=row.source_system,
        created_at=row.created_at,
        resolved_at=row.resolved_at,
        updated_at=row.updated_at,
    )


def _filtered(statement: Select[Any], filters: SuggestFilters) -> Select[Any]:
    if filters.queues:
        statement = statement.where(KnowledgeEntry.queue.in_(filters.queues))
    if filters.languages:
        statement = statement.where(KnowledgeEntry.language.in_(filters.languages))
    if filters.created_after:
        statement = statement.where(KnowledgeEntry.created_at >= filters.created_after)
    if filters.created_before:
        statement = statement.where(KnowledgeEntry.created_at < filters.created_before)
    return statement


class KnowledgeStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # Reads.

    def existing(self, source_ids: Sequence[str]) -> dict[str, EntryRow]:
        found: dict[str, EntryRow] = {}
        with Session(self.engine) as session:
            for start in range(0, len(source_ids), 500):
                rows = session.execute(
                    select(
                        KnowledgeEntry.source_id,
                        KnowledgeEntry.id,
                        KnowledgeEntry.subject,
                        KnowledgeEntry.body,
                        KnowledgeEntry.content_hash,
                        KnowledgeEntry.embedder,
                    ).where(KnowledgeEntry.source_id.in_(source_ids[start : start + 500]))
                )
                for source_id, entry_id, subject, body, content_hash, embedder in rows:
                    found[source_id] = EntryRow(entry_id, subject, body, content_hash, embedder)
        return found

    def get(self, source_id: str) -> KnowledgeRecord | None:
        with Session(self.engine) as session:
            row = session.scalar(
                select(KnowledgeEntry).where(KnowledgeEntry.source_id == source_id)
            )
            return to_record(row) if row is not None else None

    def records(self, ids: Sequence[int]) -> dict[int, KnowledgeRecord]:
        if not ids:
            return {}
        with Session(self.engine) as session:
            rows = session.scalars(select(KnowledgeEntry).where(KnowledgeEntry.id.in_(list(ids))))
            return {row.id: to_record(row) for row in rows}

    def count(self, filters: SuggestFilters | None = None) -> int:
        statement = select(func.count(KnowledgeEntry.id))
        if filters is not None:
            statement = _filtered(statement, filters)
        with Session(self.engine) as session:
            return int(session.scalar(statement) or 0)

    def matching_ids(
        self, filters: SuggestFilters, among: Sequence[int] | None = None
    ) -> list[int]:
        statement = _filtered(select(KnowledgeEntry.id), filters)
        if among is not None:
            statement = statement.where(KnowledgeEntry.id.in_(list(among)))
        with Session(self.engine) as session:
            return [int(i) for i in session.scalars(statement)]

    def all_ids(self) -> np.ndarray:
        with Session(self.engine) as session:
            return np.fromiter(session.scalars(select(KnowledgeEntry.id)), dtype=np.int64)

    def last_change_id(self) -> int:
        with Session(self.engine) as session:
            return int(session.scalar(select(func.max(KnowledgeChange.id))) or 0)

    def changes(self, after: int) -> list[tuple[int, int]]:
        """(change id, entry id) of every change after change ``after``, oldest first."""
        with Session(self.engine) as session:
            rows = session.execute(
                select(KnowledgeChange.id, KnowledgeChange.entry_id)
                .where(KnowledgeChange.id > after)
                .order_by(KnowledgeChange.id)
            ).all()
        return [(int(change_id), int(entry_id)) for change_id, entry_id in rows]

    def embeddings(self, ids: Sequence[int], embedder: str) -> dict[int, np.ndarray]:
        """Stored vectors of ``ids`` made by ``embedder``; others are left out."""
        found: dict[int, np.ndarray] = {}
        with Session(self.engine) as session:
            for start in range(0, len(ids), 1000):
                rows = session.execute(
                    select(KnowledgeEntry.id, KnowledgeEntry.embedding).where(
                        KnowledgeEntry.id.in_(list(ids[start : start + 1000])),
                        KnowledgeEntry.embedder == embedder,
                    )
                )
                for entry_id, blob in rows:
                    found[int(entry_id)] = _from_blob(blob)
        return found

    def iter_embeddings(
        self, embedder: str, chunk: int = 10_000
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every (ids, vectors) stored by ``embedder``, ``chunk`` rows at a time."""
        last = 0
        while True:
            with Session(self.engine) as session:
                rows = session.execute(
                    select(KnowledgeEntry.id, KnowledgeEntry.embedding)
                    .where(KnowledgeEntry.embedder == embedder, KnowledgeEntry.id > last)
                    .order_by(KnowledgeEntry.id)
                    .limit(chunk)
                ).all()
            if not rows:
                return
            last = int(rows[-1][0])
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            yield ids, np.stack([_from_blob(r[1]) for r in rows])

    def stale(self, embedder: str, chunk: int) -> list[tuple[int, str, str]]:
        """Up to ``chunk`` entries (id, subject, body) whose vector is from another embedder."""
        with Session(self.engine) as session:
            rows = session.execute(
                select(KnowledgeEntry.id, KnowledgeEntry.subject, KnowledgeEntry.body)
                .where(KnowledgeEntry.embedder != embedder)
                .order_by(KnowledgeEntry.id)
                .limit(chunk)
            ).all()
        return [(int(i), s, b) for i, s, b in rows]

    def count_stale(self, embedder: str) -> int:
        with Session(self.engine) as session:
            statement = select(func.count(KnowledgeEntry.id)).where(
                KnowledgeEntry.embedder != embedder
            )
            return int(session.scalar(statement) or 0)

    def statistics(self) -> dict[str, object]:
        with Session(self.engine) as session:
            languages = session.execute(
                select(KnowledgeEntry.language, func.count()).group_by(KnowledgeEntry.language)
            ).all()
            queues = session.execute(
                select(KnowledgeEntry.queue, func.count()).group_by(KnowledgeEntry.queue)
            ).all()
        return {
            "entries": sum(n for _, n in languages),
            "languages": {str(k): int(n) for k, n in sorted(languages, key=lambda r: -r[1])},
            "queues": {str(k or ""): int(n) for k, n in sorted(queues, key=lambda r: -r[1])},
        }

    # Writes.

    def write(
        self,
        entries: Sequence[tuple[EntryInput, str, str]],
        existing: Mapping[str, EntryRow],
        vectors: Mapping[str, np.ndarray],
        embedder: str,
    ) -> tuple[dict[str, int], list[int]]:
        """Insert or update ``(entry, language, content_hash)`` rows in one transaction.

        ``vectors`` holds a new embedding per source id whose text changed; rows not in
        it keep theirs. Returns the entry id per source id and the change ids written.
        """
        now = utc_now()
        ids: dict[str, int] = {}
        changes: list[KnowledgeChange] = []
        with Session(self.engine) as session, session.begin():
            for entry, language, content_hash in entries:
                known = existing.get(entry.source_id)
                row = session.get(KnowledgeEntry, known.id) if known else KnowledgeEntry()
                assert row is not None
                row.source_id = entry.source_id
                row.source_system = entry.source_system
                row.subject = entry.subject
                row.body = entry.body
                row.resolution = entry.resolution
                row.labels = dict(entry.labels)
                row.queue = entry.labels.get("queue") or None
                row.language = language
                row.tags = list(entry.tags)
                row.content_hash = content_hash
                row.created_at = entry.created_at or (row.created_at if known else now)
                row.resolved_at = entry.resolved_at
                row.updated_at = now
                if entry.source_id in vectors:
                    row.embedder = embedder
                    row.embedding = _to_blob(vectors[entry.source_id])
                if known is None:
                    session.add(row)
                session.flush()
                ids[entry.source_id] = row.id
                changes.append(KnowledgeChange(entry_id=row.id, operation=UPSERT, changed_at=now))
            session.add_all(changes)
            session.flush()
            change_ids = [change.id for change in changes]
        return ids, change_ids

    def set_embeddings(self, vectors: Mapping[int, np.ndarray], embedder: str) -> None:
        """Replace the stored vectors of entries (after a change of embedder)."""
        now = utc_now()
        with Session(self.engine) as session, session.begin():
            for entry_id, vector in vectors.items():
                row = session.get(KnowledgeEntry, entry_id)
                if row is None:
                    continue
                row.embedder = embedder
                row.embedding = _to_blob(vector)
                session.add(KnowledgeChange(entry_id=entry_id, operation=UPSERT, changed_at=now))

    def delete(self, source_id: str) -> tuple[int, int] | None:
        """Remove an entry; its id and the change id, or None when there was none."""
        with Session(self.engine) as session, session.begin():
            entry_id = session.scalar(
                select(KnowledgeEntry.id).where(KnowledgeEntry.source_id == source_id)
            )
            if entry_id is None:
                return None
            session.execute(delete(KnowledgeEntry).where(KnowledgeEntry.id == entry_id))
            change = KnowledgeChange(entry_id=entry_id, operation=DELETE, changed_at=utc_now())
            session.add(change)
            session.flush()
            return int(entry_id), int(change.id)
