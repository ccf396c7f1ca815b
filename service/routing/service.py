"""Routing a classified ticket: rank teams and agents with the configured policy, and
optionally assign the ticket to the best agent."""

from __future__ import annotations

from dataclasses import dataclass

from service.inference.classifier import TicketPrediction
from service.routing.directory import AgentFullError, AssignmentRecord, RoutingDirectory
from service.routing.policies import (
    Candidate,
    RoutingPolicy,
    RoutingTicket,
    make_policy,
    rank_teams,
)
from service.settings import RoutingSettings

__all__ = ["RoutingDecision", "RoutingService", "routing_ticket"]


@dataclass(frozen=True)
class RoutingDecision:
    policy: str
    teams: list[Candidate]
    agents: list[Candidate]
    assignment: AssignmentRecord | None = None


def routing_ticket(prediction: TicketPrediction) -> RoutingTicket:
    queue = prediction.heads.get("queue")
    priority = prediction.heads.get("priority")
    return RoutingTicket(
        queues=queue.distribution if queue else {},
        priority=priority.label if priority else None,
        language=prediction.language,
    )


class RoutingService:
    def __init__(self, directory: RoutingDirectory, settings: RoutingSettings) -> None:
        self.directory = directory
        self.settings = settings
        # Policies keep their own state (round-robin's turn) for the life of the process.
        self._policies: dict[str, RoutingPolicy] = {}

    def policy(self, name: str | None = None) -> RoutingPolicy:
        name = name or self.settings.policy
        if name not in self._policies:
            self._policies[name] = make_policy(
                name, self.settings.language_penalty, self.settings.load_weight
            )
        return self._policies[name]

    def route(
        self,
        prediction: TicketPrediction,
        *,
        policy: str | None = None,
        assign: bool = False,
        ticket_id: str | None = None,
        prediction_id: str | None = None,
    ) -> RoutingDecision:
        """Rank teams and agents; with ``assign``, give the ticket to the first agent who still
        has a free slot when the assignment is written."""
        chosen = self.policy(policy)
        ticket = routing_ticket(prediction)
        agents = chosen.rank(ticket, self.directory.agents())
        teams = rank_teams(ticket, self.directory.teams())
        assignment = None
        queue = prediction.heads.get("queue")
        for candidate in agents if assign else []:
            try:
                assignment = self.directory.assign(
                    candidate.agent,
                    ticket_id=ticket_id,
                    prediction_id=prediction_id,
                    queue=queue.label if queue else None,
                    priority=ticket.priority,
                    language=ticket.language,
                    within_capacity=True,
                )
                break
            except AgentFullError:
                continue  # another request took the last slot; the next candidate gets it
        limit = self.settings.candidates
        return RoutingDecision(chosen.name, teams[:limit], agents[:limit], assignment)
