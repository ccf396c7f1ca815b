"""The tables, as SQLAlchemy models. ``migrations/`` creates and changes them in step."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer, LargeBinary, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = ["ApiKey", "Base", "KnowledgeChange", "KnowledgeEntry", "UTCDateTime", "utc_now"]

# Integer ids that are 64-bit on PostgreSQL and SQLite's ROWID alias on SQLite.
Identifier = BigInteger().with_variant(Integer, "sqlite")


def utc_now() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored in UTC and always read back timezone-aware (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_name)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class KnowledgeEntry(Base):
    """A resolved ticket that suggestions can point to. ``id`` is also its vector-index key."""

    __tablename__ = "knowledge_entries"
    # Never reuse the id of a deleted row: ids are keys of the vector index too.
    __table_args__ = {"sqlite_autoincrement": True}  # noqa: RUF012

    id: Mapped[int] = mapped_column(Identifier, primary_key=True, autoincrement=True)
    #: The ticket's id in the system it came from; imports are idempotent on it.
    source_id: Mapped[str] = mapped_column(String(255), unique=True)
    #: Which system that is (``zammad``, ``jira``, a file name...), if known.
    source_system: Mapped[str | None] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text)
    resolution: Mapped[str] = mapped_column(Text)
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    #: ``labels["queue"]`` again, as a column so that suggestions can be filtered on it.
    queue: Mapped[str | None] = mapped_column(String(255), index=True)
    language: Mapped[str] = mapped_column(String(8), index=True)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: SHA-256 of every stored field: a re-import of an unchanged ticket writes nothing.
    content_hash: Mapped[str] = mapped_column(String(64))
    #: Which embedding model produced ``embedding`` (see ``service.knowledge.embedders``).
    embedder: Mapped[str] = mapped_column(String(255))
    #: float32 little-endian vector, L2-normalised.
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    #: When the ticket was opened in its system (the import time when not given).
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When this row last changed here.
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class KnowledgeChange(Base):
    """The log of writes to ``knowledge_entries``, in commit order of one writer.

    The vector index remembers the last change it holds; on start it replays the
    changes after that one, so an index saved before a crash catches up with the
    database instead of being rebuilt.
    """

    __tablename__ = "knowledge_changes"
    __table_args__ = {"sqlite_autoincrement": True}  # noqa: RUF012

    id: Mapped[int] = mapped_column(Identifier, primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(Identifier, index=True)
    #: ``upsert`` or ``delete``.
    operation: Mapped[str] = mapped_column(String(8))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class ApiKey(Base):
    """A key for the HTTP API. Only the SHA-256 of the key is stored; ``prefix`` finds it."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Identifier, primary_key=True, autoincrement=True)
    #: Who or what holds the key ("zammad-connector", "alice"); shown in lists and logs.
    name: Mapped[str] = mapped_column(String(255))
    #: The key's public part (``tt_<prefix>_...``), unique; safe to show and log.
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    #: Hex SHA-256 of the whole key.
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    #: When the key was revoked; a revoked key is refused.
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
