"""The stock ledger: every change to stock is a movement row in the same transaction.

Functions here take an open `Session` inside a transaction (see
`models.db.transaction`) and never commit themselves, so a caller composes
several of them into one atomic unit. Concurrency:

* SQLite: every transaction starts with ``BEGIN IMMEDIATE`` (models.db), so
  writers are serialised for the whole read-plan-write cycle;
* PostgreSQL: the stock rows involved are locked with ``SELECT ... FOR UPDATE``
  in a fixed (sku, warehouse) order, so no two transactions plan on the same
  figures and none deadlock;
* both: the reserving ``UPDATE`` is conditional (``on_hand - reserved >= qty``),
  a last guard against overselling.

Idempotency: callers wrap an operation in `run_once` with a key derived from
the workflow, so a retried activity finds its first result and does nothing
twice."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import and_, bindparam, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.util import identity_key
from sqlmodel import Session, col

from models.db import SessionFactory, is_postgres, transaction
from models.enums import MovementKind, ReservationStatus
from models.errors import OmsError
from models.tables import (
    AppliedOp,
    Backorder,
    Reservation,
    StockLevel,
    StockMovement,
    Transfer,
    WarehouseRow,
    utcnow,
)

# Plain table statements for the rows every step writes and never reads back as objects.
_APPLIED = AppliedOp.__table__
_MOVEMENTS = StockMovement.__table__
RESERVATIONS = Reservation.__table__
_LEVELS = StockLevel.__table__


def _move_stmt(guarded: bool) -> Any:
    """One movement on a stock level, built once: applies only while 0 <= reserved <= on_hand
    holds after it (SPEC §8.1), and when guarded, while on_hand - reserved covers the guard."""
    lv = _LEVELS.c
    conditions = [
        lv.sku == bindparam("b_sku"),
        lv.warehouse == bindparam("b_wh"),
        lv.reserved + bindparam("b_res") >= 0,
        lv.on_hand + bindparam("b_on") >= lv.reserved + bindparam("b_res"),
    ]
    if guarded:
        conditions.append(lv.on_hand - lv.reserved >= bindparam("b_guard"))
    return (
        _LEVELS.update()
        .where(and_(*conditions))
        .values(on_hand=lv.on_hand + bindparam("b_on"), reserved=lv.reserved + bindparam("b_res"))
    )


_LEVELS_OF = (
    select(_LEVELS.c.sku, _LEVELS.c.warehouse, _LEVELS.c.on_hand, _LEVELS.c.reserved)
    .where(_LEVELS.c.sku.in_(bindparam("b_skus", expanding=True)))
    .order_by(_LEVELS.c.sku, _LEVELS.c.warehouse)
)
_LEVELS_LOCKED = _LEVELS_OF.with_for_update()
WAREHOUSES = WarehouseRow.__table__
_APPLIED_RESULT = select(_APPLIED.c.result).where(_APPLIED.c.op_key == bindparam("b_key"))
_MOVE = _move_stmt(guarded=False)
_MOVE_GUARDED = _move_stmt(guarded=True)
_LEVEL_EXISTS = select(_LEVELS.c.sku).where(
    _LEVELS.c.sku == bindparam("b_sku"), _LEVELS.c.warehouse == bindparam("b_wh")
)


_T = TypeVar("_T")


class LedgerError(OmsError):
    """A business error of the ledger (unknown SKU or warehouse, bad quantity, ...)."""


class Oversell(OmsError):
    """A conditional update found less stock than planned: the caller retries from the top."""


def run_once(
    factory: SessionFactory, op_key: str, fn: Callable[[Session], dict[str, Any]]
) -> dict[str, Any]:
    """Run `fn` in one transaction unless `op_key` already ran; return its (first) result."""
    return run_all_once(factory, [(op_key, fn)])[0]


def run_all_once(
    factory: SessionFactory, ops: Sequence[tuple[str, Callable[[Session], dict[str, Any]]]]
) -> list[dict[str, Any]]:
    """Several keyed operations, in order, in one transaction; each one applied once.

    An operation whose key already ran contributes its first result; a lost race
    (a concurrent duplicate, or stock moved under a plan) starts the whole run over.
    """
    keys = ", ".join(op_key for op_key, _ in ops)
    return retrying(
        factory, lambda session: [apply_once(session, op_key, fn) for op_key, fn in ops], what=keys
    )


def retrying(factory: SessionFactory, fn: Callable[[Session], _T], *, what: str) -> _T:
    """`fn` in one transaction, run again from the top when it lost a race (a concurrent
    duplicate key, or stock moved under its plan)."""
    for _ in range(20):
        try:
            with transaction(factory) as session:
                return fn(session)
        except (IntegrityError, Oversell):
            continue
    raise RuntimeError(f"operation(s) {what} did not settle after 20 attempts")


def apply_once(session: Session, op_key: str, fn: Callable[[Session], dict[str, Any]]) -> dict[str, Any]:
    """`fn` in the caller's transaction unless `op_key` already ran; its (first) result.

    A concurrent duplicate that got here first fails the key's insert with an
    IntegrityError: the caller's transaction is then rolled back and retried.
    """
    done = session.execute(_APPLIED_RESULT, {"b_key": op_key}).first()
    if done is not None:
        return dict(done.result)
    result = fn(session)
    session.execute(_APPLIED.insert(), {"op_key": op_key, "result": result, "at": utcnow()})
    return result


def lock_levels(session: Session, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], StockLevel]:
    """Load (and on PostgreSQL lock, in a fixed order) the stock rows for these keys."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    stmt = select(StockLevel).where(tuple_(StockLevel.sku, StockLevel.warehouse).in_(wanted))
    stmt = stmt.order_by(StockLevel.sku, StockLevel.warehouse)
    if is_postgres(session):
        stmt = stmt.with_for_update()
    rows = session.execute(stmt).scalars().all()
    return {(r.sku, r.warehouse): r for r in rows}


