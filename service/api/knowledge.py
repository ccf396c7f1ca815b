"""Routes of the knowledge base and of suggestions; logic lives in ``service.knowledge``."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

import numpy as np
from litestar import delete, get, post
from litestar.datastructures import State
from litestar.status_codes import HTTP_200_OK

from service.api.checks import check_no_nul, check_ticket_text
from service.api.responses import protected
from service.api.schemas import (
    KnowledgeEntryRequest,
    KnowledgeEntryResponse,
    KnowledgeImportRequest,
    KnowledgeWriteResponse,
    KnowledgeWriteResult,
    SuggestFiltersRequest,
    SuggestionResult,
    SuggestRequest,
    SuggestResponse,
)
from service.errors import InputError, NotFoundError
from service.inference.classifier import TicketPrediction
from service.knowledge import EntryInput, KnowledgeRecord, SuggestFilters, Suggestion
from service.knowledge.embedders import BundleEmbedder, unit_rows
from service.knowledge.records import as_utc
from service.knowledge.service import KnowledgeService
from service.settings import Settings

__all__ = ["ROUTES", "suggest_for_predictions"]


def _entries(requests: Sequence[KnowledgeEntryRequest], settings: Settings) -> list[EntryInput]:
    entries = []
    for position, request in enumerate(requests):
        where = f"entries[{position}]"
        for name in ("source_id", "resolution"):
            if not getattr(request, name).strip():
                raise InputError(f"{where}.{name}: expected text, found only whitespace")
        check_ticket_text(where, request.subject, request.body, settings.max_text_chars)
        check_no_nul(
            where,
            {
                "source_id": request.source_id,
                "resolution": request.resolution,
                "labels": request.labels,
                "tags": request.tags,
                "source_system": request.source_system,
            },
        )
        if len(request.resolution) > settings.max_text_chars:
            raise InputError(
                f"{where}.resolution: expected at most {settings.max_text_chars} characters, "
                f"found {len(request.resolution)}"
            )
        entries.append(
            EntryInput(
                source_id=request.source_id.strip(),
                body=request.body,
                resolution=request.resolution,
                subject=request.subject or "",
                labels={head: label for head, label in request.labels.items() if label},
                language=request.language,
                tags=[tag for tag in request.tags if tag],
                source_system=request.source_system,
                created_at=request.created_at,
                resolved_at=request.resolved_at,
            )
        )
    return entries


def _record(record: KnowledgeRecord) -> KnowledgeEntryResponse:
    return KnowledgeEntryResponse(**dataclasses.asdict(record))


def _suggestion(suggestion: Suggestion) -> SuggestionResult:
    return SuggestionResult(
        **dataclasses.asdict(suggestion.record),
        score=round(suggestion.score, 6),
        duplicates=suggestion.duplicates,
    )


def _filters(request: SuggestFiltersRequest | None) -> SuggestFilters:
    if request is None:
        return SuggestFilters()
    after = as_utc(request.created_after) if request.created_after else None
    before = as_utc(request.created_before) if request.created_before else None
    if after and before and after >= before:
        raise InputError(
            "filters: expected created_after before created_before, found "
            f"{after.isoformat()} and {before.isoformat()}"
        )
    return SuggestFilters(
        queues=tuple(request.queue),
        languages=tuple(request.language),
        created_after=after,
        created_before=before,
    )


def _k(requested: int | None, settings: Settings) -> int:
    limit = settings.knowledge.max_k
    if requested is not None and requested > limit:
        raise InputError(f"k: expected at most {limit} suggestions, found {requested}")
    return requested or settings.knowledge.default_k


@post(
    "/v1/knowledge",
    tags=["knowledge"],
    status_code=HTTP_200_OK,
    **protected("knowledge:write", 413, 503),
)
async def add_knowledge(state: State, data: KnowledgeImportRequest) -> KnowledgeWriteResponse:
    """Store resolved tickets (one or many); idempotent on `source_id`, durable when answered."""
    settings: Settings = state.settings
    limit = settings.knowledge.max_entries_per_request
    if len(data.entries) > limit:
        raise InputError(f"entries: expected at most {limit} per call, found {len(data.entries)}")
    base = state.knowledge.require()
    results = await asyncio.to_thread(base.add, _entries(data.entries, settings))
    counts = {
        status: sum(r.status == status for r in results)
        for status in ("created", "updated", "unchanged")
    }
    return KnowledgeWriteResponse(
        **counts, entries=[KnowledgeWriteResult(r.source_id, r.status) for r in results]
    )


@get("/v1/knowledge", tags=["knowledge"], **protected("predict", 503))
async def describe_knowledge(state: State) -> dict[str, object]:
    """Entries per language and queue, the embedder, and the index's state."""
    base = state.knowledge.require()
    return await asyncio.to_thread(base.statistics)


@get("/v1/knowledge/{source_id:str}", tags=["knowledge"], **protected("predict", 404, 503))
async def get_knowledge(state: State, source_id: str) -> KnowledgeEntryResponse:
    """One stored entry."""
    check_no_nul("path", {"source_id": source_id})
    record = await asyncio.to_thread(state.knowledge.require().get, source_id)
    if record is None:
        raise NotFoundError(f"source_id: no knowledge entry {source_id!r}")
    return _record(record)


@delete(
    "/v1/knowledge/{source_id:str}",
    tags=["knowledge"],
    status_code=HTTP_200_OK,
    **protected("knowledge:write", 404, 503),
)
async def delete_knowledge(state: State, source_id: str) -> dict[str, str]:
    """Remove an entry; it is suggested no more."""
    check_no_nul("path", {"source_id": source_id})
    if not await asyncio.to_thread(state.knowledge.require().delete, source_id):
        raise NotFoundError(f"source_id: no knowledge entry {source_id!r}")
    return {"deleted": source_id}


@post(
    "/v1/suggest",
    tags=["knowledge"],
    status_code=HTTP_200_OK,
    **protected("predict", 413, 503),
)
async def suggest(state: State, data: SuggestRequest) -> SuggestResponse:
    """Resolved tickets most like this one, in any language; near-identical ones folded."""
    settings: Settings = state.settings
    check_ticket_text("ticket", data.subject, data.body, settings.max_text_chars)
    k, filters = _k(data.k, settings), _filters(data.filters)
    base = state.knowledge.require()

    def run() -> list[Suggestion]:
        return base.suggest(base.embed_query(data.subject, data.body), k, filters)

    suggestions = await asyncio.to_thread(run)
    return SuggestResponse([_suggestion(s) for s in suggestions], base.embedder.identity)


async def suggest_for_predictions(
    knowledge: KnowledgeService,
    settings: Settings,
    subjects: Sequence[str | None],
    bodies: Sequence[str],
    predictions: Sequence[TicketPrediction],
) -> list[list[SuggestionResult]]:
    """Suggestions for classified tickets, reusing their embedding when the index holds the
    same model's vectors."""
    base = knowledge.require()
    k = settings.knowledge.default_k
    embedder = base.embedder
    same_model = isinstance(embedder, BundleEmbedder) and all(
        embedder.identity == BundleEmbedder.identity_of(p.model_name, p.model_version)
        for p in predictions
    )

    def run() -> list[list[Suggestion]]:
        if same_model:
            queries = unit_rows(np.stack([p.embedding for p in predictions]))
        else:
            queries = embedder.embed(list(subjects), list(bodies))
        return [base.suggest(query, k) for query in queries]

    return [[_suggestion(s) for s in found] for found in await asyncio.to_thread(run)]


ROUTES = [add_knowledge, describe_knowledge, get_knowledge, delete_knowledge, suggest]
