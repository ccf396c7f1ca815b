"""Every prediction the API answers is stored under an id, so that feedback can refer to it.

Writes are grouped: concurrent requests hand their rows to one writer task, which commits
everything waiting in one transaction and then lets all of them answer. A request is
answered only after its predictions are committed, at the cost of one commit per group
instead of one per request.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from service.errors import StorageUnavailableError
from service.inference.classifier import TicketPrediction
from service.storage.tables import Feedback, Prediction, utc_now

__all__ = [
    "PredictionLog",
    "PredictionRecord",
    "embedding_array",
    "embedding_bytes",
    "new_prediction_id",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictionRecord:
    id: str
    created_at: datetime
    model_name: str
    model_version: str
    labels: dict[str, str]
    probabilities: dict[str, float]
    language: str
    needs_review: bool
    subject: str | None
    body: str | None
    #: Head -> the runners-up ``(label, probability)``, best first (empty for old rows).
    alternatives: dict[str, list[tuple[str, float]]]


def new_prediction_id() -> str:
    return str(uuid.uuid4())


def _record(row: Prediction) -> PredictionRecord:
    return PredictionRecord(
        row.id,
        row.created_at,
        row.model_name,
        row.model_version,
        dict(row.labels),
        dict(row.probabilities),
        row.language,
        row.needs_review,
        row.subject,
        row.body,
        {
            head: [(str(label), float(probability)) for label, probability in runners_up]
            for head, runners_up in (row.alternatives or {}).items()
        },
    )


def embedding_bytes(prediction: TicketPrediction) -> bytes:
    """The embedding as float16 (half the size; cosine similarities move by under 1e-3)."""
    return np.asarray(prediction.embedding, dtype=np.float16).tobytes()


def embedding_array(stored: bytes) -> np.ndarray:
    return np.frombuffer(stored, dtype=np.float16).astype(np.float32)


class PredictionLog:
    def __init__(self, engine: Engine, store_text: bool) -> None:
        self.engine = engine
        #: False when texts must not be kept (redaction on): only labels are stored.
        self.store_text = store_text
        self._pending: list[tuple[list[Prediction], asyncio.Future[None]]] = []
        self._wake: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._writer = asyncio.create_task(self._write_groups(), name="prediction-log")

    async def stop(self) -> None:
        """Commit what is waiting, then stop the writer."""
        if self._writer is None:
            return
        while self._pending:
            await self._commit_waiting()
        self._writer.cancel()
        await asyncio.gather(self._writer, return_exceptions=True)

    async def record(
        self,
        ids: Sequence[str],
        predictions: Sequence[TicketPrediction],
        subjects: Sequence[str | None],
        bodies: Sequence[str],
    ) -> None:
        """Store predictions under ``ids``; returns once they are committed."""
        if self._wake is None:
            raise RuntimeError("the prediction log is not started")
        rows = [
            Prediction(
                id=prediction_id,
                created_at=utc_now(),
                model_name=p.model_name,
                model_version=p.model_version,
                labels={head: h.label for head, h in p.heads.items()},
                probabilities={head: round(h.probability, 6) for head, h in p.heads.items()},
                language=p.language,
                needs_review=p.needs_review,
                subject=(subject or "") if self.store_text else None,
                body=body if self.store_text else None,
                alternatives={
                    head: [[label, round(probability, 6)] for label, probability in h.alternatives]
                    for head, h in p.heads.items()
                },
                embedding=embedding_bytes(p) if self.store_text else None,
            )
            for prediction_id, p, subject, body in zip(
                ids, predictions, subjects, bodies, strict=True
            )
        ]
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((rows, done))
        self._wake.set()
        await done

    async def _write_groups(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._commit_waiting()

    async def _commit_waiting(self) -> None:
        group, self._pending = self._pending, []
        if not group:
            return
        try:
            await asyncio.to_thread(self._write, [row for rows, _ in group for row in rows])
        except SQLAlchemyError as exc:
            logger.error("could not store %d predictions: %s", len(group), exc)
            failure = StorageUnavailableError(
                "the prediction could not be stored, so it was not answered; retry shortly"
            )
            for _, done in group:
                if not done.done():
                    done.set_exception(failure)
            return
        for _, done in group:
            if not done.done():
                done.set_result(None)

    def _write(self, rows: list[Prediction]) -> None:
        with Session(self.engine) as session, session.begin():
            session.add_all(rows)

    def get(self, prediction_id: str) -> PredictionRecord | None:
        with Session(self.engine) as session:
            row = session.get(Prediction, prediction_id)
            return None if row is None else _record(row)

    def prune(self, before: datetime) -> int:
        """Delete predictions made before ``before`` that received no feedback (those with
        feedback are training data); returns how many."""
        has_feedback = select(Feedback.prediction_id)
        with Session(self.engine) as session, session.begin():
            result = session.execute(
                delete(Prediction).where(
                    Prediction.created_at < before, Prediction.id.not_in(has_feedback)
                )
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def recent(self, limit: int = 50, needs_review: bool | None = None) -> list[PredictionRecord]:
        """The newest predictions with their text, newest first."""
        query = select(Prediction).where(Prediction.body.is_not(None))
        if needs_review is not None:
            query = query.where(Prediction.needs_review == needs_review)
        query = query.order_by(Prediction.created_at.desc()).limit(limit)
        with Session(self.engine) as session:
            return [_record(row) for row in session.scalars(query)]

    def since(self, start: datetime, limit: int = 100_000) -> list[PredictionRecord]:
        query = (
            select(Prediction)
            .where(Prediction.created_at >= start)
            .order_by(Prediction.created_at)
            .limit(limit)
        )
        with Session(self.engine) as session:
            return [_record(row) for row in session.scalars(query)]
