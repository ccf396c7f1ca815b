"""The cycle every connector runs, whatever the ticket system.

1. An event arrives (a webhook, or a ticket found by polling) and is taken once per
   event id; a repeat is answered from the database.
2. A ticket the connector has not triaged is classified, suggested and routed by the
   service's own classifier, knowledge base and routing (no HTTP to ourselves).
3. What to write is decided from the mapping file: the system's names for the labels, an
   internal note with the suggestions and confidences, an assignee when routing assigns.
   When a written head is below its threshold nothing is changed; the ticket goes to the
   review queue (or gets the review tag) instead.
4. The change is written back, or, in dry run, only logged; either way it is remembered.
5. A later event for a triaged ticket is compared with what was last seen: showing just
   what the connector wrote, it is the echo of its own write and ignored (connectors never
   write in answer to updates, so they cannot loop); a different queue or priority is an
   agent's correction and becomes feedback; closed with a resolution, the ticket becomes
   feedback and a knowledge-base entry.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
from collections.abc import Mapping
from typing import Any

from service.connectors.mapping import MAPPED_HEADS, ConnectorMapping
from service.connectors.store import ConnectorStore, TriagedTicket
from service.connectors.tickets import (
    EventOutcome,
    TicketEvent,
    TicketSnapshot,
    TicketSystem,
    WriteBack,
)
from service.connectors.triage import TriageEngine, TriageResult, render_note
from service.connectors.webhooks import Outbox

__all__ = ["MAX_EVENT_ID", "ConnectorService"]

logger = logging.getLogger(__name__)

#: Longest event id stored as it is (the column holds 255); longer ones are hashed.
MAX_EVENT_ID = 200


class ConnectorService:
    """The cycle for one system (see the module's description)."""

    def __init__(
        self,
        system: TicketSystem,
        mapping: ConnectorMapping,
        engine: TriageEngine,
        store: ConnectorStore,
        outbox: Outbox,
        *,
        dry_run: bool,
        assign: bool,
    ) -> None:
        self.system = system
        self.name = system.name
        self.mapping = mapping
        self.engine = engine
        self.store = store
        self.outbox = outbox
        self.dry_run = dry_run
        self.assign = assign

    async def handle(self, event: TicketEvent) -> EventOutcome:
        """Process ``event`` once; a repeated event id is answered from the first time."""
        if len(event.event_id) > MAX_EVENT_ID or "\x00" in event.event_id:
            # Kept within the column, and still the same id for the same delivery.
            digest = hashlib.sha256(event.event_id.encode("utf-8", "replace")).hexdigest()
            event = dataclasses.replace(event, event_id=f"sha256:{digest}")
        ticket_id = event.ticket.ticket_id
        claimed = await asyncio.to_thread(
            self.store.claim_event, self.name, event.event_id, ticket_id
        )
        if not claimed:
            earlier = await asyncio.to_thread(self.store.event, self.name, event.event_id)
            detail = f"event {event.event_id} was taken before"
            if earlier is not None:
                detail += f" ({earlier.outcome}: {earlier.detail})"
            return EventOutcome(self.name, event.event_id, ticket_id, "duplicate", detail)
        try:
            outcome = await self._process(event)
        except BaseException:
            # Forget the claim, so that the system's retry of this event is processed.
            await asyncio.to_thread(self.store.release_event, self.name, event.event_id)
            raise
        await asyncio.to_thread(
            self.store.finish_event, self.name, event.event_id, outcome.outcome, outcome.detail
        )
        logger.info(
            "%s ticket %s, event %s: %s (%s)",
            self.name,
            ticket_id,
            event.event_id,
            outcome.outcome,
            outcome.detail,
        )
        return outcome

    async def poll_once(self) -> list[EventOutcome]:
        """Triage the tickets the system's search finds that were not triaged yet."""

        async def untriaged(ticket_id: str) -> bool:
            return await asyncio.to_thread(self.store.ticket, self.name, ticket_id) is None

        outcomes = []
        for ticket in await self.system.poll(untriaged):
            event = TicketEvent(f"poll:{ticket.ticket_id}", ticket, created=True)
            outcomes.append(await self.handle(event))
        return outcomes

    async def _process(self, event: TicketEvent) -> EventOutcome:
        ticket = event.ticket
        record = await asyncio.to_thread(self.store.ticket, self.name, ticket.ticket_id)
        if record is not None:
            return await self._learn(event, record)
        if ticket.closed:
            return self._outcome(event, "ignored", "closed, and never triaged by the connector")
        if event.created is False:
            return self._outcome(
                event, "ignored", "a change of a ticket the connector did not triage"
            )
        return await self._triage(event)

    def _outcome(self, event: TicketEvent, outcome: str, detail: str, **extra: Any) -> EventOutcome:
        return EventOutcome(
            self.name, event.event_id, event.ticket.ticket_id, outcome, detail, **extra
        )

    async def _triage(self, event: TicketEvent) -> EventOutcome:
        ticket = event.ticket
        prediction_id, prediction = await self.engine.classify(ticket)
        suggestions = await self.engine.suggest(ticket)
        thresholds = {head: self.engine.settings.threshold(head) for head in prediction.heads}
        unsure = {
            head: self.mapping.threshold(head, thresholds[head])
            for head in self.mapping.unsure_heads(prediction, thresholds)
        }
        assign = self.assign and "assignee" in self.mapping.write and not unsure
        reference = f"{self.name}:{ticket.ticket_id}"
        routing = await self.engine.route(
            prediction, prediction_id, reference, assign and not self.dry_run
        )
        result = TriageResult(prediction_id, prediction, suggestions, routing)
        change = self._decide(result, unsure, assign)

        # Remembered before writing, with the values about to be written: the echo of the
        # write may arrive before the write returns, and a second event for the same new
        # ticket must not write again.
        after = {} if self.dry_run else change.values
        seen = {
            head: value
            for head in MAPPED_HEADS
            if (value := after.get(head) or ticket.values.get(head))
        }
        written_fields: dict[str, Any] = {}
        if not self.dry_run:
            written_fields = dict(change.values)
            if change.assignee:
                written_fields["assignee"] = change.assignee
            if change.tag:
                written_fields["tag"] = change.tag
        claimed = await asyncio.to_thread(
            self.store.claim_ticket,
            self.name,
            ticket.ticket_id,
            prediction_id,
            written_fields,
            seen,
            dry_run=self.dry_run,
            review=change.review,
        )
        if not claimed:
            return self._outcome(event, "duplicate", "triaged by another event at the same time")

        if self.dry_run:
            logger.info(
                "dry run: %s ticket %s: would write %s",
                self.name,
                ticket.ticket_id,
                change.describe(ticket),
            )
        else:
            try:
                extra = await self.system.write(ticket, change)
            except BaseException:
                await asyncio.to_thread(self.store.forget_ticket, self.name, ticket.ticket_id)
                raise
            if extra:
                written_fields.update(extra)
                await asyncio.to_thread(self.store.add_written, self.name, ticket.ticket_id, extra)
        payload = self._result(ticket, result, change, written_fields)
        await asyncio.to_thread(self.outbox.enqueue, "ticket.triaged", payload)

        outcome = "dry-run" if self.dry_run else "review" if change.review else "triaged"
        return self._outcome(
            event, outcome, change.describe(ticket), prediction_id=prediction_id, result=payload
        )

    def _decide(self, result: TriageResult, unsure: Mapping[str, float], assign: bool) -> WriteBack:
        mapping = self.mapping
        if unsure:
            values = (
                {"queue": mapping.review.queue}
                if mapping.review.queue and "queue" in mapping.write
                else {}
            )
            change = WriteBack(values, None, None, mapping.review.tag, True)
        else:
            values = {
                head: mapping.to_system(head, result.prediction.heads[head].label)
                for head in mapping.labels
                if head in mapping.write and head in result.prediction.heads
            }
            assignment = result.routing.assignment if result.routing else None
            assignee = mapping.agent(assignment.agent) if assign and assignment else None
            if assign and not self.dry_run and assignment is None:
                logger.info("%s: routing found no agent with a free slot", self.name)
            if assign and self.dry_run and result.routing and result.routing.agents:
                assignee = mapping.agent(result.routing.agents[0].agent)
            change = WriteBack(values, assignee, None, None, False)
        if "note" not in mapping.write:
            return change
        note = render_note(result, mapping, change, unsure)
        return WriteBack(change.values, change.assignee, note, change.tag, change.review)

    def _result(
        self,
        ticket: TicketSnapshot,
        result: TriageResult,
        change: WriteBack,
        written: Mapping[str, Any],
    ) -> dict[str, Any]:
        prediction = result.prediction
        return {
            "system": self.name,
            "ticket_id": ticket.ticket_id,
            "prediction_id": result.prediction_id,
            "model": {"name": prediction.model_name, "version": prediction.model_version},
            "language": prediction.language,
            "labels": {
                head: {"label": p.label, "probability": round(p.probability, 6)}
                for head, p in prediction.heads.items()
            },
            "review": change.review,
            "dry_run": self.dry_run,
            "written": dict(written),
            "would_write": {**change.values, "assignee": change.assignee, "tag": change.tag},
            "routing": [c.agent for c in result.routing.agents] if result.routing else [],
            "suggestions": [
                {"source_id": s.record.source_id, "score": round(s.score, 6)}
                for s in result.suggestions
            ],
        }

    async def _learn(self, event: TicketEvent, record: TriagedTicket) -> EventOutcome:
        ticket = event.ticket
        current = {
            head: value for head in self.mapping.labels if (value := ticket.values.get(head))
        }
        changed = {
            head: value
            for head, value in current.items()
            if value.casefold() != str(record.seen.get(head, "")).casefold()
        }
        closing = ticket.closed and record.closed_at is None
        extra = {"prediction_id": record.prediction_id}
        if not changed and not closing:
            if (
                not record.dry_run
                and record.written
                and all(
                    current.get(head) == value
                    for head, value in record.written.items()
                    if head in self.mapping.labels
                )
            ):
                return self._outcome(
                    event, "echo", "shows what the connector wrote; ignored", **extra
                )
            return self._outcome(event, "unchanged", "no change of queue or priority", **extra)

        corrected = {
            head: label
            for head, value in changed.items()
            if (label := self.mapping.to_model(head, value)) is not None
        }
        unmapped = sorted(set(changed) - set(corrected))
        labels = dict(corrected)
        if closing:
            labels = {
                head: label
                for head, value in current.items()
                if (label := self.mapping.to_model(head, value)) is not None
            }
        await asyncio.to_thread(
            self.store.update_seen, self.name, ticket.ticket_id, current, closing
        )
        if not labels and not closing:
            names = {head: changed[head] for head in unmapped}
            return self._outcome(
                event,
                "unmapped",
                f"moved to {names}, which the mapping {self.mapping.source} does not name; "
                "no feedback",
                **extra,
            )
        knowledge = await self.engine.record_feedback(
            record.prediction_id,
            labels,
            resolution=ticket.resolution if closing else None,
            agent=ticket.actor,
            source_id=f"{self.name}:{ticket.ticket_id}",
            source_system=self.name,
        )
        if closing:
            return self._outcome(event, "closed", f"feedback {labels}; {knowledge}", **extra)
        return self._outcome(event, "feedback", f"corrected {corrected}", **extra)
