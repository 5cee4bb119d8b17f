"""Parcels: made from a released shipment, given a carrier and a waybill, read back.

The parcel key is chosen from the shipment id (`pcl-<order_id>-<n>`), so every retry of a
step finds the parcel its first try made. A parcel's states run
``allocated → printed → verified → weighed → shipped``, or ``void``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from models.errors import OmsError
from models.tables import CatalogRow, Order, Shipment
from shipping.carriers import Choice, ShipmentFacts, choose, requested_carrier, why_not
from shipping.pool import PoolEmpty, Taken, take
from shipping.pool import void as pool_void
from shipping.reference import carrier as find_carrier
from shipping.reference import carriers as all_carriers
from shipping.tables import ParcelLineRow, ParcelOrderRow, ParcelRow, WaybillRow

STATES = ("allocated", "printed", "verified", "weighed", "shipped", "void")


class ParcelProblem(OmsError, ValueError):
    """A request about a parcel that cannot be done (the message says why)."""


def now() -> datetime:
    return datetime.now(UTC)


def parcel_id_for(shipment_id: str) -> str:
    return f"pcl-{shipment_id}"


def document_of(session: Session, order_id: str) -> dict[str, Any]:
    order = session.get(Order, order_id)
    if order is None:
        raise ParcelProblem(f"unknown order {order_id}")
    return dict(order.document or {})


@dataclass(frozen=True)
class MergeRule:
    """Merged parcels (合单, SPEC §3.10 item 4): on or off, and the release window."""

    enabled: bool = True
    window: timedelta = timedelta(minutes=30)


def receiver_of(doc: dict[str, Any]) -> str:
    """Who and where the parcel goes: the platform's receiver id, else name, phone, address."""
    buyer, address = doc.get("buyer") or {}, doc.get("address") or {}
    receiver = doc.get("oaid") or doc.get("open_address_id")
    if receiver:
        return str(receiver)
    return "|".join(str(v or "").strip() for v in (
        buyer.get("name"), buyer.get("phone"), address.get("province"), address.get("city"),
        address.get("district"), address.get("detail")))


def receiver_key(doc: dict[str, Any]) -> str:
    """The receiver a waybill was issued to, as a hash that names nobody: the address in full
    (with the platform's receiver id), so that any change of it is seen."""
    buyer, address = doc.get("buyer") or {}, doc.get("address") or {}
    raw = "\x1f".join(str(v or "").strip() for v in (
        doc.get("oaid") or doc.get("open_address_id"), buyer.get("name"), buyer.get("phone"),
        address.get("province"), address.get("city"), address.get("district"),
        address.get("detail")))
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:40]


def merge_key(doc: dict[str, Any], warehouse: str) -> str | None:
    """What orders must share to share a parcel: the shop, the buyer, the receiver (name,
    phone and address, or the platform's receiver id) and the warehouse; none for COD. A
    hash: the key names nobody."""
    if (doc.get("payment") or {}).get("status") == "cod":
        return None
    buyer = doc.get("buyer") or {}
    shop = doc.get("shop") or doc.get("platform") or ""
    raw = "\x1f".join([str(shop), str(buyer.get("id") or ""), receiver_of(doc), warehouse])
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def shop_merges(session: Session, doc: dict[str, Any]) -> bool:
    """The order's shop's own switch (`oms shops add NAME --merge off`, SPEC §5.9): read at
    the join, so a shop switched off merges none of its orders released from then on. An
    order from no shop (a file, the API) follows the merchant's policy alone."""
    from platforms.tables import Shop

    name = doc.get("shop")
    if not name:
        return True
    shop = session.get(Shop, str(name))
    return shop is None or bool(shop.merge)


