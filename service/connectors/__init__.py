"""Connectors to ticket systems (Zammad, OTOBO/Znuny, Jira Service Management) and generic
signed webhooks: events in, predictions written back, agents' edits turned into feedback.
``base`` has the cycle every connector runs, ``tickets`` what it passes around, ``triage``
the classification, suggestions, routing and feedback it uses; ``docs/connectors.md`` has
the walk-throughs."""

from service.connectors.base import ConnectorService
from service.connectors.hub import SYSTEMS, ConnectorHub
from service.connectors.mapping import ConnectorMapping, MappingError
from service.connectors.tickets import EventOutcome, TicketEvent, TicketSnapshot, WriteBack
from service.connectors.triage import TriageEngine
from service.connectors.webhooks import Outbox, sign, verify_signature

__all__ = [
    "SYSTEMS",
    "ConnectorHub",
    "ConnectorMapping",
    "ConnectorService",
    "EventOutcome",
    "MappingError",
    "Outbox",
    "TicketEvent",
    "TicketSnapshot",
    "TriageEngine",
    "WriteBack",
    "sign",
    "verify_signature",
]
