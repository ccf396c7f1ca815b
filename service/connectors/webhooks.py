"""Signed webhooks: checking what systems post to us, and posting our results out.

Inbound, the generic webhook carries ``X-Triage-Signature: t=<unix time>,v1=<hex>``, the
HMAC-SHA256 of ``"<t>." + body`` under the shared secret; the time must be within the
tolerance, so that a captured request cannot be replayed later. Zammad and Jira sign with
``X-Hub-Signature: sha1=<hex>`` / ``sha256=<hex>`` over the body. Every comparison is
constant-time.

Outbound, each delivery is a row of ``webhook_deliveries``, committed before the first
attempt: a failed attempt is retried with doubling back-off, and after the last one the
delivery stays as a dead letter until it is replayed (``python -m service connectors
replay`` or ``POST /v1/connectors/deliveries/{id}/replay``). Delivery is at least once;
receivers recognise a repeat by ``X-Triage-Delivery``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from service.errors import UnauthorizedError
from service.settings import WebhookSettings
from service.storage.tables import WebhookDelivery, utc_now

__all__ = [
    "SIGNATURE_HEADER",
    "DeliveryRecord",
    "Outbox",
    "sign",
    "verify_hub_signature",
    "verify_signature",
]

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Triage-Signature"
PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"


def _digest(secret: str, message: bytes, algorithm: str = "sha256") -> str:
    return hmac.new(secret.encode("utf-8"), message, algorithm).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The ``X-Triage-Signature`` value of ``body``."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    return f"t={timestamp},v1={_digest(secret, f'{timestamp}.'.encode() + body)}"


def verify_signature(
    secret: str, body: bytes, header: str | None, tolerance_s: float, now: float | None = None
) -> None:
    """Raise ``UnauthorizedError`` unless ``header`` signs ``body`` under ``secret`` and its
    time is within ``tolerance_s`` of ``now``."""
    expected = f"{SIGNATURE_HEADER}: expected t=<unix time>,v1=<hex HMAC-SHA256 of '<t>.' + body>"
    if not header:
        raise UnauthorizedError(f"{expected}, found no such header")
    parts = dict(part.strip().partition("=")[::2] for part in header.split(","))
    if not parts.get("t", "").isdigit() or not parts.get("v1"):
        raise UnauthorizedError(f"{expected}, found a header without t= and v1=")
    skew = abs((time.time() if now is None else now) - int(parts["t"]))
    if skew > tolerance_s:
        raise UnauthorizedError(
            f"{SIGNATURE_HEADER}: expected a time within {tolerance_s:g} s of this server's "
            f"clock, found one {skew:.0f} s off; sign each request when it is sent"
        )
    wanted = _digest(secret, f"{parts['t']}.".encode() + body)
    if not hmac.compare_digest(wanted, parts["v1"]):
        raise UnauthorizedError(
            f"{SIGNATURE_HEADER}: the signature does not match the body; sign the exact bytes "
            "sent with the shared secret (TRIAGE_WEBHOOK_INBOUND_SECRET)"
        )


def verify_hub_signature(
    secret: str, body: bytes, header: str | None, algorithm: str, variable: str
) -> None:
    """``X-Hub-Signature: <algorithm>=<hex HMAC of the body>`` (Zammad: sha1, Jira: sha256)."""
    expected = f"X-Hub-Signature: expected {algorithm}=<hex HMAC of the body under {variable}>"
    if not header:
        raise UnauthorizedError(f"{expected}, found no such header; set the secret in the webhook")
    scheme, _, value = header.partition("=")
    if scheme.strip().lower() != algorithm:
        raise UnauthorizedError(f"{expected}, found a {scheme.strip()!r} signature")
    if not hmac.compare_digest(_digest(secret, body, algorithm), value.strip()):
        raise UnauthorizedError(
            f"{expected}, found a signature that does not match; the secret here and in the "
            "system's webhook differ"
        )


@dataclass(frozen=True)
class DeliveryRecord:
    id: int
    event: str
    url: str
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any]


def _record(row: WebhookDelivery) -> DeliveryRecord:
    return DeliveryRecord(
        row.id,
        row.event,
        row.url,
        row.status,
        row.attempts,
        row.last_error,
        row.created_at,
        row.next_attempt_at,
        row.delivered_at,
        json.loads(row.payload),
    )


class Outbox:
    """Outbound deliveries: stored, attempted, retried, dead-lettered, replayed."""

    def __init__(self, engine: Engine, settings: WebhookSettings) -> None:
        self.engine = engine
        self.settings = settings
        self._client: httpx.AsyncClient | None = None
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _notify(self) -> None:
        """Wake the worker; callable from any thread (writes run in worker threads)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    @property
    def enabled(self) -> bool:
        return bool(self.settings.outbound_url)

    def enqueue(self, event: str, payload: Mapping[str, Any]) -> int | None:
        """Store a delivery of ``payload`` to the configured URL; None when there is none."""
        if not self.enabled:
            return None
        row = WebhookDelivery(
            event=event,
            url=self.settings.outbound_url,
            payload=json.dumps(payload, ensure_ascii=False, sort_keys=True),
            status=PENDING,
            attempts=0,
            created_at=utc_now(),
            next_attempt_at=utc_now(),
        )
        with Session(self.engine) as session, session.begin():
            session.add(row)
            session.flush()
            delivery_id = row.id
        self._notify()
        return delivery_id

    def deliveries(self, status: str | None = None, limit: int = 100) -> list[DeliveryRecord]:
        query = select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(limit)
        if status:
            query = query.where(WebhookDelivery.status == status)
        with Session(self.engine) as session:
            return [_record(row) for row in session.scalars(query)]

    def counts(self) -> dict[str, int]:
        """Deliveries per status."""
        query = select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)
        with Session(self.engine) as session:
            return {status: int(count) for status, count in session.execute(query)}

    def get(self, delivery_id: int) -> DeliveryRecord | None:
        with Session(self.engine) as session:
            row = session.get(WebhookDelivery, delivery_id)
            return None if row is None else _record(row)

    def replay(self, ids: Sequence[int] | None = None) -> list[int]:
        """Make dead deliveries (those of ``ids``, or all) pending again with fresh attempts."""
        query = select(WebhookDelivery.id).where(WebhookDelivery.status == DEAD)
        if ids is not None:
            query = query.where(WebhookDelivery.id.in_(list(ids)))
        with Session(self.engine) as session, session.begin():
            chosen = list(session.scalars(query))
            if chosen:
                session.execute(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.id.in_(chosen))
                    .values(status=PENDING, attempts=0, next_attempt_at=utc_now())
                )
        if chosen:
            logger.info("replaying %d dead webhook deliveries", len(chosen))
            self._notify()
        return chosen

    async def deliver_due(self) -> int:
        """Attempt every pending delivery that is due; returns how many were delivered."""
        with Session(self.engine) as session:
            due = list(
                session.scalars(
                    select(WebhookDelivery.id)
                    .where(
                        WebhookDelivery.status == PENDING,
                        WebhookDelivery.next_attempt_at <= utc_now(),
                    )
                    .order_by(WebhookDelivery.id)
                )
            )
        delivered = 0
        for delivery_id in due:
            delivered += await self.attempt(delivery_id)
        return delivered

    async def attempt(self, delivery_id: int) -> bool:
        """One attempt; on failure the next is scheduled, or the delivery goes dead."""
        record = await asyncio.to_thread(self.get, delivery_id)
        if record is None or record.status != PENDING:
            return False
        body = json.dumps(record.payload, ensure_ascii=False, sort_keys=True).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "X-Triage-Event": record.event,
            "X-Triage-Delivery": str(record.id),
            SIGNATURE_HEADER: sign(self.settings.outbound_secret, body),
        }
        error: str | None = None
        try:
            answer = await self._http().post(record.url, content=body, headers=headers)
            if not answer.is_success:
                error = f"HTTP {answer.status_code}: {answer.text[:200]}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        await asyncio.to_thread(self._settle, record, error)
        return error is None

    def _settle(self, record: DeliveryRecord, error: str | None) -> None:
        attempts = record.attempts + 1
        with Session(self.engine) as session, session.begin():
            row = session.get(WebhookDelivery, record.id)
            if row is None:
                return
            row.attempts, row.last_error = attempts, error
            if error is None:
                row.status, row.delivered_at = DELIVERED, utc_now()
                logger.info("webhook delivery %d (%s) delivered", record.id, record.event)
            elif attempts >= self.settings.max_attempts:
                row.status = DEAD
                logger.warning(
                    "webhook delivery %d (%s) failed %d times, last %s; kept as a dead letter, "
                    "replay it with `python -m service connectors replay %d`",
                    record.id,
                    record.event,
                    attempts,
                    error,
                    record.id,
                )
            else:
                delay = self.settings.backoff_s * 2 ** (attempts - 1)
                row.next_attempt_at = utc_now() + timedelta(seconds=delay)
                logger.info(
                    "webhook delivery %d failed (%s); attempt %d of %d in %.1f s",
                    record.id,
                    error,
                    attempts + 1,
                    self.settings.max_attempts,
                    delay,
                )

    def _next_due_in(self) -> float | None:
        with Session(self.engine) as session:
            moment = session.scalar(
                select(WebhookDelivery.next_attempt_at)
                .where(WebhookDelivery.status == PENDING)
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(1)
            )
        if moment is None:
            return None
        return max(0.0, (moment - utc_now()).total_seconds())

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.settings.timeout_s)
        return self._client

    async def _run(self) -> None:
        while True:
            # Cleared first: a delivery stored while this round runs wakes the next one.
            self._wake.clear()
            try:
                await self.deliver_due()
                wait = await asyncio.to_thread(self._next_due_in)
            except Exception:  # the worker must outlive a passing database error
                logger.exception("webhook delivery failed; retrying")
                wait = 5.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=60.0 if wait is None else wait)

    def start(self) -> None:
        """Deliver in the background, including what was pending at the last shutdown."""
        if self.enabled and self._worker is None:
            self._loop = asyncio.get_running_loop()
            self._worker = asyncio.create_task(self._run(), name="webhook-outbox")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        self._loop = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None
