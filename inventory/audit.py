"""The ledger's audit (`oms stock --audit`): every stock figure rebuilt from its movements and
reservations, and the differences listed (SPEC §8 invariant 1)."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Session

from models.enums import ReservationStatus
from models.tables import (
    Reservation,
    StockLevel,
    StockMovement,
)


def audit(session: Session) -> list[str]:
    """Recompute every stock level from its movements and reservations; list the differences."""
    from sqlalchemy import func

    problems: list[str] = []
    sums = {
        (sku, wh): (on_hand or 0, reserved or 0)
        for sku, wh, on_hand, reserved in session.execute(
            select(
                StockMovement.sku,
                StockMovement.warehouse,
                func.sum(StockMovement.on_hand_delta),
                func.sum(StockMovement.reserved_delta),
            ).group_by(StockMovement.sku, StockMovement.warehouse)
        ).all()
    }
    held = {
        (sku, wh): qty or 0
        for sku, wh, qty in session.execute(
            select(Reservation.sku, Reservation.warehouse, func.sum(Reservation.qty))
            .where(Reservation.status == str(ReservationStatus.HELD))
            .group_by(Reservation.sku, Reservation.warehouse)
        ).all()
    }
    levels = {(r.sku, r.warehouse): r for r in session.execute(select(StockLevel)).scalars()}
    for key in sorted(set(levels) | set(sums) | set(held)):
        level = levels.get(key)
        on_hand, reserved = (level.on_hand, level.reserved) if level else (0, 0)
        m_on_hand, m_reserved = sums.get(key, (0, 0))
        name = f"{key[0]}@{key[1]}"
        if not 0 <= reserved <= on_hand:
            problems.append(f"{name}: reserved {reserved} outside 0..on_hand {on_hand}")
        if on_hand != m_on_hand:
            problems.append(f"{name}: on_hand {on_hand} but movements sum to {m_on_hand}")
        if reserved != m_reserved:
            problems.append(f"{name}: reserved {reserved} but movements sum to {m_reserved}")
        if reserved != held.get(key, 0):
            problems.append(f"{name}: reserved {reserved} but held reservations sum to {held.get(key, 0)}")
    return problems

