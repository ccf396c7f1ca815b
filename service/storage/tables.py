"""The tables, as SQLAlchemy models. ``migrations/`` creates and changes them in step."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "Agent",
    "ApiKey",
    "Assignment",
    "Base",
    "ConnectorEvent",
    "ConnectorTicket",
    "Feedback",
    "KnowledgeChange",
    "KnowledgeEntry",
    "ModelVersion",
    "Prediction",
    "SelfServiceEvent",
    "ShadowEvaluation",
    "Team",
    "Ticket",
    "UTCDateTime",
    "WebhookDelivery",
    "utc_now",
]

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


class Team(Base):
    """A group of agents, and the queues it takes."""

    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(Identifier, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    #: Queue labels (of the model's ``queue`` head) that this team handles.
    queues: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class Agent(Base):
    """Someone who resolves tickets: skills per queue, languages, capacity and current load."""

    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(Identifier, primary_key=True, autoincrement=True)
    #: The agent's login or id in the ticket system; routes answer with it.
    name: Mapped[str] = mapped_column(String(255), unique=True)
    team: Mapped[str | None] = mapped_column(String(255), index=True)
    #: Queue label -> level, 1 (can handle) to 5 (expert).
    skills: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    #: ISO 639-1 codes the agent answers in.
    languages: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: Tickets the agent can hold open at once.
    capacity: Mapped[int] = mapped_column(Integer, default=5)
    available: Mapped[bool] = mapped_column(Boolean, default=True)
    #: Open assignments; kept by assigning and closing through the service.
    load: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class Assignment(Base):
    """A ticket given to an agent, open until it is closed."""

    __tablename__ = "assignments"

    id: Mapped[int] = mapped_column(Identifier, primary_key=True, autoincrement=True)
    agent: Mapped[str] = mapped_column(String(255), index=True)
    #: The ticket's id in its system, if known.
    ticket_id: Mapped[str | None] = mapped_column(String(255), index=True)
    prediction_id: Mapped[str | None] = mapped_column(String(36), index=True)
    queue: Mapped[str | None] = mapped_column(String(255))
    priority: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str | None] = mapped_column(String(8))
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Prediction(Base):
    """Every classification the API answered, so that feedback can refer to it."""

    __tablename__ = "predictions"

    #: A UUID, returned to the caller as ``prediction_id``.
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now, index=True)
    model_name: Mapped[str] = mapped_column(String(255))
    model_version: Mapped[str] = mapped_column(String(64))
    #: Head -> predicted label, and head -> its calibrated probability.
    labels: Mapped[dict[str, str]] = mapped_column(JSON)
    probabilities: Mapped[dict[str, float]] = mapped_column(JSON)
    language: Mapped[str] = mapped_column(String(8))
    needs_review: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The ticket's text; empty when texts are not stored (``TRIAGE_PRIVACY_*``).
    subject: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    #: Head -> the runners-up as ``[[label, probability], ...]``, for the agent view.
    alternatives: Mapped[dict[str, list[list[Any]]] | None] = mapped_column(JSON)
    #: The ticket's embedding as float16 bytes, for finding recurring issues.
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)


class Ticket(Base):
    """A ticket filed through the self-service page, with its prediction and routing."""

    __tablename__ = "tickets"

    #: A UUID, shown to the person who filed it.
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now, index=True)
    source: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    #: How to reach the person who filed it (as they gave it), if they did.
    requester: Mapped[str | None] = mapped_column(String(255))
    language: Mapped[str] = mapped_column(String(8))
    prediction_id: Mapped[str] = mapped_column(String(36), index=True)
    #: The agent it was assigned to, if routing found one with a free slot.
    assignment_id: Mapped[int | None] = mapped_column(Identifier)


class SelfServiceEvent(Base):
    """What a self-service visit ended with: an answer that solved it, or a filed ticket."""

    __tablename__ = "self_service_events"

    id: Mapped[int] = mapped_column(Identifier, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now, index=True)
    #: ``solved`` (a suggested resolution helped, no ticket) or ``filed``.
    kind: Mapped[str] = mapped_column(String(16))
    language: Mapped[str | None] = mapped_column(String(8))
    #: The knowledge entry that helped (``solved``) or the ticket filed (``filed``).
    source_id: Mapped[str | None] = mapped_column(String(255))
    ticket_id: Mapped[str | None] = mapped_column(String(36))


class Feedback(Base):
    """What an agent did with a prediction: the labels chosen, the suggestion used, the fix."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Identifier, primary_key=True, autoincrement=True)
    prediction_id: Mapped[str] = mapped_column(String(36), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now, index=True)
    agent: Mapped[str | None] = mapped_column(String(255))
    #: Head -> the label the agent chose (where it differs, a correction).
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    #: ``source_id`` of the suggested resolution the agent used, if any.
    suggestion_used: Mapped[str | None] = mapped_column(String(255))
    resolution: Mapped[str | None] = mapped_column(Text)


