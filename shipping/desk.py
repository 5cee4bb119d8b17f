"""The desk's steps over a shipment: its parcel, its carrier, its waybill.

`prepare` is what the release activity and `oms labels` both do for a shipment: the parcel
made (idempotent under its key), the carrier chosen (once), and the waybill issued (once).
A pool waybill is taken in the same transaction; a Cainiao waybill is asked for between two
transactions (never holding a lock across an HTTP call) through a `CainiaoIssuer`, and
recorded under the parcel key, which is also the `object_id` the service de-duplicates on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import select

from models.db import SessionFactory, transaction
from models.errors import OmsError
from models.tables import Order
from shipping import parcels as P
from shipping.carriers import why_not
from shipping.pool import PoolEmpty
from shipping.reference import carrier as find_carrier
from shipping.tables import CarrierRow


class CainiaoIssuer(Protocol):
    """Gets a waybill for a parcel from `cainiao.waybill.ii.get` (shipping.cainiao)."""

    def issue(self, request: dict[str, Any]) -> tuple[str, str | None]: ...

    def cancel(self, *, shop: str, cp_code: str, waybill: str) -> bool: ...


NOT_IN_USE = "no carriers loaded: the shipping desk is not in use (oms load carriers FILE)"


@dataclass
class Prepared:
    parcel_id: str
    carrier: str | None
    waybill: str | None
    hold: str | None
    reason: str
    flags: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"parcel_id": self.parcel_id, "carrier": self.carrier, "waybill": self.waybill,
                "hold": self.hold, "reason": self.reason, "flags": list(self.flags)}


def prepare(factory: SessionFactory, shipment_id: str, *,
            cainiao: CainiaoIssuer | None = None, merge: P.MergeRule | None = None) -> Prepared:
    """Parcel, carrier and waybill of a shipment; a hold (no_carrier, waybill_pool_empty)
    is an answer, not an error: the parcel waits for a clerk or for more numbers. Two
    callers at once (the release and a label printed meanwhile) agree: the one that loses
    the race to make the parcel finds it made and goes on from there."""
    from sqlalchemy.exc import IntegrityError

    try:
        return _prepare(factory, shipment_id, cainiao, merge)
    except IntegrityError:
        pass
    try:
        return _prepare(factory, shipment_id, cainiao, merge)
    except IntegrityError as exc:  # a conflict a third try would meet again: not retried
        raise P.ParcelProblem(f"the parcel of shipment {shipment_id} cannot be recorded: "
                              f"{str(exc.orig).splitlines()[0][:200]}") from exc


def _prepare(factory: SessionFactory, shipment_id: str,
             cainiao: CainiaoIssuer | None, merge: P.MergeRule | None) -> Prepared:
    with transaction(factory) as session:
        if session.execute(select(CarrierRow.code).limit(1)).first() is None:
            return Prepared(P.parcel_id_for(shipment_id), None, None, None, NOT_IN_USE)
        parcel = P.ensure_parcel(session, shipment_id=shipment_id, merge=merge)
        pid = parcel.parcel_id
        if parcel.waybill:
            return Prepared(parcel.parcel_id, parcel.carrier, parcel.waybill, None,
                            parcel.carrier_reason or "")
        choice = P.choose_carrier(session, parcel)
        if parcel.carrier is None:
            return Prepared(parcel.parcel_id, None, None, "no_carrier", choice.reason,
                            ["no_carrier"])
        carrier = find_carrier(session, parcel.carrier)
        if carrier is None:
            raise P.ParcelProblem(f"carrier {parcel.carrier} is no longer loaded")
        if carrier.waybill.kind == "pool":
            try:
                taken = P.issue_from_pool(session, parcel)
            except PoolEmpty as exc:
                # The hold is written (the parcel waits); answering here commits it.
                return Prepared(parcel.parcel_id, parcel.carrier, None, "waybill_pool_empty",
                                str(exc), ["waybill_pool_empty"])
            return Prepared(parcel.parcel_id, parcel.carrier, taken.number, None,
                            choice.reason, ["waybill_pool_low"] if taken.low else [])
        request = cainiao_request(session, parcel, carrier.code)
        shop = carrier.waybill.shop  # type: ignore[union-attr]
    if cainiao is None:
        raise P.ParcelProblem(f"carrier {carrier.code} issues waybills through Cainiao, "
                              "and no Cainiao client is configured")
    number, routing = cainiao.issue({"shop": shop, **request})
    with transaction(factory) as session:
        parcel = session.get(P.ParcelRow, pid, with_for_update=True)
        assert parcel is not None
        if parcel.waybill is None:
            P.record_waybill(session, parcel, number, kind="cainiao", routing_code=routing)
        return Prepared(parcel.parcel_id, parcel.carrier, parcel.waybill, None, choice.reason)


def object_id(parcel: P.ParcelRow) -> str:
    """The parcel key as Cainiao's `object_id`; a parcel re-labelled asks under a new one."""
    return parcel.parcel_id if not parcel.issue_no else f"{parcel.parcel_id}-{parcel.issue_no}"


