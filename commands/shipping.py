"""Shipped at the merchant's chosen point (`shipping.ship_on`: print, verify or weigh).

When a parcel reaches that point, each order in it is told through its workflow's existing
`shipped` update (carrier + tracking = the waybill), so the order's history records it and
the tracking is written back as for any shipped event. The workflow answers; a refusal
("already shipped") leaves the parcel as it is and is reported. The parcel is `shipped`
once every order in it accepted.
"""

from __future__ import annotations

from typing import Any

from models.db import SessionFactory, transaction
from shipping import parcels as P


def due(reached: str, ship_on: str) -> bool:
    return reached == ship_on


async def ship_parcel(client: Any, factory: SessionFactory, parcel_id: str) -> list[dict[str, Any]]:
    """Send `shipped` for every order of the parcel; answer each order's outcome."""
    from commands.actions import UnknownOrder, act
    from models.tables import Shipment

    with transaction(factory) as session:
        parcel = session.get(P.ParcelRow, parcel_id)
        if parcel is None or not parcel.waybill:
            return []
        members = [(m.order_id, m.shipment_id) for m in P.orders_in(session, parcel_id)]
        numbers = {sid: (session.get(Shipment, sid).shipment_no if session.get(Shipment, sid)
                         else None) for _, sid in members}
        carrier, waybill = parcel.carrier, parcel.waybill
    outcomes = []
    for order_id, shipment_id in members:
        body = {"carrier": carrier, "tracking": waybill}
        if numbers.get(shipment_id):
            body["shipment"] = numbers[shipment_id]
        try:
            answer = await act(client, order_id, "shipped", body, by="packing desk")
            accepted, reason = answer.accepted, answer.reason
        except UnknownOrder as exc:
            accepted, reason = False, str(exc)
        already = bool(reason and "already shipped" in reason)
        outcomes.append({"order_id": order_id, "accepted": accepted or already, "reason": reason})
    if outcomes and all(o["accepted"] for o in outcomes):
        with transaction(factory) as session:
            parcel = session.get(P.ParcelRow, parcel_id, with_for_update=True)
            if parcel is not None and parcel.state != "void":
                parcel.state, parcel.shipped_at, parcel.updated_at = "shipped", P.now(), P.now()
                session.add(parcel)
    return outcomes


async def tell_ready(client: Any, parcel: dict[str, Any]) -> None:
    """Signal `parcel_ready` to every order of a parcel that now has carrier and waybill."""
    from models.documents import workflow_id_for

    if not parcel.get("carrier") or not parcel.get("waybill"):
        return
    payload = {"parcel_id": parcel["parcel_id"], "carrier": parcel["carrier"],
               "waybill": parcel["waybill"]}
    for order_id in parcel["orders"]:
        await client.get_workflow_handle(workflow_id_for(order_id)).signal("parcel_ready", payload)


async def pick_and_issue(client: Any, factory: SessionFactory, parcel_id: str, carrier: str, *,
                         by: str, cainiao: Any = None) -> dict[str, Any]:
    """A clerk's carrier for a held parcel (refused with why: `ParcelProblem`), its waybill
    issued at once, and its orders told (`parcel_ready` clears their `no_carrier`). A
    waybill that cannot be issued now (an empty pool) leaves the parcel held, said in `note`."""
    import asyncio

    from shipping.desk import prepare

    def pick() -> tuple[dict[str, Any], str]:
        with transaction(factory) as session:
            view = P.pick_carrier(session, parcel_id, carrier.strip().upper(), by=by)
            return view, P.orders_in(session, parcel_id)[0].shipment_id

    view, shipment_id = await asyncio.to_thread(pick)
    done = await asyncio.to_thread(prepare, factory, shipment_id, cainiao=cainiao)
    view = view | {"waybill": done.waybill, "hold": done.hold,
                   "note": None if done.waybill else done.reason}
    if done.waybill and client is not None:
        await tell_ready(client, view)
    return view
