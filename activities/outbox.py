"""The transactional outbox and its delivery to the merchant's webhook (SPEC §4).

Events are written in the same transaction as the change they announce
(`add_event`), under an id the workflow chose, so a retried activity never
writes an event twice and a retried delivery always sends the same id and
bytes. Delivery is an activity retried by Temporal with backoff (`RETRY_HTTP`):
5xx, 408, 429, timeouts and dropped connections are retried; another 4xx marks
the event failed for an operator and does not block the order.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import select
from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.webhooks import WebhookRetryable, WebhookSender, encode_event
from models.db import SessionFactory, insert_new, transaction
from models.enums import EventStatus
from models.payloads import DeliverInput
from models.tables import OutboxEvent, utcnow

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


def jsonable(value: Any) -> Any:
    """JSON-ready copy: Decimal as its string, datetime in ISO 8601 (payloads and timeline data)."""
    from decimal import Decimal

    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def list_events(session: Session, *, order_id: str | None = None, limit: int = 500) -> list[OutboxEvent]:
    stmt = select(OutboxEvent).order_by(OutboxEvent.created_at, OutboxEvent.id)
    if order_id:
        stmt = stmt.where(OutboxEvent.order_id == order_id)
    return list(session.execute(stmt.limit(limit)).scalars())


class OutboxActivities:
    """Delivery of outbox events; built once per worker with its HTTP client."""

    def __init__(self, factory: SessionFactory, sender: WebhookSender | None) -> None:
        self._factory = factory
        self._sender = sender

    @activity.defn(name="deliver_event")
    async def deliver_event(self, inp: DeliverInput) -> str:
        import asyncio

        row = await asyncio.to_thread(self._load, inp.event_id)
        if row is None:
            raise ApplicationError(f"no outbox event {inp.event_id}", type="UnknownEvent", non_retryable=True)
        if row.status == str(EventStatus.DELIVERED):
            return "delivered"
        if self._sender is None:
            return "kept"
        body = encode_event(row.id, row.type, row.order_id, row.payload, row.created_at)
        try:
            await self._sender.post(event_id=row.id, event_type=row.type, body=body)
        except WebhookRetryable as exc:
            await asyncio.to_thread(self._mark, row.id, None, str(exc))
            raise
        except ApplicationError as exc:
            await asyncio.to_thread(self._mark, row.id, EventStatus.FAILED, str(exc))
            raise
        await asyncio.to_thread(self._mark, row.id, EventStatus.DELIVERED, None)
        return "delivered"

    def _load(self, event_id: str) -> OutboxEvent | None:
        with transaction(self._factory) as session:
            return session.get(OutboxEvent, event_id)

    def _mark(self, event_id: str, status: EventStatus | None, error: str | None) -> None:
        with transaction(self._factory) as session:
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