def cainiao_request(session: Any, parcel: P.ParcelRow, cp_code: str) -> dict[str, Any]:
    """The `param_waybill_cloud_print_apply_new_request` of SPEC §5.10 for one parcel."""
    from shipping.reference import sender_of

    members = P.orders_in(session, parcel.parcel_id)
    doc = P.document_of(session, members[0].order_id)
    sender = sender_of(session, parcel.warehouse) or {}
    address = doc.get("address") or {}
    buyer = doc.get("buyer") or {}
    platform = str(doc.get("platform") or "")
    channel = {"taobao": "TB", "tmall": "TB", "pdd": "PDD"}.get(platform, "OTHERS")
    return {
        "cp_code": cp_code,
        "sender": {"name": sender.get("name"), "mobile": sender.get("phone"),
                   "address": {k: sender.get(k) for k in ("province", "city", "district", "detail")}},
        "trade_order_info_dtos": [{
            "object_id": object_id(parcel),
            "order_info": {"order_channels_type": channel,
                           "trade_order_list": [m.order_id for m in members]},
            "package_info": {"id": parcel.parcel_id,
                             "items": [{"name": ln.name, "count": ln.qty}
                                       for ln in P.lines_of(session, parcel.parcel_id)],
                             "weight": parcel.expected_g},
            "recipient": {"name": buyer.get("name"), "mobile": buyer.get("phone"),
                          "address": {k: address.get(k) for k in
                                      ("province", "city", "district", "detail")},
                          "oaid": doc.get("oaid"), "tid": doc.get("platform_order_id")},
        }],
    }


class LabelProblem(OmsError, ValueError):
    """Labels that cannot be printed (an order with no shipment yet, a parcel held...)."""


def label_of(session: Any, parcel: P.ParcelRow) -> Any:
    """The `Label` of a parcel, masked: built from its orders, lines and warehouse."""
    from shipping.labels import Label, mask_name, mask_phone
    from shipping.reference import sender_of

    members = P.orders_in(session, parcel.parcel_id)
    doc = P.document_of(session, members[0].order_id)
    buyer, address = doc.get("buyer") or {}, doc.get("address") or {}
    sender = sender_of(session, parcel.warehouse) or {}
    carrier = find_carrier(session, parcel.carrier or "")
    remarks = []
    for m in members:
        text = P.document_of(session, m.order_id).get("remarks") if m is not members[0] else \
            doc.get("remarks")
        if text and text not in remarks:
            remarks.append(str(text))
    return Label(
        waybill=parcel.waybill or "",
        carrier=parcel.carrier or "",
        carrier_name=carrier.name if carrier else (parcel.carrier or ""),
        receiver_name=mask_name(buyer.get("name")),
        receiver_phone=mask_phone(buyer.get("phone")),
        address="".join(str(address.get(k) or "") for k in
                        ("province", "city", "district", "detail")),
        sender=" ".join(str(sender.get(k) or "") for k in
                        ("name", "phone", "province", "city", "district", "detail")).strip()
        or parcel.warehouse,
        items=[(ln.name or ln.sku, ln.qty) for ln in P.lines_of(session, parcel.parcel_id)],
        order_ids=[m.order_id for m in members],
        remarks="；".join(remarks),
        routing_code=parcel.routing_code,
    )


