"""The order's row in the OMS's database, as the workflow sees it: written at every pause
(`write_state`: stage, flags, findings, lines, new timeline entries, the status-change event),
idempotently under the keys the workflow chose. Buyer data in texts is masked on the way in
(`privacy.mask.scrub`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, select

from intake.address_check import address_key
from intake.buyer import phone_key
from inventory.ledger import apply_once
from models.db import insert_new
from models.documents import (
    OrderDocument,
    created_at_problem,
    ship_by_time,
)
from models.enums import Flag
from models.errors import OmsError
from models.payloads import (
    PersistInput,
    PersistResult,
    ReleaseInput,
    ShipmentUpdateResult,
)
from models.tables import (
    ContactLog,
    Order,
    OrderFlag,
    OrderLineRow,
    TimelineEntry,
    to_utc,
    utcnow,
)
from orders.shipments import shipment_work
from outbox.store import add_event
from privacy.mask import Known, scrub
from privacy.search_keys import index_order

# Built once: write_state runs at every pause of every order (values come as parameters).
_UPDATE_ORDER = (
    Order.__table__.update()
    .where(Order.__table__.c.order_id == bindparam("b_order"))
    .values({c: bindparam(c) for c in (
        "stage", "waiting_for", "stage_since", "flags", "findings", "document", "phone_key",
        "address_key", "refund_amount", "refund_status", "cancel_reason", "updated_at",
    )})
)
_UPDATE_LINES = (
    OrderLineRow.__table__.update()
    .where(
        OrderLineRow.__table__.c.order_id == bindparam("b_order"),
        OrderLineRow.__table__.c.line_no == bindparam("b_line"),
    )
    .values(
        reserved=bindparam("b_reserved"),
        shipped=bindparam("b_shipped"),
        backordered=bindparam("b_backordered"),
        cancelled=bindparam("b_cancelled"),
    )
)


# Locked (PostgreSQL) from this read to the write: a flag raised beside the workflow in between
# (`OUTSIDE_FLAGS`) would otherwise be written over. SQLite's BEGIN IMMEDIATE serialises already.
_ORDER_STAGE = (
    select(Order.__table__.c.stage, Order.__table__.c.flags, Order.__table__.c.created_at,
           Order.__table__.c.ship_by, Order.__table__.c.ship_due)
    .where(Order.__table__.c.order_id == bindparam("b_order"))
    .with_for_update()
)
# Flags the workflow never raises nor drops: raised beside it by another writer (the shop's
# sync: the platform refused the tracking, `platforms.writeback`) and kept by every state write.
OUTSIDE_FLAGS = frozenset({str(Flag.PLATFORM_SHIP_REFUSED)})
# Written only when they change (once for an order kept before migration 0007, once when the
# order ships or is cancelled): most state writes leave the deadline index alone.
_UPDATE_SHIP_BY = (
    Order.__table__.update()
    .where(Order.__table__.c.order_id == bindparam("b_order"))
    .values(ship_by=bindparam("b_by"), ship_due=bindparam("b_due"))
)
# An order no longer to ship by its deadline (the workflow's ship-by timers stop there too).
CLOSED_STAGES = frozenset({"shipped", "completed", "cancelled"})


def ship_by_of(document: dict[str, Any]) -> datetime | None:
    """The platform's ship-by time of an order document (`ship_by`: an ISO time with its
    offset, set by a platform's sync), in UTC; None without one or with an unreadable one
    (such an order has no timer either: `workflows.order.ship_by.deadline_of`)."""
    at = ship_by_time(document.get("ship_by"))
    return at.astimezone(UTC) if at is not None else None


def ship_due(ship_by: datetime | None, stage: str) -> datetime | None:
    """The deadline the queue sorts on: the ship-by time while the order is still to ship."""
    return None if stage in CLOSED_STAGES else ship_by
_TIMELINE_SEQS = select(TimelineEntry.__table__.c.seq).where(
    TimelineEntry.__table__.c.order_id == bindparam("b_order"),
    TimelineEntry.__table__.c.seq.in_(bindparam("b_seqs", expanding=True)),
)


def write_state(session: Any, inp: PersistInput, search_key: bytes | None = None) -> PersistResult:
    """The workflow's view of the order, in the caller's transaction.

    First the warehouse events the workflow has applied (each once, under its key), so
    the order's stage and the stock it consumed land together.

    Plain table statements rather than ORM objects: this runs for every order at each
    pause, and loading the row (its whole JSON document) only to overwrite it cost
    more than the writes. Idempotent: timeline entries already there are skipped.
    """
    shipments = [
        ShipmentUpdateResult.model_validate(
            apply_once(session, u.op_key, lambda s, u=u: shipment_work(s, u))
        )
        for u in inp.shipment_updates
    ]
    snap = inp.snapshot
    event_ids: list[str] = []
    timeline = TimelineEntry.__table__
    # The row's document keeps the buyer's real phone and address (the warehouse ships to
    # them); texts written beside it (timeline, finding messages) get them masked.
    pii = Known.values(phone=snap.document.buyer.phone, detail=snap.document.address.detail)
    current = session.execute(_ORDER_STAGE, {"b_order": snap.order_id}).first()
    if current is None:  # not recorded yet (the first check records it): retry shortly
        raise RuntimeError(f"order {snap.order_id} is not recorded yet")
    stage, old_flags, created_at, old_by, old_due = current
    stage_changed = stage != snap.stage
    document = snap.document.model_dump(mode="json")
    by = ship_by_of(document)
    due = ship_due(by, snap.stage)
    if not (_same(old_by, by) and _same(old_due, due)):
        session.execute(_UPDATE_SHIP_BY, {"b_order": snap.order_id, "b_by": by, "b_due": due})
    flags = [*snap.flags, *(f for f in old_flags or [] if f in OUTSIDE_FLAGS and f not in snap.flags)]
    sync_order_flags(session, snap.order_id, created_at, old_flags or [], flags)
    session.execute(
        _UPDATE_ORDER,
        {
            "b_order": snap.order_id,
            "stage": snap.stage,
            "waiting_for": snap.waiting_for,
            "stage_since": snap.stage_since,
            "flags": flags,
            "findings": scrub([f.public() for f in snap.findings], pii),
            "document": document,
            "phone_key": phone_key(snap.document),
            "address_key": address_key(snap.document),
            "refund_amount": snap.refund_amount,
            "refund_status": snap.refund_status,
            "cancel_reason": snap.cancel_reason,
            "updated_at": utcnow(),
        },
    )
    if snap.lines:
        session.execute(
            _UPDATE_LINES,
            [
                {
                    "b_order": snap.order_id,
                    "b_line": line.line_no,
                    "b_reserved": line.reserved,
                    "b_shipped": line.shipped,
                    "b_backordered": line.backordered,
                    "b_cancelled": line.cancelled,
                }
                for line in snap.lines
            ],
        )
    seqs = [e.seq for e in inp.events]
    known: set[int] = set()
    if seqs:
        known = set(session.execute(_TIMELINE_SEQS, {"b_order": snap.order_id, "b_seqs": seqs}).scalars())
    new = [e for e in inp.events if e.seq not in known]
    if new:
        session.execute(
            timeline.insert(),
            [
                {
                    "order_id": snap.order_id,
                    "seq": e.seq,
                    "at": e.at,
                    "type": e.type,
                    "data": scrub(e.data, pii),
                }
                for e in new
            ],
        )
    for event in new:
        if event.type == "contact_outcome":
            _record_outcome(session, snap.order_id, event.data)
    if stage_changed:  # after a correction or a shipment: what the order is found by (issue 21)
        index_order(session, snap.order_id, document, created_at, search_key)
    if stage_changed and inp.status_event_id:
        created = add_event(
            session,
            event_id=inp.status_event_id,
            order_id=snap.order_id,
            type="status_change",
            payload={
                "stage": snap.stage,
                "waiting_for": snap.waiting_for,
                "flags": flags,
            },
        )
        if created:
            event_ids.append(created)
    return PersistResult(event_ids=event_ids, shipments=shipments)


def _same(stored: datetime | None, wanted: datetime | None) -> bool:
    # SQLite gives the time back naive (stored as UTC), PostgreSQL aware
    if stored is None or wanted is None:
        return stored is wanted
    return to_utc(stored) == wanted


def order_time(order: OrderDocument, submitted_at: datetime) -> datetime:
    """When the order was placed, for its row: its created_at, or when that is missing or
    implausible (an order held for it must still be listed), when it was submitted."""
    if order.created_at is None or created_at_problem(order.created_at, now=utcnow()):
        return submitted_at
    return order.created_at


def released_state(session: Any, inp: ReleaseInput, shipments: list[dict[str, Any]],
                   search_key: bytes | None = None) -> list[str]:
    """The order's state once released (when the workflow sent it), with the ids of its pick lists."""
    if inp.state is None:
        return []
    events = [
        e.model_copy(update={"data": {**e.data, "shipments": [s["id"] for s in shipments]}})
        if e.seq == inp.released_entry_seq
        else e
        for e in inp.state.events
    ]
    return write_state(session, inp.state.model_copy(update={"events": events}), search_key).event_ids


