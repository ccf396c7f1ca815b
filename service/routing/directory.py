"""Teams, agents and assignments in the database; an agent's load follows its assignments.

Assigning a ticket adds one to the agent's load and closing the assignment takes it away,
each in one transaction with the assignment row, so the load always equals the agent's
open assignments. Speeds for the routing history come from closed assignments.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from service.errors import InputError, NotFoundError, ServiceError
from service.routing.policies import MAX_LEVEL, AgentState, TeamState
from service.storage.tables import Agent, Assignment, Team, utc_now

__all__ = ["AgentFullError", "AgentInput", "AssignmentRecord", "RoutingDirectory"]

#: Closed assignments of an agent on a queue before its speed counts (fewer is noise).
MIN_HISTORY = 3
#: Speeds are kept within these bounds, so that history refines skill instead of overruling it.
SPEED_BOUNDS = (0.8, 1.25)
HISTORY_LIMIT = 20_000


class AgentFullError(ServiceError):
    """The agent took their last free slot meanwhile."""

    status_code = 409


@dataclass(frozen=True)
class AgentInput:
    name: str
    skills: Mapping[str, int]
    languages: Sequence[str]
    capacity: int = 5
    available: bool = True
    team: str | None = None

    def check(self) -> None:
        bad = {q: level for q, level in self.skills.items() if not 1 <= level <= MAX_LEVEL}
        if bad:
            raise InputError(f"skills: expected levels 1..{MAX_LEVEL} per queue, found {bad}")
        if self.capacity < 1:
            raise InputError(f"capacity: expected 1 or more tickets, found {self.capacity}")
        if not self.name.strip():
            raise InputError("name: expected the agent's login, found nothing")


@dataclass(frozen=True)
class AssignmentRecord:
    id: int
    agent: str
    ticket_id: str | None
    prediction_id: str | None
    queue: str | None
    priority: str | None
    language: str | None
    assigned_at: datetime
    closed_at: datetime | None


def _record(row: Assignment) -> AssignmentRecord:
    return AssignmentRecord(
        row.id,
        row.agent,
        row.ticket_id,
        row.prediction_id,
        row.queue,
        row.priority,
        row.language,
        row.assigned_at,
        row.closed_at,
    )


def _state(row: Agent, speed: Mapping[str, float]) -> AgentState:
    return AgentState(
        name=row.name,
        skills=dict(row.skills),
        languages=list(row.languages),
        capacity=row.capacity,
        load=row.load,
        available=row.available,
        team=row.team,
        speed=speed,
    )


class RoutingDirectory:
    def __init__(self, engine: Engine, history_cache_s: float = 60.0) -> None:
        self.engine = engine
        # Speeds change slowly; recomputing them for every routed ticket would scan the
        # history each time.
        self._history_cache_s = history_cache_s
        self._speeds: tuple[float, dict[str, dict[str, float]]] | None = None

    # Teams.

    def put_team(self, name: str, queues: Sequence[str]) -> TeamState:
        if not name.strip():
            raise InputError("name: expected the team's name, found nothing")
        with Session(self.engine) as session, session.begin():
            row = session.scalar(select(Team).where(Team.name == name))
            if row is None:
                row = Team(name=name, created_at=utc_now())
                session.add(row)
            row.queues = list(dict.fromkeys(queues))
            return TeamState(row.name, list(row.queues))

    def teams(self) -> list[TeamState]:
        with Session(self.engine) as session:
            return [TeamState(t.name, list(t.queues)) for t in session.scalars(select(Team))]

    # Agents.

    def put_agent(self, agent: AgentInput) -> AgentState:
        """Create or replace an agent's profile; the load is kept."""
        agent.check()
        with Session(self.engine) as session, session.begin():
            if agent.team and session.scalar(select(Team).where(Team.name == agent.team)) is None:
                raise InputError(f"team: expected an existing team, found {agent.team!r}")
            row = session.scalar(select(Agent).where(Agent.name == agent.name))
            if row is None:
                row = Agent(name=agent.name, load=0)
                session.add(row)
            row.skills, row.languages = dict(agent.skills), list(agent.languages)
            row.capacity, row.available, row.team = agent.capacity, agent.available, agent.team
            row.updated_at = utc_now()
            session.flush()
            return _state(row, {})

    def cached_speeds(self) -> dict[str, dict[str, float]]:
        now = time.monotonic()
        if self._speeds is None or now - self._speeds[0] > self._history_cache_s:
            self._speeds = (now, self.speeds())
        return self._speeds[1]

    def agents(self, with_history: bool = True) -> list[AgentState]:
        speeds = self.cached_speeds() if with_history else {}
        with Session(self.engine) as session:
            rows = session.scalars(select(Agent).order_by(Agent.name))
            return [_state(row, speeds.get(row.name, {})) for row in rows]

    def agent(self, name: str) -> AgentState:
        with Session(self.engine) as session:
            row = session.scalar(select(Agent).where(Agent.name == name))
            if row is None:
                raise NotFoundError(f"agent: no agent {name!r}")
            return _state(row, self.speeds().get(name, {}))

    def set_available(self, name: str, available: bool) -> AgentState:
        with Session(self.engine) as session, session.begin():
            row = session.scalar(select(Agent).where(Agent.name == name))
            if row is None:
                raise NotFoundError(f"agent: no agent {name!r}")
            row.available, row.updated_at = available, utc_now()
            return _state(row, {})

    # Assignments.

    def assign(
        self,
        agent: str,
        *,
        ticket_id: str | None = None,
        prediction_id: str | None = None,
        queue: str | None = None,
        priority: str | None = None,
        language: str | None = None,
        within_capacity: bool = False,
    ) -> AssignmentRecord:
        """Give a ticket to ``agent``. ``within_capacity`` refuses (``AgentFullError``) when
        the agent has no free slot, checked in the same UPDATE, so that two concurrent
        routings cannot both take the last one; a person assigning by hand may overbook."""
        with Session(self.engine) as session, session.begin():
            condition = [Agent.name == agent]
            if within_capacity:
                condition.append(Agent.load < Agent.capacity)
            changed = session.execute(update(Agent).where(*condition).values(load=Agent.load + 1))
            if changed.rowcount == 0:  # type: ignore[attr-defined]
                known = session.scalar(select(Agent.id).where(Agent.name == agent))
                if known is None:
                    raise NotFoundError(f"agent: no agent {agent!r}")
                raise AgentFullError(f"agent {agent!r} has no free slot")
            row = Assignment(
                agent=agent,
                ticket_id=ticket_id,
                prediction_id=prediction_id,
                queue=queue,
                priority=priority,
                language=language,
                assigned_at=utc_now(),
            )
            session.add(row)
            session.flush()
            return _record(row)

    def close(self, assignment_id: int) -> AssignmentRecord:
        """Close an assignment (idempotent); the agent's load drops by one."""
        with Session(self.engine) as session, session.begin():
            row = session.get(Assignment, assignment_id)
            if row is None:
                raise NotFoundError(f"assignment: no assignment {assignment_id}")
            if row.closed_at is None:
                row.closed_at = utc_now()
                session.execute(
                    update(Agent)
                    .where(Agent.name == row.agent, Agent.load > 0)
                    .values(load=Agent.load - 1)
                )
            return _record(row)

    def open_assignments(self, agent: str | None = None) -> list[AssignmentRecord]:
        query = select(Assignment).where(Assignment.closed_at.is_(None)).order_by(Assignment.id)
        if agent:
            query = query.where(Assignment.agent == agent)
        with Session(self.engine) as session:
            return [_record(row) for row in session.scalars(query)]

    def speeds(self) -> dict[str, dict[str, float]]:
        """Agent -> queue -> median resolution time of everyone / the agent's, bounded."""
        query = (
            select(Assignment.agent, Assignment.queue, Assignment.assigned_at, Assignment.closed_at)
            .where(Assignment.closed_at.is_not(None), Assignment.queue.is_not(None))
            .order_by(Assignment.id.desc())
            .limit(HISTORY_LIMIT)
        )
        minutes: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        with Session(self.engine) as session:
            for agent, queue, assigned, closed in session.execute(query):
                if queue is not None and closed is not None:
                    minutes[queue][agent].append((closed - assigned).total_seconds() / 60)
        speeds: dict[str, dict[str, float]] = defaultdict(dict)
        low, high = SPEED_BOUNDS
        for queue, by_agent in minutes.items():
            everyone = statistics.median(m for times in by_agent.values() for m in times)
            for agent, times in by_agent.items():
                if len(times) >= MIN_HISTORY:
                    own = max(statistics.median(times), 1e-3)
                    speeds[agent][queue] = round(min(high, max(low, everyone / own)), 3)
        return dict(speeds)