def levels_for_skus(session: Session, skus: Iterable[str]) -> list[Any]:
    """The stock rows of these SKUs (sku, warehouse, on_hand, reserved), locked on PostgreSQL."""
    skus = sorted(set(skus))
    if not skus:
        return []
    postgres = is_postgres(session)
    return list(session.execute(_LEVELS_LOCKED if postgres else _LEVELS_OF, {"b_skus": skus}).all())


def move(
    session: Session,
    *,
    sku: str,
    warehouse: str,
    kind: MovementKind,
    on_hand: int = 0,
    reserved: int = 0,
    order_id: str | None = None,
    ref: str | None = None,
    at: datetime | None = None,
    guard_available: int | None = None,
) -> None:
    """Apply one movement to a stock level, and record it.

    ``guard_available``: the update only applies while ``on_hand - reserved``
    is at least this much; otherwise `Oversell` is raised (the whole
    transaction is then retried by `run_once`).
    """
    guarded = guard_available is not None
    params = {"b_sku": sku, "b_wh": warehouse, "b_on": on_hand, "b_res": reserved, "b_guard": guard_available}
    result = session.execute(_MOVE_GUARDED if guarded else _MOVE, params)
    if result.rowcount != 1:
        exists = session.execute(_LEVEL_EXISTS, params).first() is not None
        if exists:
            raise Oversell(f"{kind} of {sku}@{warehouse} would break 0 <= reserved <= on_hand")
        if on_hand < 0 or reserved != 0:
            raise LedgerError(f"no stock of {sku} in warehouse {warehouse}")
        session.execute(_LEVELS.insert().values(sku=sku, warehouse=warehouse, on_hand=0, reserved=0))
        if session.execute(_MOVE_GUARDED if guarded else _MOVE, params).rowcount != 1:
            raise Oversell(f"{kind} of {sku}@{warehouse} would break 0 <= reserved <= on_hand")
    # A level this session loaded as an object (lock_levels, hand_out) reads anew.
    loaded = session.identity_map.get(identity_key(StockLevel, (sku, warehouse)))
    if loaded is not None:
        session.expire(loaded)
    session.execute(
        _MOVEMENTS.insert(),
        {
            "sku": sku,
            "warehouse": warehouse,
            "kind": str(kind),
            "on_hand_delta": on_hand,
            "reserved_delta": reserved,
            "order_id": order_id,
            "ref": ref,
            "at": at or utcnow(),
        },
    )


def reserve(
    session: Session, *, order_id: str, line_no: int, sku: str, warehouse: str, qty: int, ref: str
) -> None:
    move(
        session,
        sku=sku,
        warehouse=warehouse,
        kind=MovementKind.RESERVE,
        reserved=qty,
        order_id=order_id,
        ref=ref,
        guard_available=qty,
    )
    now = utcnow()
    session.add(
        Reservation(
            order_id=order_id,
            line_no=line_no,
            sku=sku,
            warehouse=warehouse,
            qty=qty,
            status=str(ReservationStatus.HELD),
            created_at=now,
            updated_at=now,
        )
    )


def hand_out(session: Session, *, sku: str, warehouse: str, ref: str) -> list[dict[str, Any]]:
    """Give available stock to waiting backorders of (sku, warehouse), oldest order first.

    Strictly first come first served: the oldest waiting line takes what there
    is, even if that only partly fills it, and nobody behind it gets a unit
    before it is full. Returns what each served order got, for signalling.
    """
    level = lock_levels(session, [(sku, warehouse)]).get((sku, warehouse))
    if level is None:
        return []
    session.refresh(level)
    available = level.on_hand - level.reserved
    served: list[dict[str, Any]] = []
    if available <= 0:
        return served
    queue = session.execute(
        select(Backorder)
        .where(
            Backorder.sku == sku,
            Backorder.warehouse == warehouse,
            Backorder.status == "waiting",
        )
        .order_by(Backorder.order_time, Backorder.id)
    ).scalars()
    for entry in queue:
        if available <= 0:
            break
        take = min(available, entry.qty_wanted - entry.qty_filled)
        if take <= 0:
            continue
        reserve(
            session,
            order_id=entry.order_id,
            line_no=entry.line_no,
            sku=sku,
            warehouse=warehouse,
            qty=take,
            ref=ref,
        )
        entry.qty_filled += take
        if entry.qty_filled >= entry.qty_wanted:
            entry.status = "filled"
        session.add(entry)
        available -= take
        served.append(
            {
                "order_id": entry.order_id,
                "line_no": entry.line_no,
                "sku": sku,
                "warehouse": warehouse,
                "qty": take,
                "ref": ref,
            }
        )
    return served