def lock_merge_key(session: Session, key: str) -> None:
    """Two releases for one receiver meet here one after the other: a transaction-scoped
    advisory lock on PostgreSQL; SQLite's writers are already serialised (BEGIN IMMEDIATE)."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy import text

        session.execute(text("SELECT pg_advisory_xact_lock(:k)"),
                        {"k": int(key[:15], 16)})


def parcel_of_shipment(session: Session, shipment_id: str) -> ParcelRow | None:
    member = session.execute(
        select(ParcelOrderRow).where(ParcelOrderRow.shipment_id == shipment_id,
                                     ParcelOrderRow.status == "in")
    ).scalars().first()
    return session.get(ParcelRow, member.parcel_id) if member else None


def unshipped_parcels_of(session: Session,
                         order_id: str) -> list[tuple[ParcelOrderRow, ParcelRow]]:
    """The parcels the order is in that have not shipped (nor been voided), each locked,
    with the order's membership."""
    found = []
    for member in session.execute(
        select(ParcelOrderRow).where(ParcelOrderRow.order_id == order_id,
                                     ParcelOrderRow.status == "in")
    ).scalars().all():
        parcel = session.get(ParcelRow, member.parcel_id, with_for_update=True)
        if parcel is not None and parcel.state not in ("shipped", "void"):
            found.append((member, parcel))
    return found


def ensure_parcel(session: Session, *, shipment_id: str,
                  merge: MergeRule | None = None) -> ParcelRow:
    """The shipment's parcel, made with its lines the first time (idempotent: a retry finds
    the parcel the shipment is in). With `merge`, a shipment to the same receiver as an
    open parcel released within the window, none printed yet, joins that parcel instead."""
    found = parcel_of_shipment(session, shipment_id)
    if found is not None:
        return found
    pid = parcel_id_for(shipment_id)
    found = session.get(ParcelRow, pid)
    if found is not None:  # made before, the shipment since split off or left
        return found
    shipment = session.get(Shipment, shipment_id)
    if shipment is None:
        raise ParcelProblem(f"unknown shipment {shipment_id}")
    doc = document_of(session, shipment.order_id)
    key = None
    if merge is not None and merge.enabled and shop_merges(session, doc):
        key = merge_key(doc, shipment.warehouse)
    t = now()
    parcel = None
    if key is not None:
        lock_merge_key(session, key)
        # Another shipment of the same order (the rest of a partial release, a pick
        # exception's replacement) is a parcel of its own: each shipment ships on its own.
        same_order = select(ParcelOrderRow.parcel_id).where(
            ParcelOrderRow.parcel_id == ParcelRow.parcel_id,
            ParcelOrderRow.order_id == shipment.order_id)
        parcel = session.execute(
            select(ParcelRow).where(ParcelRow.merge_key == key, ParcelRow.state == "allocated",
                                    ParcelRow.created_at >= t - merge.window,  # type: ignore[union-attr]
                                    ~same_order.exists())
            .order_by(ParcelRow.created_at).limit(1).with_for_update()
        ).scalars().first()
        if parcel is not None and parcel_of_shipment(session, shipment_id) is not None:
            return parcel  # joined by a retry that raced this one
    if parcel is None:
        parcel = ParcelRow(
            parcel_id=pid, warehouse=shipment.warehouse, state="allocated", merge_key=key,
            cod=((doc.get("payment") or {}).get("status") == "cod"), expected_g=0,
            created_at=t, updated_at=t,
        )
        session.add(parcel)
        session.flush()
    add_lines(session, parcel, shipment)
    session.add(ParcelOrderRow(parcel_id=parcel.parcel_id, order_id=shipment.order_id,
                               shipment_id=shipment_id, joined_at=t))
    parcel.updated_at = t
    session.add(parcel)
    session.flush()
    return parcel


def add_lines(session: Session, parcel: ParcelRow, shipment: Shipment) -> None:
    lines = list((shipment.pick_list or {}).get("lines") or [])
    skus = [str(line["sku"]) for line in lines]
    catalog = {c.sku: c for c in session.execute(
        select(CatalogRow).where(CatalogRow.sku.in_(skus))  # type: ignore[attr-defined]
    ).scalars()} if skus else {}
    merged: dict[str, dict[str, Any]] = {}
    for line in lines:
        sku = str(line["sku"])
        item = merged.setdefault(sku, {"qty": 0, "name": line.get("name") or sku})
        item["qty"] += int(line["qty"])
    for sku, item in merged.items():
        weight = catalog[sku].weight_g if sku in catalog else 0
        parcel.expected_g += weight * item["qty"]
        session.add(ParcelLineRow(parcel_id=parcel.parcel_id, order_id=shipment.order_id,
                                  sku=sku, name=str(item["name"])[:200], qty=item["qty"],
                                  weight_g=weight))


