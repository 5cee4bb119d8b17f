"""What the warehouse reports back to the ledger: a transfer that arrived (stock in, reserved for
its order at once), a shipment that left (its reservation consumed), a pick exception (the
units written off, the line sent back to allocation)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from inventory.ledger import RESERVATIONS, LedgerError, lock_levels, move, reserve
from models.db import is_postgres
from models.enums import MovementKind, ReservationStatus
from models.tables import (
    Reservation,
    Transfer,
    utcnow,
)


def transfer_arrival(session: Session, *, transfer_id: str, ref: str) -> dict[str, Any]:
    """Goods of a transfer arrived: stock in at the destination, reserved for the order at once."""
    stmt = select(Transfer).where(Transfer.id == transfer_id)
    if is_postgres(session):
        stmt = stmt.with_for_update()
    transfer = session.execute(stmt).scalar_one_or_none()
    if transfer is None:
        raise LedgerError(f"unknown transfer {transfer_id!r}")
    if transfer.status != "in_transit":
        raise LedgerError(f"transfer {transfer_id} is {transfer.status}, not in transit")
    move(
        session,
        sku=transfer.sku,
        warehouse=transfer.to_warehouse,
        kind=MovementKind.TRANSFER_IN,
        on_hand=transfer.qty,
        order_id=transfer.order_id,
        ref=transfer_id,
    )
    session.flush()
    reserve(
        session,
        order_id=transfer.order_id,
        line_no=transfer.line_no,
        sku=transfer.sku,
        warehouse=transfer.to_warehouse,
        qty=transfer.qty,
        ref=ref,
    )
    transfer.status = "arrived"
    transfer.arrived_at = utcnow()
    session.add(transfer)
    return {
        "order_id": transfer.order_id,
        "line_no": transfer.line_no,
        "sku": transfer.sku,
        "warehouse": transfer.to_warehouse,
        "qty": transfer.qty,
        "ref": transfer_id,
    }


def consume_shipment(session: Session, *, order_id: str, shipment_id: str, ref: str) -> list[tuple[int, int]]:
    """The parcel left: its reservations are consumed and on_hand goes down."""
    res = RESERVATIONS
    holds = session.execute(
        select(res.c.id, res.c.line_no, res.c.sku, res.c.warehouse, res.c.qty)
        .where(
            res.c.order_id == order_id,
            res.c.shipment_id == shipment_id,
            res.c.status == str(ReservationStatus.HELD),
        )
        .order_by(res.c.sku, res.c.warehouse, res.c.id)
    ).all()
    if is_postgres(session):  # SQLite: BEGIN IMMEDIATE serialises already
        lock_levels(session, [(h.sku, h.warehouse) for h in holds])
    shipped: dict[int, int] = {}
    for hold in holds:
        move(
            session,
            sku=hold.sku,
            warehouse=hold.warehouse,
            kind=MovementKind.SHIP,
            on_hand=-hold.qty,
            reserved=-hold.qty,
            order_id=order_id,
            ref=ref,
        )
        shipped[hold.line_no] = shipped.get(hold.line_no, 0) + hold.qty
    if holds:
        session.execute(
            res.update()
            .where(res.c.id.in_([h.id for h in holds]))
            .values(status=str(ReservationStatus.CONSUMED), updated_at=utcnow())
        )
    return sorted(shipped.items())


def pick_exception(
    session: Session, *, order_id: str, shipment_id: str, sku: str, qty: int, reason: str, ref: str
) -> list[tuple[int, int]]:
    """Damaged or missing units leave on_hand and the shipment; returns (line_no, qty) taken off."""
    holds = session.execute(
        select(Reservation)
        .where(
            Reservation.order_id == order_id,
            Reservation.shipment_id == shipment_id,
            Reservation.sku == sku,
            Reservation.status == str(ReservationStatus.HELD),
        )
        .order_by(Reservation.id)
    ).scalars().all()
    if sum(h.qty for h in holds) < qty:
        raise LedgerError(f"shipment {shipment_id} holds fewer than {qty} of {sku}")
    lock_levels(session, [(h.sku, h.warehouse) for h in holds])
    left = qty
    taken: dict[int, int] = {}
    for hold in holds:
        if left <= 0:
            break
        take = min(hold.qty, left)
        move(
            session,
            sku=sku,
            warehouse=hold.warehouse,
            kind=MovementKind.ADJUST,
            on_hand=-take,
            reserved=-take,
            order_id=order_id,
            ref=f"{ref}:{reason}",
        )
        hold.qty -= take
        if hold.qty == 0:
            hold.status = str(ReservationStatus.RELEASED)
        hold.updated_at = utcnow()
        session.add(hold)
        taken[hold.line_no] = taken.get(hold.line_no, 0) + take
        left -= take
    return sorted(taken.items())
