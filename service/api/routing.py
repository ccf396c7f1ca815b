"""Routes of teams, agents, routing and assignments; logic lives in ``service.routing``."""

from __future__ import annotations

import asyncio
from typing import Annotated

from litestar import get, post, put
from litestar.datastructures import State
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK

from service.api.responses import protected
from service.api.schemas import (
    AgentRequest,
    AgentResponse,
    AssignmentRequest,
    AssignmentResponse,
    AvailabilityRequest,
    RoutingCandidate,
    RoutingResult,
    TeamRequest,
    TeamResponse,
)
from service.routing import AgentInput, AgentState, AssignmentRecord, RoutingDecision

__all__ = ["ROUTES", "routing_result"]

# Path parameters are bounded as the columns they are looked up in.
PathName = Annotated[str, Parameter(min_length=1, max_length=255, pattern=r"^[^\x00]+$")]
AssignmentId = Annotated[int, Parameter(ge=1, le=2**63 - 1)]


def _agent(state: AgentState) -> AgentResponse:
    return AgentResponse(
        name=state.name,
        skills=dict(state.skills),
        languages=list(state.languages),
        capacity=state.capacity,
        available=state.available,
        load=state.load,
        team=state.team,
        speed=dict(state.speed),
    )


def assignment_response(record: AssignmentRecord) -> AssignmentResponse:
    return AssignmentResponse(
        id=record.id,
        agent=record.agent,
        assigned_at=record.assigned_at,
        ticket_id=record.ticket_id,
        prediction_id=record.prediction_id,
        queue=record.queue,
        priority=record.priority,
        language=record.language,
        closed_at=record.closed_at,
    )


def routing_result(decision: RoutingDecision) -> RoutingResult:
    return RoutingResult(
        policy=decision.policy,
        teams=[RoutingCandidate(c.agent, c.score, c.reason, c.team) for c in decision.teams],
        agents=[RoutingCandidate(c.agent, c.score, c.reason, c.team) for c in decision.agents],
        assignment=assignment_response(decision.assignment) if decision.assignment else None,
    )


@put("/v1/teams/{name:str}", tags=["routing"], **protected("admin", 413))
async def put_team(state: State, name: PathName, data: TeamRequest) -> TeamResponse:
    """Create a team or replace the queues it takes."""
    team = await asyncio.to_thread(state.routing.directory.put_team, name, data.queues)
    return TeamResponse(team.name, list(team.queues))


@get("/v1/teams", tags=["routing"], **protected("predict"))
async def list_teams(state: State) -> list[TeamResponse]:
    """Every team with its queues."""
    teams = await asyncio.to_thread(state.routing.directory.teams)
    return [TeamResponse(t.name, list(t.queues)) for t in teams]


@put("/v1/agents/{name:str}", tags=["routing"], **protected("admin", 413))
async def put_agent(state: State, name: PathName, data: AgentRequest) -> AgentResponse:
    """Create an agent or replace their profile (skills, languages, capacity, team); the load
    the service keeps from assignments stays."""
    agent = AgentInput(
        name=name,
        skills=data.skills,
        languages=data.languages,
        capacity=data.capacity,
        available=data.available,
        team=data.team,
    )
    return _agent(await asyncio.to_thread(state.routing.directory.put_agent, agent))


@get("/v1/agents", tags=["routing"], **protected("predict"))
async def list_agents(state: State) -> list[AgentResponse]:
    """Every agent with skills, languages, capacity, availability, load and speed."""
    return [_agent(a) for a in await asyncio.to_thread(state.routing.directory.agents)]


@get("/v1/agents/{name:str}", tags=["routing"], **protected("predict", 404))
async def get_agent(state: State, name: PathName) -> AgentResponse:
    """One agent."""
    return _agent(await asyncio.to_thread(state.routing.directory.agent, name))


@put(
    "/v1/agents/{name:str}/availability",
    tags=["routing"],
    **protected("routing:write", 404, 413),
)
async def set_availability(
    state: State, name: PathName, data: AvailabilityRequest
) -> AgentResponse:
    """Mark an agent available or away; an away agent gets no tickets."""
    directory = state.routing.directory
    return _agent(await asyncio.to_thread(directory.set_available, name, data.available))


@post(
    "/v1/assignments",
    tags=["routing"],
    status_code=HTTP_200_OK,
    **protected("routing:write", 404, 413),
)
async def assign(state: State, data: AssignmentRequest) -> AssignmentResponse:
    """Record that a ticket went to an agent (their load rises by one)."""
    record = await asyncio.to_thread(
        lambda: state.routing.directory.assign(
            data.agent,
            ticket_id=data.ticket_id,
            prediction_id=data.prediction_id,
            queue=data.queue,
            priority=data.priority,
            language=data.language,
        )
    )
    return assignment_response(record)


@post(
    "/v1/assignments/{assignment_id:int}/close",
    tags=["routing"],
    status_code=HTTP_200_OK,
    **protected("routing:write", 404),
)
async def close_assignment(state: State, assignment_id: AssignmentId) -> AssignmentResponse:
    """Close an assignment (the ticket is solved or moved on); the agent's load drops."""
    record = await asyncio.to_thread(state.routing.directory.close, assignment_id)
    return assignment_response(record)


@get("/v1/assignments", tags=["routing"], **protected("predict"))
async def open_assignments(
    state: State, agent: Annotated[str | None, Parameter(max_length=255)] = None
) -> list[AssignmentResponse]:
    """Open assignments, of one agent or of all."""
    records = await asyncio.to_thread(state.routing.directory.open_assignments, agent)
    return [assignment_response(r) for r in records]


ROUTES = [
    put_team,
    list_teams,
    put_agent,
    list_agents,
    get_agent,
    set_availability,
    assign,
    close_assignment,
    open_assignments,
]
