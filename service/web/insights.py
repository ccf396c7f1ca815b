"""The figures of the dashboard and the reports, read from the stored predictions, feedback,
self-service visits and the routing directory.

Everything is counted per UTC day over a period. Accuracy comes from agents' feedback: a
head's prediction counts as right when the label the agent kept is the predicted one (per
head, the latest feedback on the prediction that names a label wins). Recurring issues
are groups of recent tickets whose embeddings lie close together, each named by the words
that set it apart from the others.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from time import monotonic as time_now
from typing import Any

import numpy as np
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from service.learning.feedback import merge_choices
from service.learning.predictions import embedding_array
from service.settings import WebSettings
from service.storage.tables import Agent, Feedback, Prediction, SelfServiceEvent

__all__ = [
    "AccuracyFigures",
    "Insights",
    "Period",
    "RecurringIssue",
    "Summary",
    "TeamLoad",
]

HEADS = ("queue", "priority", "type")


@dataclass(frozen=True)
class Period:
    """Whole UTC days from ``first`` to ``last``, both included."""

    first: date
    last: date

    @classmethod
    def last_days(cls, days: int, today: date | None = None) -> Period:
        today = today or datetime.now(UTC).date()
        return cls(today - timedelta(days=days - 1), today)

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time.min, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time.min, tzinfo=UTC)

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]


@dataclass
class AccuracyFigures:
    """Share of predictions agents kept, per head; and per head by language and by day."""

    checked: dict[str, int] = field(default_factory=dict)
    right: dict[str, int] = field(default_factory=dict)
    by_language: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)
    by_day: dict[str, dict[date, tuple[int, int]]] = field(default_factory=dict)

    def accuracy(self, head: str) -> float | None:
        checked = self.checked.get(head, 0)
        return self.right.get(head, 0) / checked if checked else None


@dataclass(frozen=True)
class TeamLoad:
    team: str
    agents: int
    available: int
    load: int
    capacity: int


@dataclass(frozen=True)
class RecurringIssue:
    """Recent tickets about the same thing."""

    name: str
    words: list[str]
    tickets: int
    last_day: int
    #: Tickets per day before the last day.
    daily_before: float
    emerging: bool
    queue: str
    example: str
    prediction_ids: list[str]


@dataclass
class Summary:
    """Everything the dashboard and the reports show for one period."""

    period: Period
    tickets: int
    volume_by_day: dict[date, int]
    by_queue: dict[str, dict[date, int]]
    by_priority: dict[str, dict[date, int]]
    by_language: dict[str, dict[date, int]]
    needs_review: int
    needs_review_by_day: dict[date, int]
    feedback: int
    corrections: int
    accuracy: AccuracyFigures
    solved: int
    filed: int
    teams: list[TeamLoad]

    @property
    def low_confidence_share(self) -> float | None:
        return self.needs_review / self.tickets if self.tickets else None

    @property
    def deflection_rate(self) -> float | None:
        visits = self.solved + self.filed
        return self.solved / visits if visits else None


def _by_day(stamps: Iterable[tuple[str, date]]) -> dict[str, dict[date, int]]:
    counts: dict[str, dict[date, int]] = defaultdict(lambda: defaultdict(int))
    for key, day in stamps:
        counts[key][day] += 1
    return {key: dict(days) for key, days in sorted(counts.items())}


class Insights:
    def __init__(self, engine: Engine, settings: WebSettings) -> None:
        self.engine = engine
        self.settings = settings
        self._issues: tuple[float, list[RecurringIssue]] | None = None

    def cached_recurring_issues(self) -> list[RecurringIssue]:
        """``recurring_issues()``, found again at most every ``cluster_cache_s`` seconds (the
        clustering takes about a second per 3,000 tickets; leads reload dashboards)."""
        cached = self._issues
        if cached is not None and time_now() - cached[0] < self.settings.cluster_cache_s:
            return cached[1]
        issues = self.recurring_issues()
        self._issues = (time_now(), issues)
        return issues

    def summary(self, period: Period) -> Summary:
        with Session(self.engine) as session:
            predictions = session.execute(
                select(
                    Prediction.created_at,
                    Prediction.labels,
                    Prediction.language,
                    Prediction.needs_review,
                ).where(Prediction.created_at >= period.start, Prediction.created_at < period.end)
            ).all()
            visits = session.execute(
                select(SelfServiceEvent.kind).where(
                    SelfServiceEvent.created_at >= period.start,
                    SelfServiceEvent.created_at < period.end,
                )
            ).all()
        days = [row.created_at.date() for row in predictions]
        volume = Counter(days)
        review = Counter(
            day for day, row in zip(days, predictions, strict=True) if row.needs_review
        )
        kinds = Counter(row.kind for row in visits)
        feedback, corrections, accuracy = self.accuracy(period)
        return Summary(
            period=period,
            tickets=len(predictions),
            volume_by_day={day: volume.get(day, 0) for day in period.days},
            by_queue=_by_day(
                (row.labels.get("queue", "?"), day)
                for row, day in zip(predictions, days, strict=True)
            ),
            by_priority=_by_day(
                (row.labels.get("priority", "?"), day)
                for row, day in zip(predictions, days, strict=True)
            ),
            by_language=_by_day(
                (row.language, day) for row, day in zip(predictions, days, strict=True)
            ),
            needs_review=sum(review.values()),
            needs_review_by_day={day: review.get(day, 0) for day in period.days},
            feedback=feedback,
            corrections=corrections,
            accuracy=accuracy,
            solved=kinds.get("solved", 0),
            filed=kinds.get("filed", 0),
            teams=self.team_load(),
        )

    def accuracy(self, period: Period) -> tuple[int, int, AccuracyFigures]:
        """Feedback received in the period, how many tickets it corrected, and accuracy."""
        query = (
            select(Feedback.prediction_id, Feedback.labels, Feedback.created_at, Prediction)
            .join(Prediction, Prediction.id == Feedback.prediction_id)
            .where(Feedback.created_at >= period.start, Feedback.created_at < period.end)
            .order_by(Feedback.id)
        )
        with Session(self.engine) as session:
            rows = session.execute(query).all()
        chosen: dict[str, dict[str, str]] = {}
        latest: dict[str, Any] = {}
        for row in rows:
            merge_choices(chosen.setdefault(row.prediction_id, {}), row.labels)
            latest[row.prediction_id] = row
        figures = AccuracyFigures()
        corrections = 0
        for prediction_id, row in latest.items():
            prediction: Prediction = row.Prediction
            corrected = False
            for head, label in chosen[prediction_id].items():
                predicted = prediction.labels.get(head)
                if predicted is None:
                    continue
                right = int(label == predicted)
                corrected = corrected or not right
                figures.checked[head] = figures.checked.get(head, 0) + 1
                figures.right[head] = figures.right.get(head, 0) + right
                language = figures.by_language.setdefault(head, {})
                seen, kept = language.get(prediction.language, (0, 0))
                language[prediction.language] = (seen + 1, kept + right)
                # Counted on the day of the latest feedback on the ticket.
                day = row.created_at.date()
                per_day = figures.by_day.setdefault(head, {})
                seen, kept = per_day.get(day, (0, 0))
                per_day[day] = (seen + 1, kept + right)
            corrections += corrected
        return len(rows), corrections, figures

    def team_load(self) -> list[TeamLoad]:
        with Session(self.engine) as session:
            agents = session.scalars(select(Agent)).all()
        teams: dict[str, list[Agent]] = defaultdict(list)
        for agent in agents:
            teams[agent.team or "(no team)"].append(agent)
        return [
            TeamLoad(
                team,
                len(members),
                sum(a.available for a in members),
                sum(a.load for a in members),
                sum(a.capacity for a in members if a.available),
            )
            for team, members in sorted(teams.items())
        ]

    def recurring_issues(self, now: datetime | None = None) -> list[RecurringIssue]:
        """Recent tickets grouped by meaning, largest first; emerging ones flagged."""
        from sklearn.cluster import AgglomerativeClustering

        now = now or datetime.now(UTC)
        window_start = now - timedelta(days=self.settings.cluster_days)
        query = (
            select(Prediction)
            .where(Prediction.created_at >= window_start, Prediction.embedding.is_not(None))
            .order_by(Prediction.created_at.desc())
            .limit(self.settings.cluster_max_tickets)
        )
        with Session(self.engine) as session:
            rows = list(session.scalars(query))
        minimum = self.settings.cluster_min_tickets
        if len(rows) < minimum:
            return []

        vectors = np.stack([embedding_array(row.embedding or b"") for row in rows])
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-12
        # Any two tickets' embeddings share a large common part (with multilingual-e5 their
        # cosine similarity is about 0.85 whatever they say): distances are measured after
        # taking away the window's mean, where what sets tickets apart remains.
        vectors -= vectors.mean(axis=0)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-12
        labels = AgglomerativeClustering(
            n_clusters=None,
            metric="cosine",
            linkage="average",
            distance_threshold=self.settings.cluster_distance,
        ).fit_predict(vectors)

        groups: dict[int, list[int]] = defaultdict(list)
        for position, label in enumerate(labels):
            groups[int(label)].append(position)
        kept_positions = sorted(
            (members for members in groups.values() if len(members) >= minimum),
            key=len,
            reverse=True,
        )
        kept = [[rows[i] for i in members] for members in kept_positions]
        # The example shown is the ticket nearest the middle of its issue.
        examples = [
            rows[members[int(np.argmax(vectors[members] @ vectors[members].mean(axis=0)))]]
            for members in kept_positions
        ]
        words = telling_words(
            [[_text(m) for m in members] for members in kept], [_text(row) for row in rows]
        )
        last_day_start = now - timedelta(days=1)
        # Growth needs a past to compare with: on a window that holds only the last day
        # (a new installation, an import), nothing is emerging.
        has_history = any(row.created_at < last_day_start for row in rows)
        days_before = max(self.settings.cluster_days - 1, 1)
        issues = []
        for members, named, example in zip(kept, words, examples, strict=True):
            last_day = sum(m.created_at >= last_day_start for m in members)
            # A group with nothing before counts as one ticket over the window before, so
            # that a new group of ``minimum`` tickets in a day stands out.
            daily_before = max(len(members) - last_day, 1) / days_before
            queues = Counter(m.labels.get("queue", "?") for m in members)
            issues.append(
                RecurringIssue(
                    name=" · ".join(named[:3]) or queues.most_common(1)[0][0],
                    words=named,
                    tickets=len(members),
                    last_day=last_day,
                    daily_before=round(daily_before, 3),
                    emerging=has_history
                    and last_day >= minimum
                    and last_day >= self.settings.emerging_growth * daily_before,
                    queue=queues.most_common(1)[0][0],
                    example=(example.subject or example.body or "")[:160],
                    prediction_ids=[m.id for m in members],
                )
            )
        return issues


def telling_words(groups: list[list[str]], corpus: list[str], count: int = 5) -> list[list[str]]:
    """For each group of texts, the words that most of its texts use and few texts of the
    ``corpus`` do: the share of the group's texts with the word, times the word's inverse
    document frequency over the corpus. Words in most tickets (the, und, please) score near
    zero in any language, without a list of stop words."""
    from sklearn.feature_extraction.text import CountVectorizer

    if not groups:
        return []
    vectorizer = CountVectorizer(lowercase=True, binary=True, token_pattern=r"(?u)\b[^\W\d_]{3,}\b")
    try:
        in_corpus = vectorizer.fit_transform(corpus)
    except ValueError:  # not one word of three letters anywhere
        return [[] for _ in groups]
    vocabulary = vectorizer.get_feature_names_out()
    frequency = np.asarray(in_corpus.sum(axis=0)).ravel()
    rarity = np.log(len(corpus) / np.maximum(frequency, 1))
    named = []
    for texts in groups:
        share = np.asarray(vectorizer.transform(texts).mean(axis=0)).ravel()
        scores = share * rarity
        best = np.argsort(-scores)[:count]
        named.append([str(vocabulary[i]) for i in best if scores[i] > 0])
    return named


def _text(prediction: Prediction) -> str:
    return f"{prediction.subject or ''} {prediction.body or ''}"


def rate(value: float | None) -> str:
    """A share as a percentage for people, or a dash when there is nothing to divide."""
    return "–" if value is None or math.isnan(value) else f"{100 * value:.1f} %"
