"""Routing policies: given a classified ticket and the agents' state, rank who should take it.

``SkillsPolicy`` (the default) weighs the predicted queue distribution by each agent's skill
level, prefers agents who speak the ticket's language and have free slots, sends
high-priority tickets to the most experienced free agent, and, where the history has it,
favours agents who resolved tickets of that queue quickly. ``RoundRobinPolicy`` and
``LeastLoadedPolicy`` are the baselines it is measured against. All are pure: the same
inputs give the same ranking, which the API, the tests and the simulation rely on.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "POLICIES",
    "AgentState",
    "Candidate",
    "LeastLoadedPolicy",
    "RoundRobinPolicy",
    "RoutingPolicy",
    "RoutingTicket",
    "SkillsPolicy",
    "TeamState",
    "make_policy",
    "rank_teams",
]

MAX_LEVEL = 5
HIGH_PRIORITIES = frozenset({"high", "critical", "urgent", "p1", "1"})


@dataclass(frozen=True)
class RoutingTicket:
    #: Queue label -> calibrated probability (the whole distribution of the queue head).
    queues: Mapping[str, float]
    priority: str | None
    language: str


@dataclass
class AgentState:
    name: str
    skills: Mapping[str, int]  # queue -> level 1..5
    languages: Sequence[str]
    capacity: int
    load: int = 0
    available: bool = True
    team: str | None = None
    #: Queue -> how fast this agent resolves it compared with everyone (1 = as fast as the
    #: median, 1.2 = faster); from closed assignments, empty when there is no history.
    speed: Mapping[str, float] = field(default_factory=dict)

    @property
    def free_slots(self) -> int:
        return max(0, self.capacity - self.load)

    def can_take(self) -> bool:
        return self.available and self.free_slots > 0


@dataclass(frozen=True)
class TeamState:
    name: str
    queues: Sequence[str]


@dataclass(frozen=True)
class Candidate:
    agent: str
    team: str | None
    score: float
    reason: str


class RoutingPolicy(Protocol):
    name: str

    def rank(self, ticket: RoutingTicket, agents: Sequence[AgentState]) -> list[Candidate]:
        """Agents who can take the ticket now, best first."""
        ...


def _slots(agent: AgentState) -> str:
    return f"{agent.load} of {agent.capacity} slots used"


@dataclass
class SkillsPolicy:
    """Skill match × language × free capacity × speed, with experience first for high priority.

    ``match`` is the expected skill level under the queue distribution, scaled to 0..1; for
    high-priority tickets the level counts squared, so the expert beats two juniors. An agent
    who does not speak the ticket's language keeps ``language_penalty`` of the score; load
    weighs ``load_weight`` (0: ignore, 1: a full agent scores 0); speed comes from history.
    """

    language_penalty: float = 0.35
    load_weight: float = 0.5
    name: str = "skills"

    def rank(self, ticket: RoutingTicket, agents: Sequence[AgentState]) -> list[Candidate]:
        high = (ticket.priority or "").lower() in HIGH_PRIORITIES
        scored = []
        for agent in agents:
            if not agent.can_take():
                continue
            contributions = {
                queue: probability * (agent.skills.get(queue, 0) / MAX_LEVEL) ** (2 if high else 1)
                for queue, probability in ticket.queues.items()
            }
            match = sum(contributions.values())
            if match <= 0:
                continue
            speaks = ticket.language in agent.languages
            language = 1.0 if speaks else self.language_penalty
            load = 1 - self.load_weight * agent.load / max(agent.capacity, 1)
            best_queue = max(contributions, key=contributions.__getitem__)
            speed = agent.speed.get(best_queue, 1.0)
            score = match * language * load * speed
            reason = (
                f"queue {best_queue} {ticket.queues[best_queue]:.2f} "
                f"(level {agent.skills.get(best_queue, 0)}/{MAX_LEVEL}), "
                f"{'speaks' if speaks else 'does not speak'} {ticket.language}, {_slots(agent)}"
            )
            if high:
                reason += ", high priority: experience first"
            if speed != 1.0:
                reason += f", resolves {best_queue} {speed:.2f}× the median speed"
            scored.append(Candidate(agent.name, agent.team, round(score, 4), reason))
        return sorted(scored, key=lambda c: (-c.score, c.agent))


@dataclass
class RoundRobinPolicy:
    """Each ticket to the next available agent in turn, whatever the ticket."""

    name: str = "round-robin"
    _turn: itertools.count[int] = field(default_factory=itertools.count)

    def rank(self, ticket: RoutingTicket, agents: Sequence[AgentState]) -> list[Candidate]:
        ordered = sorted((a for a in agents if a.can_take()), key=lambda a: a.name)
        if not ordered:
            return []
        start = next(self._turn) % len(ordered)
        turn = ordered[start:] + ordered[:start]
        return [
            Candidate(a.name, a.team, round(1 / (i + 1), 4), f"next in turn, {_slots(a)}")
            for i, a in enumerate(turn)
        ]


@dataclass
class LeastLoadedPolicy:
    """Each ticket to the available agent with the largest share of free slots."""

    name: str = "least-loaded"

    def rank(self, ticket: RoutingTicket, agents: Sequence[AgentState]) -> list[Candidate]:
        free = [a for a in agents if a.can_take()]
        ordered = sorted(free, key=lambda a: (a.load / max(a.capacity, 1), a.name))
        return [
            Candidate(a.name, a.team, round(1 - a.load / max(a.capacity, 1), 4), _slots(a))
            for a in ordered
        ]


POLICIES = ("skills", "round-robin", "least-loaded")


def make_policy(
    name: str, language_penalty: float = 0.35, load_weight: float = 0.5
) -> RoutingPolicy:
    if name == "skills":
        return SkillsPolicy(language_penalty=language_penalty, load_weight=load_weight)
    if name == "round-robin":
        return RoundRobinPolicy()
    if name == "least-loaded":
        return LeastLoadedPolicy()
    raise ValueError(f"routing policy: expected one of {', '.join(POLICIES)}, found {name!r}")


def rank_teams(ticket: RoutingTicket, teams: Sequence[TeamState]) -> list[Candidate]:
    """Teams by the probability that the ticket belongs to one of their queues."""
    ranked = []
    for team in teams:
        shares = {q: ticket.queues.get(q, 0.0) for q in team.queues}
        total = sum(shares.values())
        if total <= 0:
            continue
        best = max(shares, key=shares.__getitem__)
        ranked.append(
            Candidate(team.name, team.name, round(total, 4), f"handles {best} {shares[best]:.2f}")
        )
    return sorted(ranked, key=lambda c: (-c.score, c.agent))
