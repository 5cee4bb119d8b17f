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

from models.db import SessionFactory, transaction
from shipping import parcels as P
from shipping.pool import PoolEmpty
from shipping.reference import carrier as find_carrier


class CainiaoIssuer(Protocol):
    """Gets a waybill for a parcel from `cainiao.waybill.ii.get` (shipping.cainiao)."""

    def issue(self, request: dict[str, Any]) -> tuple[str, str | None]: ...

    def cancel(self, *, shop: str, cp_code: str, waybill: str) -> bool: ...


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
            cainiao: CainiaoIssuer | None = None) -> Prepared:
    """Parcel, carrier and waybill of a shipment; a hold (no_carrier, waybill_pool_empty)
    is an answer, not an error: the parcel waits for a clerk or for more numbers."""
    with transaction(factory) as session:
        parcel = P.ensure_parcel(session, shipment_id=shipment_id)
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
        parcel = session.get(P.ParcelRow, P.parcel_id_for(shipment_id), with_for_update=True)
        assert parcel is not None
        if parcel.waybill is None:
            P.record_waybill(session, parcel, number, kind="cainiao", routing_code=routing)
        return Prepared(parcel.parcel_id, parcel.carrier, parcel.waybill, None, choice.reason)


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
            "object_id": parcel.parcel_id,
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
