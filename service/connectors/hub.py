"""The enabled connectors of one server: built from settings, checked against the model at
start-up, polling in the background where configured."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Engine

from service.connectors.base import ConnectorService
from service.connectors.generic import GenericWebhookSystem
from service.connectors.jira import JiraSystem
from service.connectors.mapping import ConnectorMapping, MappingError
from service.connectors.otobo import OtoboSystem
from service.connectors.store import ConnectorStore
from service.connectors.tickets import EventOutcome, TicketSystem
from service.connectors.triage import TriageEngine
from service.connectors.webhooks import Outbox
from service.connectors.zammad import ZammadSystem
from service.errors import InputError, NotFoundError
from service.settings import (
    JiraSettings,
    OtoboSettings,
    Settings,
    SystemSettings,
    ZammadSettings,
)

__all__ = ["SYSTEMS", "ConnectorHub", "check_mappings", "read_mapping"]

logger = logging.getLogger(__name__)

#: Connector names, as in the routes (``/v1/connectors/<name>/events``) and the CLI.
SYSTEMS = ("zammad", "otobo", "jira", "webhook")
_VARIABLES = {
    "zammad": "TRIAGE_ZAMMAD_ENABLED",
    "otobo": "TRIAGE_OTOBO_ENABLED",
    "jira": "TRIAGE_JIRA_ENABLED",
    "webhook": "TRIAGE_WEBHOOK_INBOUND_ENABLED",
}


def read_mapping(settings: SystemSettings, heads: Mapping[str, Sequence[str]]) -> ConnectorMapping:
    """A system's mapping file, checked against the model's ``heads`` and the system."""
    mapping = ConnectorMapping.from_yaml(settings.mapping, heads)
    if isinstance(settings, OtoboSettings) and mapping.review.tag:
        raise MappingError(
            f"{mapping.source}: review.tag: OTOBO and Znuny tickets have no tags; name a "
            "review queue (review.queue) instead"
        )
    return mapping


def check_mappings(settings: Settings, heads: Mapping[str, Sequence[str]]) -> None:
    """Read the mapping file of every enabled system against the model's ``heads``; the
    first that does not fit raises ``MappingError`` naming the file and the label."""
    connectors = settings.connectors
    for system in (connectors.zammad, connectors.otobo, connectors.jira):
        if system.enabled:
            read_mapping(system, heads)


class ConnectorHub:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        triage: TriageEngine,
    ) -> None:
        self.settings = settings
        self.store = ConnectorStore(engine)
        self.outbox = Outbox(engine, settings.connectors.webhooks)
        self.triage = triage
        self.services: dict[str, ConnectorService] = {}
        self._polls: list[asyncio.Task[None]] = []

    def system_settings(self, name: str) -> SystemSettings | None:
        return getattr(self.settings.connectors, name, None) if name != "webhook" else None

    def configure(self, heads: Mapping[str, Sequence[str]]) -> None:
        """Build the enabled connectors; their mapping files are checked against the model's
        ``heads`` here, so that a wrong label stops start-up, not the first ticket."""
        connectors = self.settings.connectors
        built: dict[str, ConnectorService] = {}
        for settings in (connectors.zammad, connectors.otobo, connectors.jira):
            if not settings.enabled:
                continue
            mapping = read_mapping(settings, heads)
            system = self._system(settings, mapping)
            name = system.name
            built[name] = self._service(system, mapping, settings.dry_run, settings.assign)
            logger.info(
                "connector %s: %s, mapping %s%s%s",
                name,
                settings.url,
                mapping.source,
                ", dry run" if settings.dry_run else "",
                f", polling every {settings.poll_interval_s:g} s"
                if settings.poll_interval_s
                else "",
            )
        if connectors.webhooks.inbound_enabled:
            generic = GenericWebhookSystem(connectors.webhooks)
            built["webhook"] = self._service(
                generic, ConnectorMapping.identity(heads), dry_run=False, assign=False
            )
        self.services = built

    def _system(self, settings: SystemSettings, mapping: ConnectorMapping) -> TicketSystem:
        if isinstance(settings, ZammadSettings):
            return ZammadSystem(settings, mapping)
        if isinstance(settings, OtoboSettings):
            return OtoboSystem(settings, mapping)
        assert isinstance(settings, JiraSettings)
        return JiraSystem(settings, mapping)

    def _service(
        self, system: TicketSystem, mapping: ConnectorMapping, dry_run: bool, assign: bool
    ) -> ConnectorService:
        return ConnectorService(
            system, mapping, self.triage, self.store, self.outbox, dry_run=dry_run, assign=assign
        )

    def service(self, name: str) -> ConnectorService:
        if name not in SYSTEMS:
            raise NotFoundError(f"connector: expected one of {list(SYSTEMS)}, found {name!r}")
        if name not in self.services:
            raise NotFoundError(
                f"the {name} connector is not enabled; set {_VARIABLES[name]}=true (see "
                "docs/connectors.md)"
            )
        return self.services[name]

    async def receive(self, name: str, headers: Mapping[str, str], body: bytes) -> EventOutcome:
        """A webhook call: authenticated, parsed, processed."""
        service = self.service(name)
        service.system.verify(headers, body)
        try:
            payload = json.loads(body)
        except ValueError as exc:
            raise InputError(f"body: expected JSON, found {body[:40]!r}... ({exc})") from exc
        if not isinstance(payload, dict):
            raise InputError(f"body: expected a JSON object, found {type(payload).__name__}")
        event = await service.system.event(headers, payload)
        if event is None:
            kind = payload.get("webhookEvent") or payload.get("type")
            return EventOutcome(name, "", None, "ignored", f"not a ticket event ({kind!r})")
        return await service.handle(event)

    def status(self) -> dict[str, Any]:
        answer: dict[str, Any] = {}
        for name in SYSTEMS:
            service = self.services.get(name)
            entry: dict[str, Any] = {"enabled": service is not None}
            if service is not None:
                entry.update(
                    dry_run=service.dry_run,
                    assign=service.assign,
                    mapping=service.mapping.source,
                    events=self.store.outcomes(name),
                )
            answer[name] = entry
        counts = self.outbox.counts()
        answer["outbound"] = {
            "enabled": self.outbox.enabled,
            **{status: counts.get(status, 0) for status in ("pending", "delivered", "dead")},
        }
        return answer

    async def _poll_forever(self, service: ConnectorService, interval_s: float) -> None:
        while True:
            try:
                outcomes = await service.poll_once()
                if outcomes:
                    logger.info("%s poll: %d new tickets", service.name, len(outcomes))
            except Exception:  # polling must outlive a passing outage of the system
                logger.exception("%s poll failed; retrying in %.0f s", service.name, interval_s)
            await asyncio.sleep(interval_s)

    async def start(self) -> None:
        self.outbox.start()
        for name, service in self.services.items():
            settings = self.system_settings(name)
            if settings is not None and settings.poll_interval_s > 0:
                task = asyncio.create_task(
                    self._poll_forever(service, settings.poll_interval_s), name=f"poll-{name}"
                )
                self._polls.append(task)

    async def stop(self) -> None:
        for task in self._polls:
            task.cancel()
        await asyncio.gather(*self._polls, return_exceptions=True)
        self._polls = []
        await self.outbox.stop()
        for service in self.services.values():
            await service.system.close()
