"""Waybill numbers from a loaded range (`kind: pool`): each number is used once, ever.

Taking a number is one conditional step in the transaction that gives it to the parcel:
on PostgreSQL the first free row is locked with ``FOR UPDATE SKIP LOCKED`` (two parcels
never wait for, nor take, the same number); on SQLite every write transaction begins
``IMMEDIATE`` (models.db), so takers are serialised. A retry finds the number its parcel
already holds (the parcel key) and takes no second one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlmodel import Session

from models.db import is_postgres
from models.errors import OmsError
from shipping.reference import carrier as find_carrier
from shipping.tables import PoolNumberRow, WaybillRow

NUMBER_RE = re.compile(r"^[A-Za-z0-9]{6,40}$")
POOL = PoolNumberRow.__table__


class PoolProblem(OmsError, ValueError):
    """A range that cannot be loaded, or a carrier that has no pool (message for the clerk)."""


class PoolEmpty(OmsError):
    """No free number is left for this carrier: the parcel waits (`waybill_pool_empty`)."""

    def __init__(self, carrier: str) -> None:
        super().__init__(f"the waybill pool of {carrier} is empty: load more numbers "
                         f"with `oms waybills load {carrier} FILE`")
        self.carrier = carrier


@dataclass
class Taken:
    number: str
    left: int
    low: bool


def read_numbers(text: str) -> tuple[list[str], list[str]]:
    """The numbers of a file (one a line, blank lines and #comments skipped) and the problems."""
    numbers: list[str] = []
    errors: list[str] = []
    seen: set[str] = set()
    for no, raw in enumerate(text.splitlines(), start=1):
        value = raw.strip()
        if not value or value.startswith("#"):
            continue
        if not NUMBER_RE.match(value):
            errors.append(f"line {no}: {value[:50]!r} is not a waybill number (6-40 letters or digits)")
        elif value in seen:
            errors.append(f"line {no}: {value} appears twice in the file")
        else:
            seen.add(value)
            numbers.append(value)
    return numbers, errors


def load(session: Session, carrier: str, numbers: list[str]) -> dict[str, int]:
    """Add numbers to a carrier's pool; a number known before (loaded or issued) is skipped."""
    found = find_carrier(session, carrier)
    if found is None:
        raise PoolProblem(f"unknown carrier {carrier!r}: load it first (`oms load carriers FILE`)")
    if found.waybill.kind != "pool":
        raise PoolProblem(f"carrier {carrier} takes its waybills from {found.waybill.kind}, not a pool")
    known: set[str] = set()
    for i in range(0, len(numbers), 500):
        chunk = numbers[i:i + 500]
        known.update(session.execute(select(POOL.c.number).where(POOL.c.number.in_(chunk))).scalars())
        known.update(session.execute(
            select(WaybillRow.__table__.c.number).where(WaybillRow.__table__.c.number.in_(chunk))
        ).scalars())
    fresh = [n for n in numbers if n not in known]
    start = session.execute(select(func.coalesce(func.max(POOL.c.seq), 0))).scalar_one()
    now = datetime.now(UTC)
    if fresh:
        session.execute(POOL.insert(), [
            {"number": n, "carrier": carrier, "seq": start + i + 1, "status": "free",
             "loaded_at": now} for i, n in enumerate(fresh)
        ])
    return {"added": len(fresh), "skipped": len(numbers) - len(fresh),
            "free": free_count(session, carrier)}


def free_count(session: Session, carrier: str) -> int:
    return session.execute(
        select(func.count()).select_from(POOL)
        .where(POOL.c.carrier == carrier, POOL.c.status == "free")
    ).scalar_one()


def take(session: Session, carrier: str, parcel_id: str, low_at: int) -> Taken:
    """The parcel's number from the pool: the one it already holds, else the next free one."""
    held = session.execute(
        select(POOL.c.number).where(POOL.c.parcel_id == parcel_id, POOL.c.carrier == carrier,
                                    POOL.c.status == "used")
    ).scalar()
    if held is None:
        stmt = (select(POOL.c.number)
                .where(POOL.c.carrier == carrier, POOL.c.status == "free")
                .order_by(POOL.c.seq).limit(1))
        if is_postgres(session.get_bind()):
            stmt = stmt.with_for_update(skip_locked=True)
        held = session.execute(stmt).scalar()
        if held is None:
            raise PoolEmpty(carrier)
        done = session.execute(
            update(POOL).where(POOL.c.number == held, POOL.c.status == "free")
            .values(status="used", parcel_id=parcel_id, used_at=datetime.now(UTC))
        )
        if done.rowcount != 1:  # cannot happen under the lock; never hand out a number twice
            raise RuntimeError(f"waybill {held} was taken by another parcel meanwhile")
    left = free_count(session, carrier)
    return Taken(number=held, left=left, low=left < low_at)


def void(session: Session, number: str) -> None:
    """A number given back void: never free again, and no longer the parcel's held one."""
    session.execute(update(POOL).where(POOL.c.number == number).values(status="void"))


def status(session: Session) -> list[dict[str, Any]]:
    """Per carrier with a pool: free and used numbers, and whether it runs low."""
    from shipping.reference import carriers

    rows = session.execute(
        select(POOL.c.carrier, POOL.c.status, func.count()).group_by(POOL.c.carrier, POOL.c.status)
    ).all()
    counts: dict[str, dict[str, int]] = {}
    for carrier, state, n in rows:
        counts.setdefault(carrier, {})[state] = n
    out = []
    for c in carriers(session):
        if c.waybill.kind != "pool":
            continue
        free = counts.get(c.code, {}).get("free", 0)
        out.append({"carrier": c.code, "free": free, "used": counts.get(c.code, {}).get("used", 0),
                    "low_at": c.waybill.low_at, "low": free < c.waybill.low_at})
    return out