def orders_in(session: Session, parcel_id: str) -> list[ParcelOrderRow]:
    return list(session.execute(
        select(ParcelOrderRow).where(ParcelOrderRow.parcel_id == parcel_id,
                                     ParcelOrderRow.status == "in")
        .order_by(ParcelOrderRow.joined_at, ParcelOrderRow.order_id)
    ).scalars())


def lines_of(session: Session, parcel_id: str) -> list[ParcelLineRow]:
    return list(session.execute(
        select(ParcelLineRow).where(ParcelLineRow.parcel_id == parcel_id)
        .order_by(ParcelLineRow.order_id, ParcelLineRow.sku)
    ).scalars())


def facts_of(session: Session, parcel: ParcelRow) -> ShipmentFacts:
    first = orders_in(session, parcel.parcel_id)[0]
    doc = document_of(session, first.order_id)
    return ShipmentFacts(
        province=str((doc.get("address") or {}).get("province") or ""),
        weight_g=parcel.expected_g, cod=parcel.cod, warehouse=parcel.warehouse,
        requested=requested_carrier(doc.get("remarks"), all_carriers(session)),
    )


def choose_carrier(session: Session, parcel: ParcelRow) -> Choice:
    """Chosen once: a parcel that has a carrier keeps it (a retry, or the clerk's pick)."""
    if parcel.carrier:
        return Choice(parcel.carrier, None, parcel.carrier_reason or "chosen before")
    choice = choose(facts_of(session, parcel), all_carriers(session))
    if choice.carrier is None:
        parcel.hold = "no_carrier"
        parcel.carrier_reason = choice.reason[:300]
    else:
        parcel.carrier, parcel.carrier_reason, parcel.hold = choice.carrier, choice.reason[:300], None
        parcel.cost = str(choice.cost)
    parcel.updated_at = now()
    session.add(parcel)
    return choice


def refuse_pick(session: Session, parcel: ParcelRow | None, code: str) -> str | None:
    """Why a clerk may not give this parcel this carrier, or None."""
    if parcel is None:
        return "no such parcel"
    if parcel.state != "allocated" or parcel.waybill:
        return f"the parcel already has waybill {parcel.waybill} ({parcel.state}); void it first"
    carrier = find_carrier(session, code)
    if carrier is None:
        return f"unknown carrier {code!r}"
    if parcel.cod and not carrier.cod:
        return f"{code} does not collect cash on delivery and the order is COD"
    return None


def pick_carrier(session: Session, parcel_id: str, code: str, *, by: str) -> dict[str, Any]:
    """The clerk's carrier for a parcel (e.g. one held `no_carrier`); refused with why."""
    parcel = session.get(ParcelRow, parcel_id, with_for_update=True)
    problem = refuse_pick(session, parcel, code)
    if problem:
        raise ParcelProblem(problem)
    assert parcel is not None
    carrier = find_carrier(session, code)
    assert carrier is not None
    note = why_not(carrier, facts_of(session, parcel))
    parcel.carrier = code
    parcel.carrier_reason = f"picked by {by}" + (f" although it {note}" if note else "")
    parcel.hold = None
    parcel.cost = None if note else str(carrier.cost(facts_of(session, parcel).province,
                                                     parcel.expected_g))
    parcel.updated_at = now()
    session.add(parcel)
    return view(session, parcel)


def issue_from_pool(session: Session, parcel: ParcelRow) -> Taken:
    """The parcel's waybill from its carrier's pool, recorded as the parcel's, once."""
    carrier = find_carrier(session, parcel.carrier or "")
    if carrier is None or carrier.waybill.kind != "pool":
        raise ParcelProblem(f"carrier {parcel.carrier} does not take waybills from a pool")
    try:
        taken = take(session, carrier.code, parcel.parcel_id, carrier.waybill.low_at)
    except PoolEmpty:
        parcel.hold = "waybill_pool_empty"
        parcel.updated_at = now()
        session.add(parcel)
        raise
    record_waybill(session, parcel, taken.number, kind="pool")
    return taken


