"""Buyer data at rest in the OMS's own database, purged when it is old (masked on the way in by
`privacy.mask.scrub`).

* `purge_pii`: ``oms purge-pii --older-than P90D``. For every order that ended (completed
  or cancelled) longer ago than that, and was not purged yet: the buyer's name, phone and
  address detail are masked in the order's document, every text that quotes them (finding
  messages, timeline entries, contact log, outbox payloads, pick lists, refund and cancel
  reasons) and phone numbers in the remarks; the search keys derived from phone and
  address are cleared (they count orders in the fraud window, which is long past). The
  order gets a timeline entry ``pii_purged`` and its ``pii_purged_at``; a second run finds
  nothing left to do. Stages, lines, money, stock, shipments and tracking stay as they
  were, so status and the reports read purged orders as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import func, select

from models.db import SessionFactory, is_postgres, transaction
from models.tables import (
    ContactLog,
    Order,
    OutboxEvent,
    Refund,
    Shipment,
    TimelineEntry,
    utcnow,
)
from privacy.mask import (
    Known,
    mask_address,
    mask_name,
    mask_phone,
    scrub,
    scrub_phones,
)
from privacy.search_keys import forget_buyer

log = structlog.get_logger()

ENDED_STAGES = ("completed", "cancelled")


# ------------------------------------------------------------------- purging


@dataclass
class PurgeResult:
    cutoff: datetime
    orders: list[str] = field(default_factory=list)


def purge_pii(
    factory: SessionFactory,
    older_than: timedelta,
    *,
    now: datetime | None = None,
    batch: int = 200,
) -> PurgeResult:
    """Mask the buyer data of orders that ended before ``now - older_than`` (module doc)."""
    if older_than < timedelta(0):
        raise ValueError("older_than must not be negative")
    now = now or utcnow()
    result = PurgeResult(cutoff=now - older_than)
    orders = Order.__table__
    ended = func.coalesce(orders.c.stage_since, orders.c.updated_at)  # when it became final
    while True:
        with transaction(factory) as session:
            ids = list(
                session.execute(
                    select(orders.c.order_id)
                    .where(
                        orders.c.stage.in_(ENDED_STAGES),
                        orders.c.pii_purged_at.is_(None),
                        ended < result.cutoff,
                    )
                    .order_by(ended, orders.c.order_id)
                    .limit(batch)
                ).scalars()
            )
            for order_id in ids:
                _purge_one(session, order_id, now)
        result.orders.extend(ids)
        if len(ids) < batch:
            break
    log.info("pii purged", orders=len(result.orders), cutoff=result.cutoff.isoformat())
    return result


def _purge_one(session: Any, order_id: str, now: datetime) -> None:
    order = session.get(Order, order_id, with_for_update=is_postgres(session))
    if order is None or order.pii_purged_at is not None:
        return
    known = Known.of(order.document, name=True)
    order.document = _masked_document(order.document, known)
    order.findings = scrub(order.findings, known)
    order.phone_key = None
    order.address_key = None
    forget_buyer(session, order_id)  # the search index's hashes of the name and phone (issue 21)
    if order.cancel_reason:
        order.cancel_reason = known.text(order.cancel_reason)
    order.pii_purged_at = now
    session.add(order)
    for entry in _rows(session, TimelineEntry, TimelineEntry.order_id == order_id):
        entry.data = scrub(entry.data, known, phones_in_text=True)
        session.add(entry)
    for contact in _rows(session, ContactLog, ContactLog.order_id == order_id):
        contact.text = scrub_phones(known.text(contact.text))
        if contact.note:
            contact.note = scrub_phones(known.text(contact.note))
        session.add(contact)
    for event in _rows(session, OutboxEvent, OutboxEvent.order_id == order_id):
        event.payload = scrub(event.payload, known, phones_in_text=True)
        session.add(event)
    for shipment in _rows(session, Shipment, Shipment.order_id == order_id):
        shipment.pick_list = scrub(shipment.pick_list, known, phones_in_text=True)
        session.add(shipment)
    for refund in _rows(session, Refund, Refund.order_id == order_id):
        refund.reason = known.text(refund.reason)
        session.add(refund)
    seq = session.execute(
        select(func.max(TimelineEntry.seq)).where(TimelineEntry.order_id == order_id)
    ).scalar_one()
    session.add(
        TimelineEntry(
            order_id=order_id,
            seq=(seq or 0) + 1,
            at=now,
            type="pii_purged",
            data={"masked": ["buyer.name", "buyer.phone", "address.detail"]},
        )
    )


def _rows(session: Any, table: Any, condition: Any) -> Iterable[Any]:
    return list(session.execute(select(table).where(condition)).scalars())


def _masked_document(document: Mapping[str, Any], known: Known) -> dict[str, Any]:
    doc = dict(document)
    buyer = dict(doc.get("buyer") or {})
    if buyer.get("name"):
        buyer["name"] = mask_name(buyer["name"])
    if buyer.get("phone"):
        buyer["phone"] = mask_phone(buyer["phone"])
    doc["buyer"] = buyer
    address = dict(doc.get("address") or {})
    if address.get("detail"):
        address["detail"] = mask_address(address["detail"])
    doc["address"] = address
    if isinstance(doc.get("remarks"), str):
        doc["remarks"] = scrub_phones(known.text(doc["remarks"]))
    return doc
