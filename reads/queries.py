"""Read side for the CLI and the report: orders, stock, events, straight from the database.

The database is the source of truth for lists and reports; search attributes
are for filtering in the Web UI and may lag a little.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, exists, func, literal, select, tuple_
from sqlmodel import Session, col

from inventory.ledger import LedgerError, move
from models.documents import CatalogItem, StockItem, WarehouseItem
from models.enums import MovementKind
from models.errors import OmsError
from models.tables import (
    CatalogRow,
    ContactLog,
    Order,
    OrderFlag,
    OrderLineRow,
    Shipment,
    StockLevel,
    TimelineEntry,
    Transfer,
    WarehouseRow,
    to_utc,
)


def _iso(value: Any) -> str | None:
    return to_utc(value).isoformat() if value is not None else None


def _money(value: Decimal | None) -> str | None:
    return None if value is None else f"{Decimal(value):.2f}"


def order_status(session: Session, order_id: str) -> dict[str, Any] | None:
    """The `status --json` object of SPEC §5.3."""
    order = session.get(Order, order_id)
    if order is None:
        return None
    lines = session.execute(
        select(OrderLineRow).where(OrderLineRow.order_id == order_id).order_by(OrderLineRow.line_no)
    ).scalars()
    shipments = session.execute(
        select(Shipment).where(Shipment.order_id == order_id).order_by(Shipment.shipment_no)
    ).scalars()
    timeline = session.execute(
        select(TimelineEntry).where(TimelineEntry.order_id == order_id).order_by(TimelineEntry.seq)
    ).scalars()
    contacts = session.execute(
        select(ContactLog).where(ContactLog.order_id == order_id).order_by(ContactLog.contact_no)
    ).scalars()
    transfers = session.execute(select(Transfer).where(Transfer.order_id == order_id)).scalars()
    status = {
        "order_id": order.order_id,
        "stage": order.stage,
        "waiting_for": order.waiting_for,
        "stage_since": _iso(order.stage_since),
        "platform": order.platform,
        "created_at": _iso(order.created_at),
        "flags": list(order.flags or []),
        "findings": list(order.findings or []),
        "lines": [
            {
                "line_no": li.line_no,
                "sku": li.sku,
                "qty": li.qty,
                "reserved": li.reserved,
                "shipped": li.shipped,
                "backordered": li.backordered,
                "cancelled": li.cancelled,
            }
            for li in lines
        ],
        "shipments": [
            {
                "id": s.id,
                "shipment_no": s.shipment_no,
                "warehouse": s.warehouse,
                "status": s.status,
                "carrier": s.carrier,
                "tracking_no": s.tracking_no,
                "pick_list": s.pick_list,
            }
            for s in shipments
        ],
        "transfers": [
            {"id": t.id, "sku": t.sku, "from": t.from_warehouse, "to": t.to_warehouse, "qty": t.qty, "status": t.status}
            for t in transfers
        ],
        "refund": (
            {"amount": _money(order.refund_amount), "status": order.refund_status}
            if order.refund_amount is not None
            else None
        ),
        "cancel_reason": order.cancel_reason,
        "remarks": (order.document or {}).get("remarks"),
        "contacts": [
            {"no": c.contact_no, "channel": c.channel, "at": _iso(c.at), "text": c.text,
             "reminder": c.reminder, "outcome": c.outcome, "note": c.note}
            for c in contacts
        ],
        "events": [{"at": _iso(e.at), "type": e.type, **(e.data or {})} for e in timeline],
    }
    from shipping.parcels import add_to_status  # the shipping desk: parcels, carrier, waybill

    return add_to_status(session, status)


class BadCursor(OmsError, ValueError):
    """A `cursor` this code did not issue (or one for another list)."""


def encode_cursor(created_at: datetime, key: str) -> str:
    """An opaque keyset position: the last item's (created_at, id), base64url."""
    raw = json.dumps([to_utc(created_at).isoformat(), key], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        if len(cursor) > 400:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, key = json.loads(raw)
        if not isinstance(at, str) or not isinstance(key, str) or not 0 < len(key) <= 200:
            raise ValueError("not a position")
        when = datetime.fromisoformat(at)
        if when.tzinfo is None:
            raise ValueError("no timezone")
        return to_utc(when), key
    except (ValueError, TypeError, UnicodeError, binascii.Error, OverflowError) as exc:
        raise BadCursor("not a cursor of this list: pass next_cursor as it was given") from exc


def encode_due_cursor(due: datetime | None, created_at: datetime, key: str) -> str:
    """A keyset position in the deadline order: the last item's (ship_due, created_at, id).

    Tagged, so that a cursor of one order is refused by the other (`BadCursor`)."""
    raw = json.dumps(["due", _iso(due), to_utc(created_at).isoformat(), key], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_due_cursor(cursor: str) -> tuple[datetime | None, datetime, str]:
    try:
        if len(cursor) > 400:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        tag, due, at, key = json.loads(raw)
        if tag != "due" or not isinstance(at, str) or not isinstance(key, str) or not 0 < len(key) <= 200:
            raise ValueError("not a position")
        if due is not None and not isinstance(due, str):
            raise ValueError("not a deadline")
        times = [datetime.fromisoformat(t) if t is not None else None for t in (due, at)]
        if any(t is not None and t.tzinfo is None for t in times):
            raise ValueError("no timezone")
        return (to_utc(times[0]) if times[0] else None), to_utc(times[1]), key  # type: ignore[arg-type]
    except (ValueError, TypeError, UnicodeError, binascii.Error, OverflowError) as exc:
        raise BadCursor("not a cursor of this list: pass next_cursor as it was given") from exc


_LIST_COLUMNS = (
    Order.order_id,
    Order.stage,
    Order.waiting_for,
    Order.flags,
    Order.created_at,
    Order.stage_since,
    Order.ship_by,
    Order.ship_due,
)

# The orders of a list: oldest first (SPEC §5.6), or by deadline (issue 19, the console's queue).
SORTS = ("created", "ship_by")


def list_item(row: Any, findings: bool = False) -> dict[str, Any]:
    """One order of a list, as `list --json` and `GET /v1/orders` give it."""
    item = {
        "order_id": row.order_id,
        "stage": row.stage,
        "waiting_for": row.waiting_for,
        "flags": list(row.flags or []),
        "created_at": _iso(row.created_at),
        "stage_since": _iso(row.stage_since),
        "ship_by": _iso(row.ship_by),
    }
    if findings:
        item["findings"] = list(row.findings or [])
    return item


def page_orders(
    session: Session,
    *,
    stage: str | None = None,
    waiting_for: str | None = None,
    flag: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
    findings: bool = False,
    sort: str = "created",
) -> tuple[list[dict[str, Any]], str | None]:
    """One keyset page of orders, oldest first, and the cursor of the next (None at the end).

    Every filter and the order are in SQL on an index that ends in (created_at, order_id):
    the cost of a page does not grow with the number of orders kept. The flag filter reads
    `order_flags` (one row per order and flag) in the same order. Orders that arrive while a
    client pages are never seen twice; an order sorts by its own created_at.

    `sort="ship_by"` is the queue's order (SPEC §3.9): the orders still to ship by a platform's
    deadline first, soonest (so the late ones) first, then every other order oldest first.
    """
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}")
    columns: list[Any] = list(_LIST_COLUMNS) + ([Order.findings] if findings else [])
    if sort == "ship_by":
        return _page_by_deadline(session, columns, stage=stage, waiting_for=waiting_for, flag=flag,
                                 limit=limit, cursor=cursor, findings=findings)
    stmt, key_at, key_id = _by_age(columns, stage=stage, waiting_for=waiting_for, flag=flag)
    after = decode_cursor(cursor) if cursor else None
    if after is not None:
        stmt = stmt.where(tuple_(key_at, key_id) > tuple_(_at(after[0]), after[1]))
    stmt = stmt.order_by(key_at, key_id).limit(limit + 1)
    rows = session.execute(stmt).all()
    more = len(rows) > limit
    rows = rows[:limit]
    items = [list_item(row, findings) for row in rows]
    next_cursor = encode_cursor(rows[-1].created_at, rows[-1].order_id) if more and rows else None
    return items, next_cursor


def _at(value: datetime) -> Any:
    return literal(value, DateTime(timezone=True))


def _by_age(columns: list[Any], *, stage: str | None, waiting_for: str | None,
            flag: str | None) -> tuple[Any, Any, Any]:
    """The list's statement and its keyset columns, oldest first: a flag's list reads
    `order_flags` in the same (created_at, order_id) order."""
    if flag:
        key_at, key_id = OrderFlag.created_at, OrderFlag.order_id
        stmt = (
            select(*columns)
            .select_from(OrderFlag)
            .join(Order, Order.order_id == OrderFlag.order_id)
            .where(OrderFlag.flag == flag)
        )
    else:
        key_at, key_id = Order.created_at, Order.order_id
        stmt = select(*columns)
    if stage:
        stmt = stmt.where(Order.stage == stage)
    if waiting_for:
        stmt = stmt.where(Order.waiting_for == waiting_for)
    return stmt, key_at, key_id


def _page_by_deadline(session: Session, columns: list[Any], *, stage: str | None,
                      waiting_for: str | None, flag: str | None, limit: int, cursor: str | None,
                      findings: bool) -> tuple[list[dict[str, Any]], str | None]:
    """Two index ranges one after the other: the orders with a deadline (`ship_due`), by it,
    then those without, oldest first; a page may end the first and begin the second.

    `ship_due` is NULL once an order shipped or was cancelled (`orders.store.ship_due`), so
    the first range holds only orders still to ship, read on an index that begins with the
    filter (waiting_for, stage) and goes on (ship_due, created_at, order_id); a flag is then
    checked by its row's key. The second range is the same index at ship_due NULL (a flag's:
    its own index, skipping the flagged orders still to ship). Neither grows with the orders
    kept. An order that ships while a client pages moves from the first range to the second
    (and may be listed twice), as an order that changes stage leaves a stage's list."""
    from orders.store import CLOSED_STAGES

    due, due_at, due_id = decode_due_cursor(cursor) if cursor else (None, None, None)
    rows: list[Any] = []
    if (cursor is None or due is not None) and stage not in CLOSED_STAGES:
        first = select(*columns).where(Order.ship_due.is_not(None))  # type: ignore[union-attr]
        if stage:
            first = first.where(Order.stage == stage)
        if waiting_for:
            first = first.where(Order.waiting_for == waiting_for)
        if flag:
            first = first.where(exists().where(OrderFlag.order_id == Order.order_id,
                                               OrderFlag.flag == flag))
        if due is not None:
            first = first.where(tuple_(Order.ship_due, Order.created_at, Order.order_id)
                                > tuple_(_at(due), _at(due_at), due_id))  # type: ignore[arg-type]
        first = first.order_by(Order.ship_due, Order.created_at, Order.order_id).limit(limit + 1)
        rows = list(session.execute(first).all())
    if len(rows) <= limit:  # the first range ends on this page: the others follow
        rest, key_at, key_id = _by_age(columns, stage=stage, waiting_for=waiting_for, flag=flag)
        rest = rest.where(Order.ship_due.is_(None))  # type: ignore[union-attr]
        if cursor is not None and due is None:
            rest = rest.where(tuple_(key_at, key_id) > tuple_(_at(due_at), due_id))  # type: ignore[arg-type]
        rows += session.execute(rest.order_by(key_at, key_id).limit(limit + 1 - len(rows))).all()
    more = len(rows) > limit
    rows = rows[:limit]
    items = [list_item(row, findings) for row in rows]
    last = rows[-1] if more and rows else None
    next_cursor = encode_due_cursor(last.ship_due, last.created_at, last.order_id) if last else None
    return items, next_cursor


def list_orders(
    session: Session,
    *,
    stage: str | None = None,
    flag: str | None = None,
    waiting_for: str | None = None,
    limit: int = 1000,
    cursor: str | None = None,
    sort: str = "created",
) -> list[dict[str, Any]]:
    """Oldest first (or by deadline): one page; `page_orders` gives the next cursor too."""
    out, _next = page_orders(
        session, stage=stage, flag=flag, waiting_for=waiting_for, limit=limit, cursor=cursor,
        sort=sort,
    )
    if stage == "backordered" and out:
        add_waiting_skus(session, out)
    return out


def add_waiting_skus(session: Session, out: list[dict[str, Any]]) -> None:
    """What each backordered order of `out` waits for: "SKU@WAREHOUSE xQTY"."""
    from models.tables import Backorder

    waits: dict[str, list[str]] = {}
    for b in session.execute(
        select(Backorder).where(col(Backorder.order_id).in_([o["order_id"] for o in out]),
                                Backorder.status == "waiting")
    ).scalars():
        waits.setdefault(b.order_id, []).append(f"{b.sku}@{b.warehouse} x{b.qty_wanted - b.qty_filled}")
    for o in out:
        o["waiting_skus"] = waits.get(o["order_id"], [])


def waiting_counts(session: Session, *, cap: int | None = None) -> dict[str, int]:
    """How many orders wait for each kind of thing (an index range per kind, not a scan).

    With `cap`, each kind is counted only up to `cap` (the work queue's tabs show "1000+"):
    the cost then stays the same however many orders wait.
    """
    if cap is None:
        rows = session.execute(
            select(Order.waiting_for, func.count())
            .where(Order.waiting_for.is_not(None))  # type: ignore[union-attr]
            .group_by(Order.waiting_for)
        ).all()
        return {str(kind): int(n) for kind, n in rows}
    from sqlalchemy import union_all

    from models.enums import WaitingFor

    parts = [
        select(literal(str(kind)).label("kind"), func.count().label("n")).select_from(
            select(Order.order_id).where(Order.waiting_for == str(kind)).limit(cap).subquery()
        )
        for kind in WaitingFor
    ]
    rows = session.execute(union_all(*parts)).all()  # one round trip for every tab
    return {str(kind): int(n) for kind, n in rows if n}


def page_events(
    session: Session, *, order_id: str | None = None, limit: int = 100, cursor: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """One keyset page of the outbox in (created_at, id) order, as `events --json` prints it."""
    from models.tables import OutboxEvent

    after = decode_cursor(cursor) if cursor else None
    stmt = select(OutboxEvent)
    if order_id:
        stmt = stmt.where(OutboxEvent.order_id == order_id)
    if after is not None:
        stmt = stmt.where(tuple_(OutboxEvent.created_at, OutboxEvent.id) > tuple_(_at(after[0]), after[1]))
    rows = list(
        session.execute(stmt.order_by(OutboxEvent.created_at, OutboxEvent.id).limit(limit + 1)).scalars()
    )
    more = len(rows) > limit
    rows = rows[:limit]
    items = [
        {"id": e.id, "order_id": e.order_id, "type": e.type, "status": e.status,
         "attempts": e.attempts, "created_at": _iso(e.created_at), "last_error": e.last_error,
         "payload": e.payload}
        for e in rows
    ]
    next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
    return items, next_cursor


def stock_rows(session: Session, sku: str | None = None) -> list[dict[str, Any]]:
    stmt = select(StockLevel).order_by(StockLevel.sku, StockLevel.warehouse)
    if sku:
        stmt = stmt.where(StockLevel.sku == sku)
    return [
        {
            "sku": s.sku,
            "warehouse": s.warehouse,
            "on_hand": s.on_hand,
            "reserved": s.reserved,
            "available": s.on_hand - s.reserved,
        }
        for s in session.execute(stmt).scalars()
    ]


def load_reference(session: Session, kind: str, items: list[dict[str, Any]]) -> tuple[int, list[str]]:
    """Idempotent upsert of catalog / warehouses / stock; returns (count, errors)."""
    model = {"catalog": CatalogItem, "warehouses": WarehouseItem, "stock": StockItem}[kind]
    from pydantic import ValidationError

    from models.documents import validation_messages

    parsed = []
    errors: list[str] = []
    for i, raw in enumerate(items):
        try:
            parsed.append(model.model_validate(raw))
        except ValidationError as exc:
            errors.extend(f"[{i}] {m}" for m in validation_messages(exc))
    if errors:
        return 0, errors
    for item in parsed:
        if kind == "catalog":
            row = session.get(CatalogRow, item.sku) or CatalogRow(sku=item.sku, name=item.name, price=item.price)
            row.name, row.price, row.weight_g = item.name, item.price, item.weight_g
            row.attributes, row.active, row.usual_qty = dict(item.attributes), item.active, item.usual_qty
            session.add(row)
        elif kind == "warehouses":
            row_w = session.get(WarehouseRow, item.code) or WarehouseRow(
                code=item.code, name=item.name, province=item.province
            )
            row_w.name, row_w.province, row_w.priority = item.name, item.province, item.priority
            session.add(row_w)
        else:
            if session.get(WarehouseRow, item.warehouse) is None:
                raise LedgerError(f"stock for unknown warehouse {item.warehouse!r}: load warehouses first")
            if session.get(CatalogRow, item.sku) is None:
                raise LedgerError(f"stock for unknown SKU {item.sku!r}: load the catalog first")
            level = session.get(StockLevel, (item.sku, item.warehouse))
            current = level.on_hand if level else 0
            delta = item.on_hand - current
            if delta:
                # Loading stock is an adjustment of the ledger, recorded like any other.
                move(
                    session,
                    sku=item.sku,
                    warehouse=item.warehouse,
                    kind=MovementKind.ADJUST,
                    on_hand=delta,
                    ref="load",
                )
        session.flush()
    return len(parsed), []