def record_waybill(session: Session, parcel: ParcelRow, number: str, *, kind: str,
                   routing_code: str | None = None) -> None:
    """Give the parcel this waybill; a number that belongs to another parcel is refused."""
    existing = session.get(WaybillRow, number)
    if existing is not None and existing.parcel_id != parcel.parcel_id:
        raise ParcelProblem(f"waybill {number} already belongs to parcel {existing.parcel_id}")
    if existing is None:
        members = orders_in(session, parcel.parcel_id)
        receiver = receiver_key(document_of(session, members[0].order_id)) if members else None
        session.add(WaybillRow(number=number, carrier=parcel.carrier or "", kind=kind,
                               parcel_id=parcel.parcel_id, routing_code=routing_code,
                               receiver_key=receiver, issued_at=now()))
    parcel.waybill, parcel.routing_code, parcel.hold = number, routing_code, None
    parcel.updated_at = now()
    session.add(parcel)
    session.flush()


def void_waybill(session: Session, parcel: ParcelRow, reason: str) -> str | None:
    """The parcel's waybill marked void (never reused); the parcel loses it. Idempotent."""
    number = parcel.waybill
    if number is None:
        return None
    row = session.get(WaybillRow, number)
    if row is not None and row.status == "issued":
        row.status, row.voided_at, row.void_reason = "void", now(), reason[:200]
        session.add(row)
        if row.kind == "pool":
            pool_void(session, number)
    parcel.waybill, parcel.routing_code = None, None
    parcel.updated_at = now()
    session.add(parcel)
    return number


def sync_lines(session: Session, parcel: ParcelRow) -> None:
    """Take off the parcel's lines what a pick exception took off its shipments since (the
    units the ledger no longer holds for them): the packer is never asked for a damaged or
    missing unit, and the expected weight drops with it. Lines only shrink."""
    from models.tables import Reservation

    for member in orders_in(session, parcel.parcel_id):
        rows = session.execute(
            select(Reservation.sku, Reservation.qty, Reservation.status)
            .where(Reservation.shipment_id == member.shipment_id)
        ).all()
        if not rows or any(r.status == "consumed" for r in rows):
            continue  # not booked through the ledger here, or already shipped
        held: dict[str, int] = {}
        for r in rows:
            if r.status == "held":
                held[r.sku] = held.get(r.sku, 0) + r.qty
        for line in lines_of(session, parcel.parcel_id):
            if line.order_id != member.order_id or held.get(line.sku, 0) >= line.qty:
                continue
            keep = held.get(line.sku, 0)
            parcel.expected_g -= line.weight_g * (line.qty - keep)
            if keep <= 0:
                session.delete(line)
            else:
                line.qty, line.scanned = keep, min(line.scanned, keep)
                session.add(line)
            session.add(parcel)
    session.flush()


def leave(session: Session, parcel: ParcelRow, order_id: str) -> None:
    """An order leaves a merged parcel: its lines go, its membership is marked `left`."""
    for line in lines_of(session, parcel.parcel_id):
        if line.order_id == order_id:
            parcel.expected_g -= line.weight_g * line.qty
            session.delete(line)
    for member in orders_in(session, parcel.parcel_id):
        if member.order_id == order_id:
            member.status = "left"
            session.add(member)
    session.flush()


def split_off(session: Session, parcel: ParcelRow, member: ParcelOrderRow) -> ParcelRow:
    """One order of a merged parcel into a parcel of its own (same carrier, no waybill yet)."""
    t = now()
    own = ParcelRow(parcel_id=parcel_id_for(member.shipment_id), warehouse=parcel.warehouse,
                    carrier=parcel.carrier, carrier_reason=f"split from {parcel.parcel_id}",
                    state="allocated", cod=parcel.cod, expected_g=0, created_at=t, updated_at=t)
    session.add(own)
    session.flush()
    move(session, parcel, own, member)
    return own


def move(session: Session, source: ParcelRow, target: ParcelRow, member: ParcelOrderRow) -> None:
    """An order's lines and membership from one parcel into another."""
    for line in lines_of(session, source.parcel_id):
        if line.order_id == member.order_id:
            source.expected_g -= line.weight_g * line.qty
            target.expected_g += line.weight_g * line.qty
            session.add(ParcelLineRow(parcel_id=target.parcel_id, order_id=line.order_id,
                                      sku=line.sku, name=line.name, qty=line.qty,
                                      weight_g=line.weight_g))
            session.delete(line)
    member.status = "left"
    session.add(member)
    session.add(ParcelOrderRow(parcel_id=target.parcel_id, order_id=member.order_id,
                               shipment_id=member.shipment_id, joined_at=now()))
    session.add(source)
    session.add(target)
    session.flush()