class ModelVersion(Base):
    """A bundle in the model registry; exactly one is active once any is promoted."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(Identifier, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(String(64), unique=True)
    directory: Mapped[str] = mapped_column(Text)
    #: Test metrics from the bundle's metrics.json, and its provenance from config.json.
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    #: When it was last made active (rollback picks the previously active one by this).
    promoted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ShadowEvaluation(Base):
    """A candidate and the active model compared on the latest feedback before promotion."""

    __tablename__ = "shadow_evaluations"

    id: Mapped[int] = mapped_column(Identifier, primary_key=True, autoincrement=True)
    candidate_version: Mapped[str] = mapped_column(String(64), index=True)
    active_version: Mapped[str | None] = mapped_column(String(64))
    feedback_count: Mapped[int] = mapped_column(Integer)
    #: Per model and head: accuracy and macro-F1 on the feedback's labels.
    results: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class ConnectorEvent(Base):
    """An event a connector took (a webhook delivery or a polled ticket), once per event id:
    a repeated delivery of the same id is answered from here and not processed again."""

    __tablename__ = "connector_events"
    __table_args__ = (UniqueConstraint("system", "event_id", name="uq_connector_events_event"),)

    id: Mapped[int] = mapped_column(Identifier, primary_key=True, autoincrement=True)
    #: ``zammad``, ``otobo``, ``jira`` or ``webhook``.
    system: Mapped[str] = mapped_column(String(32))
    #: The system's delivery id, or one derived from the ticket and its change.
    event_id: Mapped[str] = mapped_column(String(255))
    ticket_id: Mapped[str | None] = mapped_column(String(255), index=True)
    #: What came of it: ``triaged``, ``review``, ``feedback``, ``echo``, ``ignored``...
    outcome: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now, index=True)


class ConnectorTicket(Base):
    """A ticket a connector triaged: its prediction, what was written back, and the values
    last seen in the system. An event that shows only the values written here is the echo
    of the connector's own write; a different value is an agent's correction."""

    __tablename__ = "connector_tickets"
    __table_args__ = (UniqueConstraint("system", "ticket_id", name="uq_connector_tickets_ticket"),)

    id: Mapped[int] = mapped_column(Identifier, primary_key=True, autoincrement=True)
    system: Mapped[str] = mapped_column(String(32))
    ticket_id: Mapped[str] = mapped_column(String(255))
    prediction_id: Mapped[str] = mapped_column(String(36), index=True)
    #: Field -> value as written (system names: group, priority, assignee, tags, note).
    written: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: Head -> the system's value when last seen (after the write, or at triage in dry run).
    seen: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    #: True when nothing was written (dry run): the values seen are the system's own.
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    #: True when the confidence was too low and the ticket went to review.
    review: Mapped[bool] = mapped_column(Boolean, default=False)
    triaged_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    #: When the ticket was seen closed (its resolution then went to the knowledge base).
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookDelivery(Base):
    """An outbound webhook post. Stored before the first attempt and kept after the last:
    ``pending`` until delivered, ``dead`` after the last failed attempt (replayable)."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Identifier, primary_key=True, autoincrement=True)
    #: Event type sent as ``X-Triage-Event``, e.g. ``ticket.triaged``.
    event: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(Text)
    #: The JSON body, exactly as signed and sent.
    payload: Mapped[str] = mapped_column(Text)
    #: ``pending``, ``delivered`` or ``dead``.
    status: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
