"""Booking an order's open units: reserved where the allocation plan finds stock, backordered
(first come, first served) or moved by a transfer where it does not. Applied once under the
workflow's key (`inventory.ledger.run_once`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import select
from sqlmodel import Session

from inventory.ledger import (
    WAREHOUSES,
    LedgerError,
    apply_once,
    levels_for_skus,
    move,
    reserve,
    run_once,
)
from models.db import SessionFactory
from models.enums import MovementKind, ReservationStatus
from models.errors import ErrorType, application_error
from models.payloads import AllocateInput, AllocateResult
from models.tables import (
    Backorder,
    Reservation,
    Transfer,
    to_utc,
    utcnow,
)

log = structlog.get_logger()


def _enqueue_backorder(
    session: Session, *, order_id: str, line_no: int, sku: str, warehouse: str, qty: int, order_time: datetime
) -> None:
    entry = session.execute(
        select(Backorder).where(
            Backorder.order_id == order_id,
            Backorder.line_no == line_no,
            Backorder.warehouse == warehouse,
            Backorder.status == "waiting",
        )
    ).scalar_one_or_none()
    if entry is None:
        entry = Backorder(
            order_id=order_id,
            line_no=line_no,
            sku=sku,
            warehouse=warehouse,
            qty_wanted=0,
            order_time=to_utc(order_time),
            created_at=utcnow(),
        )
    entry.qty_wanted += qty
    session.add(entry)


def allocate(session: Session, inp: Any) -> dict[str, Any]:
    """Plan and reserve an order's open lines in one transaction (see module docstring).

    `inp` is a `models.payloads.AllocateInput`. Returns an `AllocateResult` dict.
    """
    from inventory.allocation import plan_allocation, transfer_sources
    from models.enums import ShortagePolicy
    from models.payloads import AllocateResult
    from models.types import LineNeed, StockAvailability, WarehouseInfo

    needs = [LineNeed(**n) for n in inp.needs]
    # Warehouses first: the stock rows stay locked from here to the commit, keep that short.
    warehouses = [
        WarehouseInfo(code=w.code, province=w.province, priority=w.priority)
        for w in session.execute(select(WAREHOUSES.c.code, WAREHOUSES.c.province, WAREHOUSES.c.priority))
    ]
    levels = levels_for_skus(session, [n.sku for n in needs])
    if not inp.split_allowed:
        # One parcel: what is still open comes from where the rest is already held
        # (or moves there by transfer), not from a second warehouse.
        holding = set(
            session.execute(
                select(Reservation.warehouse).where(
                    Reservation.order_id == inp.order_id,
                    Reservation.status == str(ReservationStatus.HELD),
                )
            ).scalars()
        )
        if holding:
            warehouses = [w for w in warehouses if w.code in holding]
    stock = [
        StockAvailability(sku=lv.sku, warehouse=lv.warehouse, available=lv.on_hand - lv.reserved)
        for lv in levels
    ]
    plan = plan_allocation(
        needs,
        stock,
        warehouses,
        buyer_province=inp.buyer_province,
        split_allowed=inp.split_allowed,
        rule=inp.rule,
    )
    result = AllocateResult(plan=plan)
    if plan.shortfalls and inp.policy == ShortagePolicy.CANCEL:
        return result.model_dump(mode="json")
    for shipment in plan.shipments:
        for line in shipment.lines:
            reserve(
                session,
                order_id=inp.order_id,
                line_no=line.line_no,
                sku=line.sku,
                warehouse=shipment.warehouse,
                qty=line.qty,
                ref=inp.op_key,
            )
            result.reserved.append((line.line_no, shipment.warehouse, line.qty))
    remaining = list(plan.shortfalls)
    if remaining and inp.policy == ShortagePolicy.TRANSFER:
        sourced = transfer_sources(remaining, stock, exclude_reserved_in_plan=plan)
        for shortfall, source in sourced:
            transfer_id = f"TR-{inp.order_id}-{shortfall.line_no}-{len(result.transfers) + 1}"
            n = 1
            while session.get(Transfer, transfer_id) is not None:
                n += 1
                transfer_id = f"TR-{inp.order_id}-{shortfall.line_no}-{n}"
            move(
                session,
                sku=shortfall.sku,
                warehouse=source,
                kind=MovementKind.TRANSFER_OUT,
                on_hand=-shortfall.qty,
                order_id=inp.order_id,
                ref=transfer_id,
                guard_available=shortfall.qty,
            )
            session.add(
                Transfer(
                    id=transfer_id,
                    order_id=inp.order_id,
                    line_no=shortfall.line_no,
                    sku=shortfall.sku,
                    from_warehouse=source,
                    to_warehouse=shortfall.warehouse,
                    qty=shortfall.qty,
                    created_at=utcnow(),
                )
            )
            result.transfers.append(
                {
                    "id": transfer_id,
                    "line_no": shortfall.line_no,
                    "sku": shortfall.sku,
                    "from_warehouse": source,
                    "to_warehouse": shortfall.warehouse,
                    "qty": shortfall.qty,
                }
            )
            remaining.remove(shortfall)
    if remaining and inp.backorder_rest:
        for shortfall in remaining:
            _enqueue_backorder(
                session,
                order_id=inp.order_id,
                line_no=shortfall.line_no,
                sku=shortfall.sku,
                warehouse=shortfall.warehouse,
                qty=shortfall.qty,
                order_time=inp.order_time,
            )
            result.backordered.append((shortfall.line_no, shortfall.warehouse, shortfall.qty))
    return result.model_dump(mode="json")


def allocate_once(factory: SessionFactory, inp: AllocateInput) -> AllocateResult:
    """Reserve (or backorder) an order's open units under `inp.op_key`: applied once, however often called.

    The `allocate` activity, in a transaction of its own.
    """
    try:
        result = run_once(factory, inp.op_key, lambda s: allocate(s, inp))
    except LedgerError as exc:
        raise application_error(ErrorType.LEDGER, str(exc)) from exc
    return _allocated(inp, result)


def allocate_in(session: Session, inp: AllocateInput) -> AllocateResult:
    """`allocate_once` in the caller's transaction (`check_order`, when the check clears the order).

    A lost race (`ledger.Oversell`, a duplicate key) propagates: the caller's
    `ledger.retrying` runs its whole transaction again.
    """
    try:
        result = apply_once(session, inp.op_key, lambda s: allocate(s, inp))
    except LedgerError as exc:
        raise application_error(ErrorType.LEDGER, str(exc)) from exc
    return _allocated(inp, result)


def _allocated(inp: AllocateInput, result: dict[str, Any]) -> AllocateResult:
    out = AllocateResult.model_validate(result)
    log.info(
        "allocated",
        order_id=inp.order_id,
        reserved=len(out.reserved),
        backordered=len(out.backordered),
        transfers=len(out.transfers),
        short=len(out.plan.shortfalls),
    )
    return out
