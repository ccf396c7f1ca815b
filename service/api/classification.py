"""Classifying tickets for the API and the web pages: text checks, one model call, stored
predictions, and the suggestions and routing a request asks for."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from litestar.datastructures import State

from service.api.checks import check_ticket_text
from service.api.knowledge import suggest_for_predictions
from service.api.routing import routing_result
from service.api.schemas import Alternative, Classification, HeadResult, TicketRequest
from service.errors import ModelNotReadyError
from service.inference.classifier import Ticket, TicketClassifier, TicketPrediction
from service.learning.predictions import new_prediction_id
from service.settings import Settings

__all__ = ["STANDARD_HEADS", "classifier_of", "classify_requests", "shape_prediction"]

STANDARD_HEADS = ("queue", "priority", "type")


def classifier_of(state: State) -> TicketClassifier:
    classifier: TicketClassifier = state.classifier
    if not classifier.ready:
        raise ModelNotReadyError("the model is still loading; retry in a few seconds")
    return classifier


def tickets_of(requests: Sequence[TicketRequest], settings: Settings) -> list[Ticket]:
    tickets = []
    for index, request in enumerate(requests):
        where = f"tickets[{index}]" if len(requests) > 1 else "ticket"
        check_ticket_text(where, request.subject, request.body, settings.max_text_chars)
        tickets.append(Ticket(request.body, request.subject, request.language))
    return tickets


def shape_prediction(prediction: TicketPrediction, prediction_id: str) -> Classification:
    heads = {
        head: HeadResult(
            label=p.label,
            probability=round(p.probability, 6),
            alternatives=[Alternative(label, round(prob, 6)) for label, prob in p.alternatives],
        )
        for head, p in prediction.heads.items()
    }
    return Classification(
        language=prediction.language,
        language_detected=prediction.language_detected,
        needs_review=prediction.needs_review,
        review_heads=prediction.review_heads,
        truncated=prediction.truncated,
        model={"name": prediction.model_name, "version": prediction.model_version},
        prediction_id=prediction_id,
        other_heads={head: result for head, result in heads.items() if head not in STANDARD_HEADS},
        queue=heads.get("queue"),
        priority=heads.get("priority"),
        type=heads.get("type"),
    )


async def classify_requests(
    state: State, requests: Sequence[TicketRequest]
) -> tuple[list[Classification], list[TicketPrediction]]:
    """Classify, store each prediction under a new id, and add the extras asked for."""
    classifier = classifier_of(state)
    wanted = [i for i, request in enumerate(requests) if "suggestions" in request.include]
    if wanted:
        state.knowledge.require()  # refuse before the model runs, not after
    predictions = await classifier.classify(tickets_of(requests, classifier.settings))
    ids = [new_prediction_id() for _ in predictions]
    await state.predictions.record(
        ids, predictions, [r.subject for r in requests], [r.body for r in requests]
    )
    answers = [
        shape_prediction(p, prediction_id)
        for p, prediction_id in zip(predictions, ids, strict=True)
    ]
    if wanted:
        found = await suggest_for_predictions(
            state.knowledge,
            state.settings,
            [requests[i].subject for i in wanted],
            [requests[i].body for i in wanted],
            [predictions[i] for i in wanted],
        )
        for i, suggestions in zip(wanted, found, strict=True):
            answers[i].suggestions = suggestions
    for i, request in enumerate(requests):
        if "routing" in request.include:
            decision = await asyncio.to_thread(state.routing.route, predictions[i])
            answers[i].routing = routing_result(decision)
    return answers, predictions