def restock(session: Session, *, sku: str, warehouse: str, qty: int, ref: str) -> list[dict[str, Any]]:
    if qty <= 0:
        raise LedgerError(f"qty must be a positive whole number, not {qty}")
    if session.get(WarehouseRow, warehouse) is None:
        raise LedgerError(f"unknown warehouse {warehouse!r}")
    from models.tables import CatalogRow

    if session.get(CatalogRow, sku) is None:
        raise LedgerError(f"unknown SKU {sku!r}")
    move(session, sku=sku, warehouse=warehouse, kind=MovementKind.RESTOCK, on_hand=qty, ref=ref)
    session.flush()
    return hand_out(session, sku=sku, warehouse=warehouse, ref=ref)


def release_order(
    session: Session, *, order_id: str, line_nos: list[int] | None, include_reserved: bool, ref: str
) -> tuple[int, list[dict[str, Any]]]:
    """Undo what the ledger holds for an order: reservations, backorders, transfers.

    Freed stock is handed to the next waiting orders at once (first come first
    served), so releasing never leaves stock idle while someone waits for it.
    """
    released = 0
    touched: set[tuple[str, str]] = set()

    def _lines(stmt: Any, model: Any) -> Any:
        if line_nos is not None:
            stmt = stmt.where(col(model.line_no).in_(line_nos))
        return stmt

    # Lock first, read after: a concurrent hand-out (a restock, another order's
    # release) may be serving this order's backorder right now, and must either
    # finish before we read or see our cancellation. Transfers are locked before
    # stock rows, in the same order as `transfer_arrival`, so the two never deadlock.
    transfer_stmt = _lines(
        select(Transfer).where(Transfer.order_id == order_id, Transfer.status == "in_transit"),
        Transfer,
    ).order_by(Transfer.id)
    if is_postgres(session):
        transfer_stmt = transfer_stmt.with_for_update()
    moving = session.execute(transfer_stmt).scalars().all()
    keys = {(t.sku, t.from_warehouse) for t in moving}
    keys.update(
        (sku, wh)
        for sku, wh in session.execute(
            _lines(
                select(Reservation.sku, Reservation.warehouse).where(
                    Reservation.order_id == order_id,
                    Reservation.status == str(ReservationStatus.HELD),
                ),
                Reservation,
            )
        ).all()
    )
    keys.update(
        (sku, wh)
        for sku, wh in session.execute(
            _lines(
                select(Backorder.sku, Backorder.warehouse).where(
                    Backorder.order_id == order_id, Backorder.status == "waiting"
                ),
                Backorder,
            )
        ).all()
    )
    lock_levels(session, keys)

    if include_reserved:
        holds = session.execute(
            _lines(
                select(Reservation).where(
                    Reservation.order_id == order_id,
                    Reservation.status == str(ReservationStatus.HELD),
                ),
                Reservation,
            ).order_by(Reservation.sku, Reservation.warehouse)
        ).scalars().all()
        lock_levels(session, [(h.sku, h.warehouse) for h in holds])
        for hold in holds:
            if hold.qty > 0:
                move(
                    session,
                    sku=hold.sku,
                    warehouse=hold.warehouse,
                    kind=MovementKind.RELEASE,
                    reserved=-hold.qty,
                    order_id=order_id,
                    ref=ref,
                )
                released += hold.qty
                touched.add((hold.sku, hold.warehouse))
            hold.status = str(ReservationStatus.RELEASED)
            hold.updated_at = utcnow()
            session.add(hold)
    waiting = session.execute(
        _lines(
            select(Backorder).where(Backorder.order_id == order_id, Backorder.status == "waiting"),
            Backorder,
        )
    ).scalars().all()
    for entry in waiting:
        entry.status = "cancelled"
        session.add(entry)
    for transfer in moving:
        # The goods turn back to where they came from.
        move(
            session,
            sku=transfer.sku,
            warehouse=transfer.from_warehouse,
            kind=MovementKind.TRANSFER_IN,
            on_hand=transfer.qty,
            order_id=order_id,
            ref=f"{transfer.id}:returned",
        )
        transfer.status = "cancelled"
        session.add(transfer)
        touched.add((transfer.sku, transfer.from_warehouse))
    session.flush()
    served: list[dict[str, Any]] = []
    for sku, warehouse in sorted(touched):
        served.extend(hand_out(session, sku=sku, warehouse=warehouse, ref=ref))
    return released, served

