"""Triage through the service's own parts: classification, suggestions from the knowledge
base, routing, and feedback with knowledge entries; and the internal note that shows it."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from service.connectors.mapping import ConnectorMapping
from service.connectors.tickets import NOTE_MARKER, TicketSnapshot, WriteBack
from service.errors import InputError
from service.inference.classifier import Ticket, TicketClassifier, TicketPrediction
from service.knowledge import EntryInput, Suggestion
from service.knowledge.service import KnowledgeService
from service.learning.feedback import FeedbackInput, FeedbackStore
from service.learning.predictions import PredictionLog, new_prediction_id
from service.routing import RoutingService
from service.routing.service import RoutingDecision
from service.settings import Settings

__all__ = ["TriageEngine", "TriageResult", "render_note"]


@dataclass(frozen=True)
class TriageResult:
    prediction_id: str
    prediction: TicketPrediction
    suggestions: list[Suggestion]
    routing: RoutingDecision | None


class TriageEngine:
    """Classification, suggestions, routing and feedback through the service's own parts."""

    def __init__(
        self,
        settings: Settings,
        classifier: TicketClassifier,
        predictions: PredictionLog,
        knowledge: KnowledgeService,
        routing: RoutingService,
        feedback: FeedbackStore,
    ) -> None:
        self.settings = settings
        self.classifier = classifier
        self.predictions = predictions
        self.knowledge = knowledge
        self.routing = routing
        self.feedback = feedback

    async def classify(self, ticket: TicketSnapshot) -> tuple[str, TicketPrediction]:
        if not ticket.body.strip() and not ticket.subject.strip():
            raise InputError(f"ticket {ticket.ticket_id}: expected a subject or body, found none")
        # NUL cannot be stored in PostgreSQL text, and no ticket needs it.
        text_limit = self.settings.max_text_chars
        subject = ticket.subject.replace("\x00", "")[:text_limit]
        body = ticket.body.replace("\x00", "")[:text_limit]
        predictions = await self.classifier.classify(
            [Ticket(body or subject, subject or None, ticket.language)]
        )
        prediction_id = new_prediction_id()
        await self.predictions.record([prediction_id], predictions, [subject], [body or subject])
        return prediction_id, predictions[0]

    async def suggest(self, ticket: TicketSnapshot) -> list[Suggestion]:
        """Similar resolved tickets; none while the knowledge base is not ready."""
        base = self.knowledge.base
        if base is None:
            return []
        k = self.settings.knowledge.default_k

        def run() -> list[Suggestion]:
            return base.suggest(base.embed_query(ticket.subject, ticket.body), k)

        return await asyncio.to_thread(run)

    async def route(
        self, prediction: TicketPrediction, prediction_id: str, ticket_ref: str, assign: bool
    ) -> RoutingDecision:
        return await asyncio.to_thread(
            lambda: self.routing.route(
                prediction, assign=assign, ticket_id=ticket_ref, prediction_id=prediction_id
            )
        )

    async def record_feedback(
        self,
        prediction_id: str,
        labels: Mapping[str, str],
        *,
        resolution: str | None,
        agent: str | None,
        source_id: str,
        source_system: str,
    ) -> str:
        """Store feedback; with a resolution the ticket joins the knowledge base. Returns what
        happened to the knowledge entry, in words."""
        prediction = await asyncio.to_thread(self.predictions.get, prediction_id)
        if prediction is None:
            return "no feedback: the prediction is no longer stored (retention)"
        kept = {head: label for head, label in labels.items() if head in prediction.labels}
        await asyncio.to_thread(
            self.feedback.add,
            FeedbackInput(prediction_id, kept, resolution=resolution, agent=agent),
        )
        if not (resolution and resolution.strip()):
            return "no resolution given"
        if prediction.body is None:
            return "not stored: ticket texts are not kept (TRIAGE_PRIVACY_REDACT_KNOWLEDGE)"
        base = self.knowledge.base
        if base is None:
            return "not stored: the knowledge base is not ready"
        entry = EntryInput(
            source_id=source_id,
            body=prediction.body,
            subject=prediction.subject or "",
            resolution=resolution,
            labels={**prediction.labels, **kept},
            language=prediction.language,
            source_system=source_system,
        )
        results = await asyncio.to_thread(base.add, [entry])
        return f"knowledge entry {source_id} {results[0].status}"


def _percent(probability: float) -> str:
    return f"{probability:.0%}"


def render_note(
    result: TriageResult,
    mapping: ConnectorMapping,
    change: WriteBack,
    unsure: Mapping[str, float],
) -> str:
    """The internal note: predictions with confidences, routing, suggestions, what changed."""
    prediction = result.prediction
    lines = [
        f"{NOTE_MARKER} model {prediction.model_name} {prediction.model_version}, "
        f"prediction {result.prediction_id}"
    ]
    for head, predicted in prediction.heads.items():
        alternatives = ", ".join(f"{label} {_percent(p)}" for label, p in predicted.alternatives)
        shown = predicted.label
        if head in mapping.labels:
            shown += f" (here: {mapping.to_system(head, predicted.label)})"
        lines.append(
            f"{head.capitalize()}: {shown} {_percent(predicted.probability)}"
            + (f"; then {alternatives}" if alternatives else "")
        )
    if result.routing and result.routing.agents:
        ranked = ", ".join(f"{c.agent} ({c.score:.2f})" for c in result.routing.agents)
        lines.append(f"Routing ({result.routing.policy}): {ranked}")
    if result.suggestions:
        lines.append("Similar resolved tickets:")
        for suggestion in result.suggestions:
            record = suggestion.record
            resolution = " ".join(record.resolution.split())[:200]
            lines.append(f"- {record.source_id} ({suggestion.score:.2f}): {resolution}")
    if unsure:
        details = ", ".join(
            f"{head} {_percent(prediction.heads[head].probability)} < {_percent(threshold)}"
            for head, threshold in unsure.items()
        )
        target = change.values.get("queue") or change.tag or "review"
        lines.append(f"Not changed, confidence too low ({details}): sent to {target}.")
    return "\n".join(lines)
