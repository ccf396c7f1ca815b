"""What connectors pass around: a ticket as read from its system, the event that
brought it, what is written back, what came of it, and what each system implements."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "NOTE_MARKER",
    "EventOutcome",
    "TicketEvent",
    "TicketFilter",
    "TicketSnapshot",
    "TicketSystem",
    "WriteBack",
]

#: First line of every note the connector writes; its own notes are never a resolution.
NOTE_MARKER = "[Ticket Triage]"
#: Whether polling should read a ticket found by the search (it was not triaged yet).
TicketFilter = Callable[[str], Awaitable[bool]]


@dataclass(frozen=True)
class TicketSnapshot:
    """A ticket as read from its system; ``values`` are the system's names (head -> name)."""

    ticket_id: str
    subject: str
    body: str
    values: Mapping[str, str | None] = field(default_factory=dict)
    closed: bool = False
    #: The agent's answer that resolved it, when closed.
    resolution: str | None = None
    #: Who made the change the event reports (a login or account id), when known.
    actor: str | None = None
    language: str | None = None


@dataclass(frozen=True)
class TicketEvent:
    event_id: str
    ticket: TicketSnapshot
    #: True: the system reports a new ticket; False: a change; None: it does not say.
    created: bool | None = None


@dataclass(frozen=True)
class WriteBack:
    """What the connector changes in a ticket (the system's names)."""

    values: dict[str, str]
    assignee: str | None
    note: str | None
    tag: str | None
    review: bool

    def describe(self, before: TicketSnapshot) -> str:
        parts = [
            f"{head} {before.values.get(head)!r} -> {value!r}"
            if before.values.get(head) != value
            else f"{head} {value!r} (unchanged)"
            for head, value in self.values.items()
        ]
        if self.assignee:
            parts.append(f"assignee -> {self.assignee!r}")
        if self.tag:
            parts.append(f"tag {self.tag!r}")
        if self.note:
            parts.append(f"internal note ({len(self.note)} characters)")
        return ", ".join(parts) or "nothing"


@dataclass(frozen=True)
class EventOutcome:
    """What came of one event; the API answers it, the database keeps outcome and detail."""

    system: str
    event_id: str
    ticket_id: str | None
    #: ``triaged``, ``review``, ``dry-run``, ``feedback``, ``closed``, ``echo``,
    #: ``unchanged``, ``unmapped``, ``ignored`` or ``duplicate``.
    outcome: str
    detail: str
    prediction_id: str | None = None
    result: dict[str, Any] = field(default_factory=dict)


class TicketSystem(Protocol):
    """One ticket system's side of the cycle: its API calls and its event format."""

    name: str

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Raise ``UnauthorizedError`` unless the webhook call is the system's own."""
        ...

    async def event(
        self, headers: Mapping[str, str], payload: dict[str, Any]
    ) -> TicketEvent | None:
        """The ticket event of a webhook payload; None for an event about something else."""
        ...

    async def write(self, ticket: TicketSnapshot, change: WriteBack) -> dict[str, Any]:
        """Apply ``change``; returns what was written (ids of notes...)."""
        ...

    async def poll(self, wanted: TicketFilter) -> list[TicketSnapshot]:
        """Tickets waiting for triage (the configured search), read in full only where
        ``wanted(ticket_id)`` (the ones not triaged yet)."""
        ...

    async def close(self) -> None: ...