def sync_order_flags(
    session: Any, order_id: str, created_at: datetime, old: list[str], new: list[str]
) -> None:
    """Keep `order_flags` (the list's flag index) in step with the order's flags; nothing to
    write when they did not change, which is most state writes."""
    gone = set(old) - set(new)
    added = [f for f in dict.fromkeys(new) if f not in old]
    table = OrderFlag.__table__
    if gone:
        session.execute(
            table.delete().where(table.c.order_id == order_id, table.c.flag.in_(sorted(gone)))
        )
    for flag in added:
        insert_new(session, table, {"order_id": order_id, "flag": flag, "created_at": created_at})


def _record_outcome(session: Any, order_id: str, data: dict[str, Any]) -> None:
    # The contact the confirmation answered: a later contact may already be written
    # by the time this timeline batch is persisted.
    stmt = select(ContactLog).where(ContactLog.order_id == order_id)
    if data.get("contact_no") is not None:
        stmt = stmt.where(ContactLog.contact_no == data["contact_no"])
    last = session.execute(stmt.order_by(ContactLog.contact_no.desc())).scalars().first()
    if last is not None:
        last.outcome = "confirmed"
        last.note = data.get("note")
        session.add(last)


class FlagNotCleared(OmsError, ValueError):
    """A flag a clerk cannot clear here: not one raised beside the workflow, not on the order,
    or no such order (`status`: the HTTP status that says which)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def clear_outside_flag(session: Any, order_id: str, flag: str, *, by: str, note: str | None,
                       now: datetime | None = None) -> list[str]:
    """A clerk settled what an outside flag asked for (a write-back the platform refused,
    settled on the platform): the flag goes, and the order's timeline says who and why.
    Only `OUTSIDE_FLAGS`: the workflow's own flags go as the order moves on. Answers the
    order's flags."""
    from models.db import is_postgres
    from platforms.writeback import drop_flag, entry_beside

    if flag not in OUTSIDE_FLAGS:
        raise FlagNotCleared(f"flag: {flag!r} is not cleared by hand; only "
                             f"{', '.join(sorted(OUTSIDE_FLAGS))} (the order's own flags go as it moves on)")
    order = session.get(Order, order_id, with_for_update=is_postgres(session))
    if order is None:
        raise FlagNotCleared(f"order_id: no order {order_id!r}", 404)
    if flag not in (order.flags or []):
        raise FlagNotCleared(f"flag: {order_id} is not flagged {flag}", 409)
    drop_flag(session, order, flag)
    entry_beside(session, order, "flag_cleared", {"flag": flag, "by": by, "note": note or None},
                 now or datetime.now(UTC), phones_in_text=True)
    session.flush()
    return list(order.flags)
