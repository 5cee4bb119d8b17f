"""The transactional outbox and its delivery to the merchant's webhook (SPEC §4).

Events are written in the same transaction as the change they announce
(`add_event`), under an id the workflow chose, so a retried activity never
writes an event twice and a retried delivery always sends the same id and
bytes. Delivery is an activity retried by Temporal with backoff (`RETRY_HTTP`):
5xx, 408, 429, timeouts and dropped connections are retried; another 4xx marks
the event failed for an operator and does not block the order.

A 410 Gone also disables the URL (`webhook_endpoints`): later events for it are
kept in the outbox as ``held`` instead of being sent, until an operator runs
``oms webhooks enable URL``, which re-enables it and sends what was held."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import select
from sqlmodel import Session
from temporalio.exceptions import ApplicationError

from models.db import SessionFactory, insert_new, transaction
from models.enums import EventStatus
from models.jsonable import jsonable
from models.tables import OutboxEvent, WebhookEndpoint, utcnow
from outbox.webhooks import GONE, WebhookRetryable, WebhookSender, encode_event

HELD = "held"
"""Outbox status of an event not sent because its URL is disabled (410 Gone)."""

log = structlog.get_logger()


def add_event(
    session: Session,
    *,
    event_id: str,
    order_id: str | None,
    type: str,
    payload: dict[str, Any],
    at: datetime | None = None,
) -> str | None:
    """Write one outbox event unless it exists; return its id when it was new."""
    row = {
        "id": event_id,
        "order_id": order_id,
        "type": type,
        "payload": jsonable(payload),
        "status": str(EventStatus.PENDING),
        "attempts": 0,
        "created_at": at or utcnow(),
    }
    return event_id if insert_new(session, OutboxEvent.__table__, row) else None


def list_events(session: Session, *, order_id: str | None = None, limit: int = 500) -> list[OutboxEvent]:
    stmt = select(OutboxEvent).order_by(OutboxEvent.created_at, OutboxEvent.id)
    if order_id:
        stmt = stmt.where(OutboxEvent.order_id == order_id)
    return list(session.execute(stmt.limit(limit)).scalars())




async def deliver_row(factory: SessionFactory, sender: WebhookSender, row: OutboxEvent) -> str:
    """One signed attempt for one outbox row, its outcome recorded; a 410 disables the URL.

    Raises what `WebhookSender.post` raises (retryable, or a non-retryable rejection).
    """
    import asyncio

    body = encode_event(row.id, row.type, row.order_id, row.payload, row.created_at)
    try:
        await sender.post(event_id=row.id, event_type=row.type, body=body)
    except WebhookRetryable as exc:
        await asyncio.to_thread(_mark, factory, row.id, None, str(exc))
        raise
    except ApplicationError as exc:
        await asyncio.to_thread(_mark, factory, row.id, EventStatus.FAILED, str(exc))
        details = exc.details[0] if exc.details else {}
        if isinstance(details, dict) and details.get("status") == GONE:
            await asyncio.to_thread(disable_endpoint, factory, sender.url, row.id, str(exc))
        raise
    await asyncio.to_thread(_mark, factory, row.id, EventStatus.DELIVERED, None)
    return "delivered"


def _mark(factory: SessionFactory, event_id: str, status: EventStatus | None, error: str | None) -> None:
    with transaction(factory) as session:
        row = session.get(OutboxEvent, event_id)
        if row is None:
            return
        row.attempts += 1
        if status is not None:
            row.status = str(status)
        if status == EventStatus.DELIVERED:
            row.delivered_at = utcnow()
        row.last_error = error[:500] if error else None
        session.add(row)


# ------------------------------------------------------------ endpoint state


def disable_endpoint(factory: SessionFactory, url: str, event_id: str, reason: str) -> None:
    """A 410 Gone: no more deliveries to `url` until an operator re-enables it."""
    with transaction(factory) as session:
        endpoint = session.get(WebhookEndpoint, url) or WebhookEndpoint(url=url)
        if endpoint.status == "disabled":
            return
        endpoint.status = "disabled"
        endpoint.reason = f"410 Gone on event {event_id}"[:500]
        endpoint.disabled_at = utcnow()
        endpoint.disabled_by_event = event_id
        session.add(endpoint)
    log.error("webhook url disabled after 410 Gone", url=url, event_id=event_id, error=reason[:200])


def endpoints(session: Session) -> list[WebhookEndpoint]:
    return list(session.execute(select(WebhookEndpoint).order_by(WebhookEndpoint.url)).scalars())


def enable_endpoint(session: Session, url: str, *, by: str | None = None) -> bool:
    """Re-enable `url`; False when it was not disabled."""
    endpoint = session.get(WebhookEndpoint, url)
    if endpoint is None or endpoint.status != "disabled":
        return False
    endpoint.status = "enabled"
    endpoint.enabled_at = utcnow()
    endpoint.enabled_by = by
    session.add(endpoint)
    return True


def held_events(session: Session, limit: int = 10_000) -> list[OutboxEvent]:
    stmt = (
        select(OutboxEvent)
        .where(OutboxEvent.status == HELD)
        .order_by(OutboxEvent.created_at, OutboxEvent.id)
        .limit(limit)
    )
    return list(session.execute(stmt).scalars())


async def redeliver_held(factory: SessionFactory, sender: WebhookSender) -> dict[str, int]:
    """Send the events held while the URL was disabled, oldest first, one attempt each.

    A retryable failure leaves the event held (run again later); a rejection marks it
    failed; a new 410 disables the URL again and stops.
    """
    import asyncio

    def load() -> list[OutboxEvent]:
        with transaction(factory) as session:
            return held_events(session)

    counts = {"delivered": 0, "failed": 0, "still_held": 0}
    rows = await asyncio.to_thread(load)
    for n, row in enumerate(rows):
        try:
            await deliver_row(factory, sender, row)
            counts["delivered"] += 1
        except WebhookRetryable:
            await asyncio.to_thread(_set_status, factory, row.id, HELD)
            counts["still_held"] += 1
        except ApplicationError as exc:
            counts["failed"] += 1
            details = exc.details[0] if exc.details else {}
            if isinstance(details, dict) and details.get("status") == GONE:
                counts["still_held"] += len(rows) - n - 1
                break
    return counts


def _set_status(factory: SessionFactory, event_id: str, status: str) -> None:
    with transaction(factory) as session:
        row = session.get(OutboxEvent, event_id)
        if row is not None:
            row.status = status
            session.add(row)


def load_event(
    factory: SessionFactory, event_id: str, url: str | None
) -> tuple[OutboxEvent | None, WebhookEndpoint | None]:
    """An outbox event and the state of the URL it goes to (None: no webhook configured)."""
    with transaction(factory) as session:
        row = session.get(OutboxEvent, event_id)
        endpoint = session.get(WebhookEndpoint, url) if url else None
        return row, endpoint


def hold_event(factory: SessionFactory, event_id: str, endpoint: WebhookEndpoint) -> None:
    """Keep an event in the outbox, not sent, while its URL is disabled (410 Gone)."""
    with transaction(factory) as session:
        row = session.get(OutboxEvent, event_id)
        if row is not None and row.status != str(EventStatus.DELIVERED):
            row.status = HELD
            row.last_error = (
                f"not sent: {endpoint.url} is disabled since {endpoint.disabled_at} "
                f"({endpoint.reason}); `oms webhooks enable URL` re-enables it"
            )[:500]
            session.add(row)
    log.warning("webhook held: url disabled", event_id=event_id)
