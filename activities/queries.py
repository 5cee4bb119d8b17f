"""Read side for the CLI and the report: orders, stock, events, straight from the database.

The database is the source of truth for lists and reports; search attributes
are for filtering in the Web UI and may lag a little.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from activities.ledger import LedgerError, move
from models.documents import CatalogItem, StockItem, WarehouseItem
from models.enums import MovementKind
from models.tables import (
    CatalogRow,
    ContactLog,
    Order,
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
    return {
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


def list_orders(
    session: Session, *, stage: str | None = None, flag: str | None = None, limit: int = 1000
) -> list[dict[str, Any]]:
    """Oldest first: the clerk's work queue."""
    stmt = select(Order).order_by(Order.created_at, Order.order_id)
    if stage:
        stmt = stmt.where(Order.stage == stage)
    rows = session.execute(stmt).scalars().all()
    out = []
    for order in rows:
        if flag and flag not in (order.flags or []):
            continue
        out.append(
            {
                "order_id": order.order_id,
                "stage": order.stage,
                "waiting_for": order.waiting_for,
                "flags": list(order.flags or []),
                "created_at": _iso(order.created_at),
            }
        )
        if len(out) >= limit:
            break
    if stage == "backordered" and out:
        from models.tables import Backorder

        waits: dict[str, list[str]] = {}
        for b in session.execute(
            select(Backorder).where(col(Backorder.order_id).in_([o["order_id"] for o in out]),
                                    Backorder.status == "waiting")
        ).scalars():
            waits.setdefault(b.order_id, []).append(f"{b.sku}@{b.warehouse} x{b.qty_wanted - b.qty_filled}")
        for o in out:
            o["waiting_skus"] = waits.get(o["order_id"], [])
    return out


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