def labels_for(factory: SessionFactory, order_ids: list[str], *, size: str = "76x130",
               cainiao: CainiaoIssuer | None = None) -> tuple[bytes, list[dict[str, Any]]]:
    """One PDF of the parcels of these orders (each parcel once, in the orders' order); a
    parcel with no waybill yet gets one first. Answers the PDF and what was printed."""
    from shipping.labels import SIZES, render

    if size not in SIZES:
        raise LabelProblem(f"size must be one of {', '.join(SIZES)}, not {size!r}")
    if not order_ids:
        raise LabelProblem("order_ids: give at least one order")
    shipment_ids: list[str] = []
    with transaction(factory) as session:
        for order_id in order_ids:
            order = session.get(Order, order_id)
            if order is None:
                raise LabelProblem(f"unknown order {order_id}")
            if order.stage == "cancelled":
                raise LabelProblem(f"order {order_id} is cancelled: no label")
            found = [s.id for s in P.shipments_of(session, order_id) if s.status != "cancelled"]
            if not found:
                raise LabelProblem(f"order {order_id} has no shipment yet ({order.stage}): "
                                   "a label is printed once the order is released")
            shipment_ids += found
    parcel_ids: list[str] = []
    for sid in shipment_ids:
        done = prepare(factory, sid, cainiao=cainiao)
        if done.hold:
            raise LabelProblem(f"parcel {done.parcel_id} is held ({done.hold}): {done.reason}")
        if done.waybill is None:
            raise LabelProblem(done.reason)
        if done.parcel_id not in parcel_ids:
            parcel_ids.append(done.parcel_id)
    labels, printed = [], []
    with transaction(factory) as session:
        for pid in parcel_ids:
            parcel = session.get(P.ParcelRow, pid, with_for_update=True)
            assert parcel is not None
            P.sync_lines(session, parcel)
            labels.append(label_of(session, parcel))
            if parcel.state == "allocated":
                parcel.state, parcel.printed_at = "printed", P.now()
                parcel.updated_at = P.now()
                session.add(parcel)
            printed.append({"parcel_id": pid, "waybill": parcel.waybill,
                            "orders": labels[-1].order_ids})
    return render(labels, size), printed


def void_order_parcels(factory: SessionFactory, order_id: str, reason: str, *,
                       cainiao: CainiaoIssuer | None = None) -> dict[str, list[str]]:
    """Compensation of a cancel: the order leaves its parcels that have not shipped.

    Alone in its parcel, the parcel is void and its waybill too. In a merged parcel, the
    order's lines leave and the others stay: before printing the parcel keeps its waybill
    (nothing was printed under it); after printing the waybill is voided and the rest get a
    new one, and a new label. Every number is first marked void here, in one transaction (no
    packer can use it from then on, and no one is ever given it again); a Cainiao number is
    then cancelled with the service, and marked `cancelled` once it answered. Idempotent: a
    retry finds the parcels already left and only the Cainiao cancels still owed."""
    void_note = f"order {order_id} cancelled: {reason}"[:200]
    voided: list[str] = []
    relabel: list[str] = []
    with transaction(factory) as session:
        for _member, parcel in P.unshipped_parcels_of(session, order_id):
            others = [m.shipment_id for m in P.orders_in(session, parcel.parcel_id)
                      if m.order_id != order_id]
            printed = parcel.state != "allocated"
            if parcel.waybill and (not others or printed):
                voided.append(P.void_waybill(session, parcel, void_note) or "")
                if others:
                    parcel.state, parcel.issue_no = "allocated", parcel.issue_no + 1
                    relabel.append(others[0])
            if not others:
                parcel.state = "void"
            else:
                P.leave(session, parcel, order_id)
            parcel.updated_at = P.now()
            session.add(parcel)
    cancelled = cancel_voided(factory, void_note, cainiao)
    relabel_rest(factory, relabel, cainiao)  # the rest of a printed merged parcel
    return {"voided": [v for v in voided if v], "cancelled": cancelled}


