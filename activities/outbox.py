"""Outbox activities: the delivery of one outbox event to the merchant's webhook, a thin adapter
over `outbox.store` and `outbox.webhooks` (SPEC §4).
"""

from __future__ import annotations

from temporalio import activity

from models.db import SessionFactory
from models.enums import EventStatus
from models.errors import ErrorType, application_error
from models.payloads import DeliverInput
from outbox.store import HELD, deliver_row, hold_event, load_event
from outbox.webhooks import WebhookSender


class OutboxActivities:
    """Delivery of outbox events; built once per worker with its HTTP client."""

    def __init__(self, factory: SessionFactory, sender: WebhookSender | None) -> None:
        self._factory = factory
        self._sender = sender

    @activity.defn(name="deliver_event")
    async def deliver_event(self, inp: DeliverInput) -> str:
        import asyncio

        row, endpoint = await asyncio.to_thread(
            load_event, self._factory, inp.event_id, self._sender.url if self._sender else None
        )
        if row is None:
            raise application_error(ErrorType.UNKNOWN_EVENT, f"no outbox event {inp.event_id}")
        if row.status == str(EventStatus.DELIVERED):
            return "delivered"
        if self._sender is None:
            return "kept"
        if endpoint is not None and endpoint.status == "disabled":
            await asyncio.to_thread(hold_event, self._factory, row.id, endpoint)
            return HELD
        return await deliver_row(self._factory, self._sender, row)
