"""Shipments: a warehouse event applied to its shipment (shipped consumes the stock and tells the
platform and the buyer; cancelled withdraws the pick list), and the pick list's delivery
region in today's division names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from intake.addresses import current_region
from inventory.ledger import LedgerError
from inventory.warehouse import consume_shipment
from models.enums import ShipmentStatus
from models.payloads import (
    ReleaseInput,
    ShipmentUpdateInput,
)
from models.tables import (
    Order,
    Shipment,
    utcnow,
)
from outbox.store import add_event


def shipment_work(session: Any, inp: ShipmentUpdateInput) -> dict[str, Any]:
    """One warehouse event on its shipment; shipped consumes its stock."""
    shipments = Shipment.__table__
    now = utcnow()
    result: dict[str, Any] = {"shipped_lines": [], "event_ids": []}
    values: dict[str, Any] = {"status": inp.kind}
    if inp.kind == ShipmentStatus.PICKED:
        values["picked_at"] = now
    elif inp.kind == ShipmentStatus.PACKED:
        values.update(packed_at=now, parcels=inp.parcels, weight_g=inp.weight_g)
    elif inp.kind == ShipmentStatus.SHIPPED:
        values.update(shipped_at=now, carrier=inp.carrier, tracking_no=inp.tracking_no)
    # The update names the shipment's warehouse as it goes: one statement, not a read and a write.
    warehouse = session.execute(
        shipments.update()
        .where(shipments.c.id == inp.shipment_id)
        .values(values)
        .returning(shipments.c.warehouse)
    ).scalar_one_or_none()
    if warehouse is None:
        raise LedgerError(f"unknown shipment {inp.shipment_id}")
    if inp.kind == ShipmentStatus.SHIPPED:
        result["shipped_lines"] = consume_shipment(
            session, order_id=inp.order_id, shipment_id=inp.shipment_id, ref=inp.op_key
        )
        for kind in ("tracking_to_platform", "buyer_shipped_notice"):
            eid = f"{inp.op_key}:{kind}"
            add_event(
                session,
                event_id=eid,
                order_id=inp.order_id,
                type=kind,
                payload={
                    "shipment_id": inp.shipment_id,
                    "carrier": inp.carrier,
                    "tracking_no": inp.tracking_no,
                },
            )
            result["event_ids"].append(eid)
    elif inp.kind == ShipmentStatus.CANCELLED:
        eid = f"{inp.op_key}:pick_list_withdrawn"
        add_event(
            session,
            event_id=eid,
            order_id=inp.order_id,
            type="pick_list_withdrawn",
            payload={"shipment_id": inp.shipment_id, "warehouse": warehouse},
        )
        result["event_ids"].append(eid)
    return result


def pick_list_region(session: Any, inp: ReleaseInput) -> dict[str, str | None] | None:
    """The delivery region on the pick list, in today's division names.

    A buyer may have written a former name (潞西市, or 公主岭市 under 四平市); the warehouse
    gets the current one (德宏州芒市, 长春市公主岭市). Only the country, province, city and
    district: the door address and the buyer's name and phone stay off the pick list.
    """
    if inp.state is not None:
        address = inp.state.snapshot.document.address.model_dump()
    else:
        document = session.execute(
            select(Order.__table__.c.document).where(Order.__table__.c.order_id == inp.order_id)
        ).scalar()
        if not document:
            return None
        address = document.get("address") or {}
    region = current_region(
        address.get("country"),
        address.get("province"),
        address.get("city"),
        address.get("district"),
        address.get("detail"),
    )
    return {"country": address.get("country") or "CN", **region}


def shipment_state(s: Mapping[str, Any]) -> dict[str, Any]:
    """A shipment's row (fetched, or just written) as the workflow keeps it."""
    return {
        "id": s["id"],
        "shipment_no": s["shipment_no"],
        "warehouse": s["warehouse"],
        "status": s["status"],
        "carrier": s["carrier"],
        "tracking_no": s["tracking_no"],
        "lines": list((s["pick_list"] or {}).get("lines", [])),
    }

