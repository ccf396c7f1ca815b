"""Routes of the connectors: the systems' webhooks (authenticated by their signature, not
an API key), polling on demand, and outbound deliveries; logic lives in
``service.connectors``."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Annotated, Any

from litestar import Request, get, post
from litestar.datastructures import State
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK

from service.api.responses import errors_of, protected
from service.connectors import EventOutcome
from service.connectors.webhooks import DeliveryRecord
from service.errors import InputError, NotFoundError

__all__ = ["ROUTES"]

DELIVERY_STATUSES = ("pending", "delivered", "dead")
#: Ids are 64-bit integers in the database.
DeliveryId = Annotated[int, Parameter(ge=1, le=2**63 - 1)]


def _outcome(outcome: EventOutcome) -> dict[str, Any]:
    return dataclasses.asdict(outcome)


def _delivery(record: DeliveryRecord) -> dict[str, Any]:
    return {
        **dataclasses.asdict(record),
        "created_at": record.created_at.isoformat(),
        "next_attempt_at": record.next_attempt_at.isoformat(),
        "delivered_at": record.delivered_at.isoformat() if record.delivered_at else None,
    }


@post(
    "/v1/connectors/{system:str}/events",
    tags=["connectors"],
    status_code=HTTP_200_OK,
    security=[{}],
    responses=errors_of(400, 401, 404, 413, 429, 502, 503, 504),
)
async def receive_event(
    request: Request[Any, Any, Any], state: State, system: str
) -> dict[str, Any]:
    """A ticket system's webhook (Zammad trigger, OTOBO invoker, Jira webhook, or the
    generic signed webhook): triage a new ticket, or learn from an agent's change."""
    body = await request.body()
    headers = {key.lower(): value for key, value in request.headers.items()}
    return _outcome(await state.connectors.receive(system, headers, body))


@get("/v1/connectors", tags=["connectors"], **protected("predict"))
async def describe_connectors(state: State) -> dict[str, Any]:
    """Which connectors are enabled, their outcomes so far, and the outbound deliveries."""
    return await asyncio.to_thread(state.connectors.status)


@post(
    "/v1/connectors/{system:str}/poll",
    tags=["connectors"],
    status_code=HTTP_200_OK,
    **protected("connectors:write", 404, 502, 503, no_timeout=True),
)
async def poll_connector(state: State, system: str) -> dict[str, Any]:
    """Search the system for new tickets now and triage those not triaged yet."""
    outcomes = await state.connectors.service(system).poll_once()
    return {"system": system, "outcomes": [_outcome(o) for o in outcomes]}


@get("/v1/connectors/deliveries", tags=["connectors"], **protected("connectors:write"))
async def list_deliveries(
    state: State,
    status: str | None = Parameter(
        default=None, description="pending, delivered or dead (all when absent)."
    ),
    limit: int = Parameter(default=100, ge=1, le=10_000),
) -> dict[str, Any]:
    """Outbound webhook deliveries, newest first; `dead` ones are the dead letters."""
    if status is not None and status not in DELIVERY_STATUSES:
        raise InputError(f"status: expected one of {list(DELIVERY_STATUSES)}, found {status!r}")
    records = await asyncio.to_thread(state.connectors.outbox.deliveries, status, limit)
    return {"deliveries": [_delivery(record) for record in records]}


@post(
    "/v1/connectors/deliveries/{delivery_id:int}/replay",
    tags=["connectors"],
    status_code=HTTP_200_OK,
    **protected("connectors:write", 404),
)
async def replay_delivery(state: State, delivery_id: DeliveryId) -> dict[str, Any]:
    """Send a dead letter again: pending with fresh attempts, the same body and delivery id."""
    outbox = state.connectors.outbox
    record = await asyncio.to_thread(outbox.get, delivery_id)
    if record is None:
        raise NotFoundError(f"delivery_id: no outbound delivery {delivery_id}")
    if record.status != "dead":
        raise InputError(
            f"delivery {delivery_id}: expected a dead delivery to replay, found {record.status!r}"
        )
    # The outbox's worker sends it (now, and again on failure): one sender, no duplicates.
    await asyncio.to_thread(outbox.replay, [delivery_id])
    replayed = await asyncio.to_thread(outbox.get, delivery_id)
    assert replayed is not None
    return _delivery(replayed)


ROUTES = [receive_event, describe_connectors, poll_connector, list_deliveries, replay_delivery]
