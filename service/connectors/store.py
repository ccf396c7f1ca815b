"""What connectors remember in the database: events taken (once per id) and tickets triaged
(their prediction, what was written back, the values last seen)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.storage.tables import ConnectorEvent, ConnectorTicket, utc_now

__all__ = ["ConnectorStore", "EventRecord", "TriagedTicket"]

#: The outcome of an event that is being processed now.
PROCESSING = "processing"


@dataclass(frozen=True)
class EventRecord:
    system: str
    event_id: str
    ticket_id: str | None
    outcome: str
    detail: str
    received_at: datetime


@dataclass(frozen=True)
class TriagedTicket:
    system: str
    ticket_id: str
    prediction_id: str
    written: dict[str, Any]
    seen: dict[str, str]
    dry_run: bool
    review: bool
    triaged_at: datetime
    closed_at: datetime | None


def _event(row: ConnectorEvent) -> EventRecord:
    return EventRecord(
        row.system, row.event_id, row.ticket_id, row.outcome, row.detail, row.received_at
    )


def _ticket(row: ConnectorTicket) -> TriagedTicket:
    return TriagedTicket(
        row.system,
        row.ticket_id,
        row.prediction_id,
        dict(row.written),
        dict(row.seen),
        row.dry_run,
        row.review,
        row.triaged_at,
        row.closed_at,
    )


class ConnectorStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def claim_event(self, system: str, event_id: str, ticket_id: str | None) -> bool:
        """Take an event for processing; False if it was taken before (by this process or
        another replica): the unique (system, event_id) decides."""
        row = ConnectorEvent(
            system=system,
            event_id=event_id,
            ticket_id=ticket_id,
            outcome=PROCESSING,
            detail="",
            received_at=utc_now(),
        )
        return self._insert_once(row)

    def finish_event(self, system: str, event_id: str, outcome: str, detail: str) -> None:
        with Session(self.engine) as session, session.begin():
            row = session.scalar(
                select(ConnectorEvent).where(
                    ConnectorEvent.system == system, ConnectorEvent.event_id == event_id
                )
            )
            if row is not None:
                row.outcome, row.detail = outcome, detail

    def release_event(self, system: str, event_id: str) -> None:
        """Forget a claim whose processing failed, so that the system's retry is taken."""
        with Session(self.engine) as session, session.begin():
            session.execute(
                delete(ConnectorEvent).where(
                    ConnectorEvent.system == system, ConnectorEvent.event_id == event_id
                )
            )

    def event(self, system: str, event_id: str) -> EventRecord | None:
        with Session(self.engine) as session:
            row = session.scalar(
                select(ConnectorEvent).where(
                    ConnectorEvent.system == system, ConnectorEvent.event_id == event_id
                )
            )
            return None if row is None else _event(row)

    def events(self, system: str, limit: int = 100) -> list[EventRecord]:
        """The latest events of ``system``, newest first."""
        query = (
            select(ConnectorEvent)
            .where(ConnectorEvent.system == system)
            .order_by(ConnectorEvent.id.desc())
            .limit(limit)
        )
        with Session(self.engine) as session:
            return [_event(row) for row in session.scalars(query)]

    def outcomes(self, system: str) -> dict[str, int]:
        with Session(self.engine) as session:
            rows = session.scalars(
                select(ConnectorEvent.outcome).where(ConnectorEvent.system == system)
            )
            return dict(Counter(rows))

    def ticket(self, system: str, ticket_id: str) -> TriagedTicket | None:
        with Session(self.engine) as session:
            row = self._ticket_row(session, system, ticket_id)
            return None if row is None else _ticket(row)

    def claim_ticket(
        self,
        system: str,
        ticket_id: str,
        prediction_id: str,
        written: Mapping[str, Any],
        seen: Mapping[str, str],
        *,
        dry_run: bool,
        review: bool,
    ) -> bool:
        """Remember a ticket as triaged, before its write-back; False if it already is."""
        row = ConnectorTicket(
            system=system,
            ticket_id=ticket_id,
            prediction_id=prediction_id,
            written=dict(written),
            seen=dict(seen),
            dry_run=dry_run,
            review=review,
            triaged_at=utc_now(),
        )
        return self._insert_once(row)

    def _insert_once(self, row: ConnectorEvent | ConnectorTicket) -> bool:
        """Insert ``row``; False when its unique key is already taken (by another delivery
        or another replica)."""
        try:
            with Session(self.engine) as session, session.begin():
                session.add(row)
        except IntegrityError:
            return False
        return True

    def forget_ticket(self, system: str, ticket_id: str) -> None:
        """Undo a claim whose write-back failed, so that a retry triages the ticket again."""
        with Session(self.engine) as session, session.begin():
            session.execute(
                delete(ConnectorTicket).where(
                    ConnectorTicket.system == system, ConnectorTicket.ticket_id == ticket_id
                )
            )

    def add_written(self, system: str, ticket_id: str, written: Mapping[str, Any]) -> None:
        """Add what the write-back answered (ids of notes) to what was written."""
        with Session(self.engine) as session, session.begin():
            row = self._ticket_row(session, system, ticket_id)
            if row is not None:
                row.written = {**row.written, **written}

    @staticmethod
    def _ticket_row(session: Session, system: str, ticket_id: str) -> ConnectorTicket | None:
        return session.scalar(
            select(ConnectorTicket).where(
                ConnectorTicket.system == system, ConnectorTicket.ticket_id == ticket_id
            )
        )

    def update_seen(
        self, system: str, ticket_id: str, seen: Mapping[str, str], closed: bool
    ) -> None:
        with Session(self.engine) as session, session.begin():
            row = self._ticket_row(session, system, ticket_id)
            if row is None:
                return
            row.seen = {**row.seen, **seen}
            if closed and row.closed_at is None:
                row.closed_at = utc_now()
