"""Agents' feedback on predictions, and the training rows it yields.

Feedback names a prediction by its id and says which labels the agent chose (a label that
differs from the prediction is a correction), which suggested resolution was used, and
how the ticket was resolved. It is committed before the API answers. For training, each
stored prediction with feedback becomes a labelled ticket: the predicted labels, with the
agent's labels in their place where given (per head, the latest feedback that names one
wins).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from service.storage.tables import Feedback, Prediction, utc_now

__all__ = [
    "FeedbackInput",
    "FeedbackRecord",
    "FeedbackStore",
    "LabelledTicket",
    "merge_choices",
]


@dataclass(frozen=True)
class FeedbackInput:
    prediction_id: str
    labels: Mapping[str, str]
    suggestion_used: str | None = None
    resolution: str | None = None
    agent: str | None = None


@dataclass(frozen=True)
class FeedbackRecord:
    id: int
    prediction_id: str
    created_at: datetime
    agent: str | None
    labels: dict[str, str]
    suggestion_used: str | None
    resolution: str | None


@dataclass(frozen=True)
class LabelledTicket:
    """A ticket with the labels agents settled on, for training and shadow evaluation."""

    prediction_id: str
    subject: str
    body: str
    language: str
    labels: dict[str, str]
    corrected: frozenset[str]  # heads whose label the agent changed
    created_at: datetime


def merge_choices(chosen: dict[str, str], labels: Mapping[str, str]) -> None:
    """Add one feedback's labels to what agents chose so far: per head, the latest label
    wins, and feedback that names no label for a head (a suggestion marked as used) leaves
    the earlier choice."""
    chosen.update({head: label for head, label in labels.items() if label})


def _record(row: Feedback) -> FeedbackRecord:
    return FeedbackRecord(
        row.id,
        row.prediction_id,
        row.created_at,
        row.agent,
        dict(row.labels),
        row.suggestion_used,
        row.resolution,
    )


class FeedbackStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, feedback: FeedbackInput) -> FeedbackRecord:
        row = Feedback(
            prediction_id=feedback.prediction_id,
            created_at=utc_now(),
            agent=feedback.agent,
            labels=dict(feedback.labels),
            suggestion_used=feedback.suggestion_used,
            resolution=feedback.resolution,
        )
        with Session(self.engine) as session, session.begin():
            session.add(row)
            session.flush()
            return _record(row)

    def for_prediction(self, prediction_id: str) -> list[FeedbackRecord]:
        query = (
            select(Feedback).where(Feedback.prediction_id == prediction_id).order_by(Feedback.id)
        )
        with Session(self.engine) as session:
            return [_record(row) for row in session.scalars(query)]

    def labelled_tickets(self, limit: int | None = None) -> list[LabelledTicket]:
        """The newest ``limit`` tickets with feedback and stored text, oldest first."""
        query = (
            select(Feedback, Prediction)
            .join(Prediction, Prediction.id == Feedback.prediction_id)
            .where(Prediction.body.is_not(None))
            .order_by(Feedback.id)
        )
        latest: dict[str, tuple[Feedback, Prediction]] = {}
        chosen: dict[str, dict[str, str]] = {}
        with Session(self.engine) as session:
            for feedback, prediction in session.execute(query):
                latest.pop(prediction.id, None)  # re-insert: order follows the latest feedback
                latest[prediction.id] = (feedback, prediction)
                merge_choices(chosen.setdefault(prediction.id, {}), feedback.labels)
        tickets = []
        for feedback, prediction in latest.values():
            agents = chosen[prediction.id]
            corrected = frozenset(
                head for head, label in agents.items() if prediction.labels.get(head) != label
            )
            tickets.append(
                LabelledTicket(
                    prediction.id,
                    prediction.subject or "",
                    prediction.body or "",
                    prediction.language,
                    {**prediction.labels, **agents},
                    corrected,
                    feedback.created_at,
                )
            )
        return tickets[-limit:] if limit else tickets
