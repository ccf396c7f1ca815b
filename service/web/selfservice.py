"""The self-service desk: past resolutions for what a person describes, tickets they file,
and how each visit ended (an answer that solved it, or a filed ticket), for the
deflection rate.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from service.knowledge.base import KnowledgeBase
from service.knowledge.records import Suggestion
from service.storage.tables import SelfServiceEvent, Ticket, utc_now
from service.text import detect_language

__all__ = ["SelfServiceDesk", "TicketRecord", "new_ticket_id", "suggest_in_language"]

#: How much closer than the best answer in another language an answer in the visitor's own
#: language may be and still come first (cosine similarity).
OWN_LANGUAGE_MARGIN = 0.05


@dataclass(frozen=True)
class TicketRecord:
    id: str
    created_at: datetime
    subject: str
    body: str
    requester: str | None
    language: str
    prediction_id: str
    assignment_id: int | None


def _record(row: Ticket) -> TicketRecord:
    return TicketRecord(
        row.id,
        row.created_at,
        row.subject,
        row.body,
        row.requester,
        row.language,
        row.prediction_id,
        row.assignment_id,
    )


def suggest_in_language(
    base: KnowledgeBase, subject: str, body: str, k: int
) -> tuple[str, list[Suggestion]]:
    """The visitor's language and the ``k`` best past resolutions, those in that language
    moved ahead of others that are at most ``OWN_LANGUAGE_MARGIN`` more similar."""
    language = detect_language(f"{subject}\n{body}")[0]
    found = base.suggest(base.embed_query(subject, body), max(k * 3, 10))
    found.sort(
        key=lambda s: -(s.score + (OWN_LANGUAGE_MARGIN if s.record.language == language else 0))
    )
    return language, found[:k]


def new_ticket_id() -> str:
    return str(uuid.uuid4())


class SelfServiceDesk:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record_solved(self, source_id: str, language: str | None) -> None:
        with Session(self.engine) as session, session.begin():
            session.add(
                SelfServiceEvent(
                    created_at=utc_now(), kind="solved", language=language, source_id=source_id
                )
            )

    def file_ticket(
        self,
        ticket_id: str,
        subject: str,
        body: str,
        requester: str | None,
        language: str,
        prediction_id: str,
        assignment_id: int | None,
    ) -> TicketRecord:
        """Store a filed ticket and count the visit as not deflected, in one transaction."""
        now = utc_now()
        row = Ticket(
            id=ticket_id,
            created_at=now,
            source="self-service",
            subject=subject,
            body=body,
            requester=requester,
            language=language,
            prediction_id=prediction_id,
            assignment_id=assignment_id,
        )
        with Session(self.engine) as session, session.begin():
            session.add(row)
            session.add(
                SelfServiceEvent(created_at=now, kind="filed", language=language, ticket_id=row.id)
            )
            session.flush()
            return _record(row)

    def ticket_for_prediction(self, prediction_id: str) -> TicketRecord | None:
        query = select(Ticket).where(Ticket.prediction_id == prediction_id)
        with Session(self.engine) as session:
            row = session.scalars(query).first()
            return None if row is None else _record(row)

    def recent_prediction_ids(self, limit: int = 200) -> set[str]:
        """Predictions of the latest filed tickets (to mark them in the agent's list)."""
        query = select(Ticket.prediction_id).order_by(Ticket.created_at.desc()).limit(limit)
        with Session(self.engine) as session:
            return set(session.scalars(query))