def relabel_rest(factory: SessionFactory, shipment_ids: list[str],
                 cainiao: CainiaoIssuer | None) -> None:
    """A new number now for the parcels an order left that need one (each named by one of its
    shipments); a service down is no matter: the next label issues it."""
    for shipment_id in shipment_ids:
        try:
            prepare(factory, shipment_id, cainiao=cainiao)
        except Exception:  # noqa: BLE001
            continue


def cancel_voided(factory: SessionFactory, void_note: str,
                  cainiao: CainiaoIssuer | None) -> list[str]:
    """The Cainiao numbers voided here under `void_note`, cancelled with the service (each
    marked `cancelled` once it answered; a retry asks only for those still owed)."""
    with transaction(factory) as session:
        owed = [(row.number, row.carrier) for row in session.execute(
            select(P.WaybillRow).where(P.WaybillRow.kind == "cainiao",
                                       P.WaybillRow.status == "void",
                                       P.WaybillRow.void_reason == void_note)
        ).scalars()]
        shops = {code: find_carrier(session, code) for _, code in owed}
    cancelled: list[str] = []
    for number, code in owed:
        carrier = shops.get(code)
        if carrier is None or carrier.waybill.kind != "cainiao":
            continue
        if cainiao is None:
            raise P.ParcelProblem(f"waybill {number} was issued by Cainiao and no Cainiao "
                                  "client is configured to cancel it (it is void here)")
        cainiao.cancel(shop=carrier.waybill.shop, cp_code=code, waybill=number)
        with transaction(factory) as session:
            row = session.get(P.WaybillRow, number, with_for_update=True)
            if row is not None:
                row.status = "cancelled"
                session.add(row)
        cancelled.append(number)
    return cancelled


def readdress_order_parcels(factory: SessionFactory, order_id: str, *,
                            cainiao: CainiaoIssuer | None = None) -> list[dict[str, Any]]:
    """The buyer changed the address on the platform before the order shipped (SPEC §3.9,
    §8.10): no label with the old address may go out, and no Cainiao number stays issued to
    the old receiver. Reads the order's new document (the workflow writes it first).

    Each parcel of the order not yet shipped:

    * merged with orders whose receiver is no longer the order's: the order leaves, into a
      parcel of its own (when its shipment named the parcel, the others move on together to
      a parcel named by the next of them); a merged parcel already printed is re-labelled
      under a new number (its label listed the order), one not printed keeps its number;
    * the order's own parcel: the carrier is chosen again when the one it has cannot serve
      the new address; a number issued to the old receiver (`waybills.receiver_key`) is
      voided (Cainiao's cancelled) and a new one issued when it is Cainiao's (the service
      holds the old receiver) or already printed; a pool number not yet printed is kept (it
      names nobody). A parcel with a new number goes back to print, its scans to zero.

    Idempotent: a retry finds the order alone in its parcel under a number issued to its
    new receiver, and issues or cancels only what is still owed. Answers each parcel of the
    order: its number before (`old_waybill`) and now, carrier, hold.
    """
    void_note = f"order {order_id}: the buyer changed the address"[:200]
    own: list[tuple[str, str | None]] = []  # (a shipment of the order's parcel, its old number)
    others: list[str] = []  # a shipment of each parcel the order left that needs a new number
    with transaction(factory) as session:
        doc = P.document_of(session, order_id)
        receiver = P.receiver_key(doc)
        for member, parcel in P.unshipped_parcels_of(session, order_id):
            old = parcel.waybill
            rest = [m for m in P.orders_in(session, parcel.parcel_id) if m.order_id != order_id]
            if rest and P.merge_key(doc, parcel.warehouse) != parcel.merge_key:
                if parcel.parcel_id == P.parcel_id_for(member.shipment_id):
                    moved = P.split_off(session, parcel, rest[0])
                    moved.merge_key, moved.cost = parcel.merge_key, parcel.cost
                    moved.carrier_reason = parcel.carrier_reason
                    for m in rest[1:]:
                        P.move(session, parcel, moved, m)
                    parcel.merge_key = None
                    others.append(rest[0].shipment_id)
                else:
                    if parcel.state != "allocated" and parcel.waybill:
                        P.void_waybill(session, parcel, void_note)
                        parcel.issue_no += 1
                        P.back_to_print(session, parcel)
                        others.append(rest[0].shipment_id)
                    parcel = P.split_off(session, parcel, member)
            carrier = find_carrier(session, parcel.carrier or "")
            unable = why_not(carrier, P.facts_of(session, parcel)) if carrier else "gone"
            if parcel.carrier and unable:
                parcel.carrier, parcel.cost = None, None
                parcel.carrier_reason = f"chosen again: the address changed (it {unable})"
            issued = session.get(P.WaybillRow, parcel.waybill) if parcel.waybill else None
            if issued is not None and issued.receiver_key != receiver:
                if parcel.carrier is None or issued.kind == "cainiao" or parcel.state != "allocated":
                    P.void_waybill(session, parcel, void_note)
                    parcel.issue_no += 1
                    P.back_to_print(session, parcel)
                else:  # a pool number not printed yet: its label will show the new address
                    issued.receiver_key = receiver
                    session.add(issued)
            own.append((member.shipment_id, old))
    cancel_voided(factory, void_note, cainiao)
    relabel_rest(factory, others, cainiao)  # what stayed together
    answers = []
    for shipment_id, old in own:  # a service down raises: the activity is retried
        done = prepare(factory, shipment_id, cainiao=cainiao)
        answers.append({**done.as_dict(), "old_waybill": old})
    return answers


