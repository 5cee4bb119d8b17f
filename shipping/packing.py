"""The packing check (验货) and the weigh (称重), SPEC §3.10 item 5, §8 invariant 12.

Each scan is one transaction that locks the parcel's row first (``SELECT ... FOR UPDATE`` on
PostgreSQL; on SQLite every write transaction is ``BEGIN IMMEDIATE``), so two packers
scanning the same parcel at once are served one after the other and every count stays
exact: a scan counts one only through ``UPDATE ... SET scanned = scanned + 1 WHERE scanned
< qty``. A refused scan counts nothing. A parcel is `verified` once every line is complete,
and `weighed` once its weight falls within the expected range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlmodel import Session

from models.errors import OmsError
from models.settings import WeighPolicy
from models.tables import Order
from shipping import parcels as P
from shipping.tables import ItemBarcodeRow, ParcelLineRow, WaybillRow

LINES = ParcelLineRow.__table__
DONE_STATES = ("verified", "weighed", "shipped")


@dataclass
class ScanAnswer:
    barcode: str
    accepted: bool
    reason: str | None
    lines: list[dict[str, Any]] = field(default_factory=list)
    complete: bool = False
    state: str | None = None
    waybill: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"barcode": self.barcode, "accepted": self.accepted, "reason": self.reason,
                "lines": self.lines, "complete": self.complete, "state": self.state}


@dataclass
class WeighAnswer:
    accepted: bool
    reason: str | None
    expected_g: tuple[int, int] | None
    state: str | None = None
    weight_g: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "reason": self.reason,
                "expected_g": list(self.expected_g) if self.expected_g else None,
                "state": self.state, "weight_g": self.weight_g}


class PackingRefused(OmsError):
    """The parcel cannot be packed at all (unknown, void, cancelled): the reason is for the packer."""


def expected_range(items_g: int, policy: WeighPolicy) -> tuple[int, int]:
    """Catalog weights + packaging, ± the tolerance (a share, and at least min_tolerance_g)."""
    expected = items_g + policy.packaging_g
    slack = max(Decimal(expected) * policy.tolerance, Decimal(policy.min_tolerance_g))
    return max(0, math.floor(expected - slack)), math.ceil(expected + slack)


def parse_weight(value: Any) -> int:
    """A weight in grams from a form, a body or the shell: a positive number, else ValueError."""
    if isinstance(value, bool) or value is None or value == "":
        raise ValueError("weight_g: a weight in grams is required")
    try:
        number = Decimal(str(value).strip())
    except ArithmeticError:
        raise ValueError(f"weight_g: {str(value)[:40]!r} is not a number of grams") from None
    if not number.is_finite():
        raise ValueError("weight_g: not a number of grams")
    if number <= 0:
        raise ValueError(f"weight_g: must be more than 0 g, not {number}")
    if number > 1_000_000:
        raise ValueError(f"weight_g: {number} g is more than any parcel weighs")
    return int(number.to_integral_value())


def line_views(session: Session, parcel_id: str) -> list[dict[str, Any]]:
    return [{"order_id": ln.order_id, "sku": ln.sku, "name": ln.name, "qty": ln.qty,
             "scanned": ln.scanned} for ln in P.lines_of(session, parcel_id)]


def open_parcel(session: Session, waybill: str, *, lock: bool = True) -> P.ParcelRow:
    """The parcel of a label's barcode, locked; refused when it must not be packed."""
    waybill = (waybill or "").strip()
    parcel = P.by_waybill(session, waybill, lock=lock)
    if parcel is None:
        known = session.get(WaybillRow, waybill)
        if known is not None and known.status != "issued":
            raise PackingRefused(f"waybill {waybill} is {known.status}"
                                 + (f" ({known.void_reason})" if known.void_reason else "")
                                 + ": do not pack or ship under it")
        raise PackingRefused(f"unknown waybill {waybill!r}: not a label of this desk")
    for member in P.orders_in(session, parcel.parcel_id):
        order = session.get(Order, member.order_id)
        if order is not None and order.stage == "cancelled":
            why = order.cancel_reason or "no reason given"
            raise PackingRefused(f"order {member.order_id} is cancelled ({why}): "
                                 "do not pack this parcel; set it aside")
        if order is not None and "refund_requested" in (order.flags or []):
            raise PackingRefused(f"order {member.order_id} has a refund requested: "
                                 "do not pack this parcel; set it aside")
    if parcel.state == "void":
        raise PackingRefused(f"parcel {parcel.parcel_id} is void")
    if lock and parcel.state in ("allocated", "printed"):
        P.sync_lines(session, parcel)  # a pick exception since took units off
    return parcel


