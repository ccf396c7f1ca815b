"""Connectors outside the server, for the command line: the classifier, knowledge base,
routing and database opened as the server opens them, for one poll or one replay."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from service.connectors.hub import ConnectorHub
from service.connectors.tickets import EventOutcome
from service.connectors.triage import TriageEngine
from service.connectors.webhooks import Outbox
from service.inference.bundle import ModelBundle
from service.inference.classifier import TicketClassifier
from service.knowledge.service import KnowledgeService
from service.learning.feedback import FeedbackStore
from service.learning.predictions import PredictionLog
from service.learning.registry import ModelRegistry
from service.routing import RoutingDirectory, RoutingService
from service.settings import Settings, SettingsError
from service.storage import create_database_engine, upgrade_schema

__all__ = ["poll", "replay"]

logger = logging.getLogger(__name__)


@asynccontextmanager
async def _hub(settings: Settings) -> AsyncIterator[ConnectorHub]:
    engine = create_database_engine(settings.resolved_database_url)
    upgrade_schema(engine)
    registry = ModelRegistry(engine)
    active = registry.active()
    model_dir = active.directory if active is not None else settings.model_dir
    bundle = ModelBundle.load(model_dir)
    classifier = TicketClassifier(settings)
    knowledge = KnowledgeService(settings, engine)
    predictions = PredictionLog(engine, store_text=not settings.privacy.redact_knowledge)
    routing = RoutingService(RoutingDirectory(engine), settings.routing)
    triage = TriageEngine(
        settings, classifier, predictions, knowledge, routing, FeedbackStore(engine)
    )
    hub = ConnectorHub(settings, engine, triage)
    hub.configure(bundle.heads)
    await classifier.start(bundle.directory)
    await predictions.start()
    try:
        await knowledge.start(classifier)
        yield hub
    finally:
        await hub.stop()
        await knowledge.stop()
        await predictions.stop()
        await classifier.stop()
        engine.dispose()


async def poll(settings: Settings, system: str, once: bool) -> list[EventOutcome]:
    """Triage what ``system``'s search finds; with ``once`` false, again every
    ``POLL_INTERVAL_S`` until interrupted. Outbound deliveries are sent before returning."""
    async with _hub(settings) as hub:
        service = hub.service(system)
        interval = getattr(hub.system_settings(system), "poll_interval_s", 0.0)
        if not once and interval <= 0:
            raise SettingsError(
                f"TRIAGE_{system.upper()}_POLL_INTERVAL_S: expected more than 0 seconds to poll "
                "repeatedly, found 0; set it, or pass --once"
            )
        outcomes: list[EventOutcome] = []
        while True:
            found = await service.poll_once()
            outcomes.extend(found)
            await hub.outbox.deliver_due()
            logger.info("%s poll: %d new tickets", system, len(found))
            if once:
                return outcomes
            await asyncio.sleep(interval)


async def replay(settings: Settings, ids: list[int] | None) -> tuple[list[int], int]:
    """Make dead deliveries (``ids``, or all) pending and send them; (replayed, delivered)."""
    engine = create_database_engine(settings.resolved_database_url)
    upgrade_schema(engine)
    outbox = Outbox(engine, settings.connectors.webhooks)
    try:
        replayed = outbox.replay(ids)
        delivered = 0
        for delivery_id in replayed:
            delivered += await outbox.attempt(delivery_id)
        return replayed, delivered
    finally:
        await outbox.stop()
        engine.dispose()
