"""Routing: teams and agents, the policies that rank them for a ticket, and the simulation
that compares the policies."""

from service.routing.directory import AgentInput, AssignmentRecord, RoutingDirectory
from service.routing.policies import (
    POLICIES,
    AgentState,
    Candidate,
    RoutingPolicy,
    RoutingTicket,
    TeamState,
    make_policy,
    rank_teams,
)
from service.routing.service import RoutingDecision, RoutingService

__all__ = [
    "POLICIES",
    "AgentInput",
    "AgentState",
    "AssignmentRecord",
    "Candidate",
    "RoutingDecision",
    "RoutingDirectory",
    "RoutingPolicy",
    "RoutingService",
    "RoutingTicket",
    "TeamState",
    "make_policy",
    "rank_teams",
]