def split_parcel(factory: SessionFactory, waybill: str, *,
                 cainiao: CainiaoIssuer | None = None) -> list[dict[str, Any]]:
    """Undo a merge before printing: the first order keeps the parcel and its waybill, each
    other order gets a parcel of its own (and its own waybill). Answers every parcel."""
    moved: list[str] = []
    with transaction(factory) as session:
        parcel = P.by_waybill(session, waybill, lock=True)
        if parcel is None:
            raise P.ParcelProblem(f"unknown waybill {waybill!r}")
        if parcel.state != "allocated":
            raise P.ParcelProblem(f"parcel {parcel.parcel_id} is already {parcel.state}: "
                                  "a printed parcel is not split (cancel and re-release instead)")
        members = P.orders_in(session, parcel.parcel_id)
        if len(members) < 2:
            raise P.ParcelProblem(f"parcel {parcel.parcel_id} holds one order: nothing to split")
        parcel.merge_key = None  # never merged into again
        for member in members[1:]:
            P.split_off(session, parcel, member)
            moved.append(member.shipment_id)
        session.add(parcel)
        keep = parcel.parcel_id
    for shipment_id in moved:
        prepare(factory, shipment_id, cainiao=cainiao)
    with transaction(factory) as session:
        ids = [keep] + [P.parcel_id_for(sid) for sid in moved]
        return [P.view(session, session.get(P.ParcelRow, pid)) for pid in ids]


def resume_pool_holds(factory: SessionFactory, carrier: str, *,
                      cainiao: CainiaoIssuer | None = None) -> list[dict[str, Any]]:
    """After numbers were loaded: the parcels of `carrier` held `waybill_pool_empty` get their
    waybills now, oldest first, as long as the pool lasts. Answers each parcel served."""
    with transaction(factory) as session:
        held = [(p.parcel_id, P.orders_in(session, p.parcel_id)) for p in session.execute(
            select(P.ParcelRow).where(P.ParcelRow.carrier == carrier,
                                      P.ParcelRow.hold == "waybill_pool_empty",
                                      P.ParcelRow.waybill.is_(None))  # type: ignore[union-attr]
            .order_by(P.ParcelRow.created_at)
        ).scalars()]
    served = []
    for parcel_id, members in held:
        if not members:
            continue
        done = prepare(factory, members[0].shipment_id, cainiao=cainiao)
        if done.waybill is None:
            break  # the pool ran out again
        served.append({"parcel_id": parcel_id, "carrier": done.carrier, "waybill": done.waybill,
                       "orders": [m.order_id for m in members]})
    return served
