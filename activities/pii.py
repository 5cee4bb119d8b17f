"""Buyer data at rest in the OMS's own database: masking on the way in, purging when it is old.

* `scrub`: what the workflow's state writer (`activities.orders.write_state`) applies to
  timeline entries and finding messages before they are written: values under a phone or
  address-detail key are masked, and the order's own phone and address detail are masked
  wherever they appear inside a text. The order row's document keeps the real values
  (the warehouse ships to them) until it is purged.
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

from activities.messages import mask_address, mask_name, mask_phone, scrub_phones
from models.db import SessionFactory, transaction
from models.tables import (
    ContactLog,
    Order,
    OutboxEvent,
    Refund,
    Shipment,
    TimelineEntry,
    utcnow,
)
from reads.search import forget_buyer

log = structlog.get_logger()

ENDED_STAGES = ("completed", "cancelled")
PHONE_KEYS = frozenset({"phone", "buyer_phone"})
DETAIL_KEYS = frozenset({"detail", "address_detail"})
FREE_TEXT_KEYS = frozenset({"remarks", "text", "note"})


# ------------------------------------------------------------------- masking


@dataclass(frozen=True)
class Known:
    """The buyer's values to find in texts, with what each is replaced by."""

    pairs: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, document: Mapping[str, Any] | None, *, name: bool = False) -> Known:
        doc = document or {}
        buyer = doc.get("buyer") or {}
        address = doc.get("address") or {}
        return cls.values(
            phone=buyer.get("phone"),
            detail=address.get("detail"),
            name=buyer.get("name") if name else None,
        )

    @classmethod
    def values(cls, *, phone: Any, detail: Any, name: Any = None) -> Known:
        pairs: list[tuple[str, str]] = []
        if isinstance(phone, str) and phone.strip():
            pairs.append((phone.strip(), mask_phone(phone)))
            digits = "".join(ch for ch in phone if ch.isascii() and ch.isdigit())
            if len(digits) >= 7 and digits != phone.strip():
                pairs.append((digits, mask_phone(digits)))
        if isinstance(detail, str) and len(detail.strip()) > 3:
            pairs.append((detail.strip(), mask_address(detail)))
        if isinstance(name, str) and name.strip():
            pairs.append((name.strip(), mask_name(name)))
        # Longest first: a detail that contains the phone is replaced whole.
        pairs.sort(key=lambda pair: len(pair[0]), reverse=True)
        return cls(tuple(pairs))

    def text(self, value: str) -> str:
        for real, masked in self.pairs:
            if real in value:
                value = value.replace(real, masked)
        return value


def scrub(value: Any, known: Known, *, key: str | None = None, phones_in_text: bool = False) -> Any:
    """A copy of `value` (JSON-like) with phones and address details masked (see module doc)."""
    if isinstance(value, dict):
        return {k: scrub(v, known, key=str(k), phones_in_text=phones_in_text) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, known, key=key, phones_in_text=phones_in_text) for v in value]
    if not isinstance(value, str) or not value:
        return value
    if key in PHONE_KEYS or key in DETAIL_KEYS:
        if "*" in value:  # masked already (the workflow masks what it records of a correction)
            return value
        return mask_phone(value) if key in PHONE_KEYS else mask_address(value)
    value = known.text(value)
    if phones_in_text and key in FREE_TEXT_KEYS:
        value = scrub_phones(value)
    return value


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
    order = session.get(Order, order_id, with_for_update=session.get_bind().dialect.name == "postgresql")
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
