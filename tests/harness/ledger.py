"""The ledger tests' reference data and shorthands: seed, allocate, restock, release, and reads of
the levels, movements, holds and backorders."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from inventory import audit as stock_audit
from inventory import booking, ledger
from models.db import SessionFactory, transaction
from models.enums import ReservationStatus, ShortagePolicy
from models.payloads import AllocateInput, AllocateResult
from models.tables import (
    Backorder,
    Reservation,
    StockMovement,
)
from reads.queries import load_reference, stock_rows

WAREHOUSES = [
    {"code": "HZ", "name": "杭州仓", "province": "浙江省", "priority": 1},
    {"code": "SH", "name": "上海仓", "province": "上海市", "priority": 2},
    {"code": "GZ", "name": "广州仓", "province": "广东省", "priority": 3},
]
CATALOG = [
    {"sku": "TEE", "name": "红色T恤", "price": "59.00"},
    {"sku": "MUG", "name": "白色马克杯", "price": "35.00"},
]
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


# ------------------------------------------------------------------ helpers


def seed(factory: SessionFactory, stock: dict[tuple[str, str], int]) -> None:
    with transaction(factory) as session:
        assert load_reference(session, "warehouses", WAREHOUSES) == (3, [])
        assert load_reference(session, "catalog", CATALOG) == (2, [])
        items = [{"sku": s, "warehouse": w, "on_hand": q} for (s, w), q in stock.items()]
        assert load_reference(session, "stock", items) == (len(items), [])


def allocate(
    factory: SessionFactory,
    order_id: str,
    *lines: tuple[str, int],
    policy: ShortagePolicy = ShortagePolicy.WAIT,
    province: str | None = "浙江省",
    split: bool = False,
    at: datetime = T0,
    key: str | None = None,
    backorder_rest: bool = True,
) -> AllocateResult:
    inp = AllocateInput(
        order_id=order_id,
        op_key=key or f"order-{order_id}:allocate:1",
        needs=[{"line_no": i, "sku": sku, "qty": qty} for i, (sku, qty) in enumerate(lines, 1)],
        buyer_province=province,
        order_time=at,
        policy=policy,
        split_allowed=split,
        rule="same_province_first",
        backorder_rest=backorder_rest,
    )
    result = ledger.run_once(factory, inp.op_key, lambda s: booking.allocate(s, inp))
    return AllocateResult.model_validate(result)


def restock(factory: SessionFactory, sku: str, warehouse: str, qty: int, ref: str) -> list[dict]:
    with transaction(factory) as session:
        return ledger.restock(session, sku=sku, warehouse=warehouse, qty=qty, ref=ref)


def release(factory: SessionFactory, order_id: str) -> tuple[int, list[dict]]:
    with transaction(factory) as session:
        return ledger.release_order(
            session, order_id=order_id, line_nos=None, include_reserved=True, ref=f"{order_id}:rel"
        )


def to_shipment(factory: SessionFactory, order_id: str, shipment_id: str) -> None:
    """What releasing to the warehouse does to the holds: tie them to a shipment."""
    with transaction(factory) as session:
        session.execute(
            update(Reservation)
            .where(
                Reservation.order_id == order_id,
                Reservation.status == str(ReservationStatus.HELD),
                Reservation.shipment_id.is_(None),  # type: ignore[union-attr]
            )
            .values(shipment_id=shipment_id)
        )


def levels(factory: SessionFactory) -> dict[tuple[str, str], tuple[int, int]]:
    with transaction(factory) as session:
        return {
            (r["sku"], r["warehouse"]): (r["on_hand"], r["reserved"]) for r in stock_rows(session)
        }


def movements(factory: SessionFactory, **where: Any) -> list[tuple[str, str, str, int, int]]:
    stmt = select(StockMovement).order_by(StockMovement.id)
    for name, value in where.items():
        stmt = stmt.where(getattr(StockMovement, name) == value)
    with transaction(factory) as session:
        return [
            (m.kind, m.sku, m.warehouse, m.on_hand_delta, m.reserved_delta)
            for m in session.execute(stmt).scalars()
        ]


def held(factory: SessionFactory, order_id: str) -> list[tuple[int, str, int]]:
    with transaction(factory) as session:
        rows = session.execute(
            select(Reservation)
            .where(Reservation.order_id == order_id, Reservation.status == "held")
            .order_by(Reservation.line_no, Reservation.warehouse)
        ).scalars()
        return [(r.line_no, r.warehouse, r.qty) for r in rows]


def backorders(factory: SessionFactory, order_id: str) -> list[tuple[int, str, int, int, str]]:
    with transaction(factory) as session:
        rows = session.execute(
            select(Backorder).where(Backorder.order_id == order_id).order_by(Backorder.id)
        ).scalars()
        return [(b.line_no, b.warehouse, b.qty_wanted, b.qty_filled, b.status) for b in rows]


def served(entries: list[dict]) -> list[tuple[str, int]]:
    return [(e["order_id"], e["qty"]) for e in entries]


def assert_audit_clean(factory: SessionFactory) -> None:
    with transaction(factory) as session:
        assert stock_audit.audit(session) == []