def sku_of(session: Session, barcode: str, skus: set[str]) -> str | None:
    row = session.get(ItemBarcodeRow, barcode)
    if row is not None:
        return row.sku
    if barcode in skus:  # an item without a registered barcode is labelled with its SKU
        has_code = session.execute(
            select(ItemBarcodeRow.barcode).where(ItemBarcodeRow.sku == barcode)
        ).first()
        return None if has_code else barcode
    return None


def scan(session: Session, waybill: str, barcode: str) -> ScanAnswer:
    """One item scanned into a parcel: counted, or refused with why (counting nothing)."""
    barcode = (barcode or "").strip()
    parcel = open_parcel(session, waybill)

    def answer(accepted: bool, reason: str | None) -> ScanAnswer:
        lines = line_views(session, parcel.parcel_id)
        complete = all(ln["scanned"] >= ln["qty"] for ln in lines)
        return ScanAnswer(barcode, accepted, reason, lines, complete, parcel.state,
                          parcel.waybill)

    if not barcode:
        return answer(False, "barcode: empty scan")
    if parcel.state in DONE_STATES:
        return answer(False, f"the parcel is already {parcel.state}: nothing more goes in")
    lines = P.lines_of(session, parcel.parcel_id)
    sku = sku_of(session, barcode, {ln.sku for ln in lines})
    if sku is None:
        if session.get(WaybillRow, barcode) is not None:
            return answer(False, f"{barcode} is a waybill label, not an item")
        return answer(False, f"unknown barcode {barcode}: not an item of the catalog")
    mine = [ln for ln in lines if ln.sku == sku]
    if not mine:
        return answer(False, f"{sku} is not in this parcel: take it out")
    done = None
    for line in mine:
        done = session.execute(
            update(LINES)
            .where(LINES.c.parcel_id == line.parcel_id, LINES.c.order_id == line.order_id,
                   LINES.c.sku == line.sku, LINES.c.scanned < LINES.c.qty)
            .values(scanned=LINES.c.scanned + 1)
        )
        if done.rowcount == 1:
            break
    if done is None or done.rowcount != 1:
        qty = sum(ln.qty for ln in mine)
        return answer(False, f"one {sku} too many: the parcel takes {qty}, all scanned")
    session.expire_all()
    parcel = session.get(P.ParcelRow, parcel.parcel_id)  # type: ignore[assignment]
    assert parcel is not None
    lines_now = line_views(session, parcel.parcel_id)
    if all(ln["scanned"] >= ln["qty"] for ln in lines_now):
        parcel.state, parcel.verified_at = "verified", P.now()
        parcel.updated_at = P.now()
        session.add(parcel)
        session.flush()
    return answer(True, None)


def weigh(session: Session, waybill: str, weight: Any, policy: WeighPolicy) -> WeighAnswer:
    """The verified parcel's weight: accepted within the expected range, else refused with
    both figures. ValueError (naming `weight_g`) for a weight that is no positive number."""
    grams = parse_weight(weight)
    parcel = open_parcel(session, waybill)
    low_high = expected_range(parcel.expected_g, policy)
    if parcel.state in ("allocated", "printed"):
        return WeighAnswer(False, "scan every item first: the parcel is not complete",
                           low_high, parcel.state)
    if parcel.state in ("weighed", "shipped"):
        return WeighAnswer(False, f"the parcel is already {parcel.state} "
                           f"({parcel.weight_g} g)", low_high, parcel.state, parcel.weight_g)
    low, high = low_high
    if not low <= grams <= high:
        return WeighAnswer(False, f"{grams} g is outside the expected {low}-{high} g "
                           f"(items {parcel.expected_g} g + packaging {policy.packaging_g} g): "
                           "check the parcel's contents", low_high, parcel.state, grams)
    parcel.state, parcel.weight_g, parcel.weighed_at = "weighed", grams, P.now()
    parcel.updated_at = P.now()
    session.add(parcel)
    return WeighAnswer(True, None, low_high, parcel.state, grams)