def back_to_print(session: Session, parcel: ParcelRow) -> None:
    """A parcel whose label changed goes back to the start of the desk: printed again, and
    its items scanned again (the box is opened for the new label anyway)."""
    parcel.state, parcel.printed_at, parcel.verified_at = "allocated", None, None
    for line in lines_of(session, parcel.parcel_id):
        if line.scanned:
            line.scanned = 0
            session.add(line)
    parcel.updated_at = now()
    session.add(parcel)


def by_waybill(session: Session, waybill: str, *, lock: bool = False) -> ParcelRow | None:
    stmt = select(ParcelRow).where(ParcelRow.waybill == waybill)
    if lock:
        stmt = stmt.with_for_update()
    return session.execute(stmt).scalars().first()


def view(session: Session, parcel: ParcelRow) -> dict[str, Any]:
    """A parcel as `oms parcels --json` prints it (SPEC §5.11), plus the desk's extras."""
    lines = lines_of(session, parcel.parcel_id)
    return {
        "parcel_id": parcel.parcel_id,
        "carrier": parcel.carrier,
        "waybill": parcel.waybill,
        "orders": [o.order_id for o in orders_in(session, parcel.parcel_id)],
        "lines": [{"order_id": ln.order_id, "sku": ln.sku, "qty": ln.qty, "scanned": ln.scanned,
                   "name": ln.name} for ln in lines],
        "state": parcel.state,
        "weight_g": parcel.weight_g,
        "warehouse": parcel.warehouse,
        "hold": parcel.hold,
        "carrier_reason": parcel.carrier_reason,
        "routing_code": parcel.routing_code,
    }


def parcels_of(session: Session, order_id: str) -> list[dict[str, Any]]:
    ids = session.execute(
        select(ParcelOrderRow.parcel_id).where(ParcelOrderRow.order_id == order_id,
                                               ParcelOrderRow.status == "in")
        .order_by(ParcelOrderRow.joined_at, ParcelOrderRow.parcel_id)
    ).scalars().all()
    out = []
    for pid in ids:
        parcel = session.get(ParcelRow, pid)
        if parcel is not None:
            out.append(view(session, parcel))
    return out


def shipments_of(session: Session, order_id: str) -> list[Shipment]:
    return list(session.execute(
        select(Shipment).where(Shipment.order_id == order_id).order_by(Shipment.shipment_no)
    ).scalars())


def json_view(parcel: dict[str, Any]) -> dict[str, Any]:
    """A parcel as `oms parcels --json` prints it (SPEC §5.11)."""
    return {k: parcel[k] for k in ("parcel_id", "carrier", "waybill", "orders", "state",
                                   "weight_g")} | {
        "lines": [{"order_id": ln["order_id"], "sku": ln["sku"], "qty": ln["qty"]}
                  for ln in parcel["lines"]]}


def add_to_status(session: Session, status: dict[str, Any]) -> dict[str, Any]:
    """`status --json` gains `parcels` (as `parcels --json`), and per shipment the parcel's
    `carrier` (where the warehouse has not reported one) and `waybill`."""
    parcels = parcels_of(session, status["order_id"])
    status["parcels"] = [json_view(p) for p in parcels]
    by_shipment = {}
    for member in session.execute(
        select(ParcelOrderRow).where(ParcelOrderRow.order_id == status["order_id"],
                                     ParcelOrderRow.status == "in")
    ).scalars():
        by_shipment[member.shipment_id] = next(
            (p for p in parcels if p["parcel_id"] == member.parcel_id), None)
    for shipment in status.get("shipments", []):
        parcel = by_shipment.get(shipment["id"])
        shipment["waybill"] = parcel["waybill"] if parcel else None
        if parcel and not shipment.get("carrier"):
            shipment["carrier"] = parcel["carrier"]
    return status
