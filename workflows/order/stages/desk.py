"""The shipping desk at release (SPEC §3.10, issue 20): each new shipment's parcel, carrier and
waybill, with the undo pushed first.

Taken only by orders started on the desk's code (`patches.SHIPPING_DESK`, decided in the
first activation). Right after the pick lists are written, the compensation `void_waybills`
is pushed (before any waybill exists: a cancel from here on voids whatever was issued, a
Cainiao number cancelled at Cainiao), then one `prepare_parcel` activity per shipment:
the parcel is made under its key, the carrier chosen (the timeline records which and why),
and the waybill issued. A waybill service that is down is retried with backoff while the
order goes on waiting for the warehouse; a parcel that no carrier serves, or whose pool is
empty, is flagged (`no_carrier`, `waybill_pool_empty`) for a clerk, who picks a carrier or
loads numbers and prints its label; a pool running low is flagged `waybill_pool_low`.
Where a parcel counts as shipped (`shipping.ship_on`) the desk sends the order its
`shipped` update, carrier and waybill, like any warehouse.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.shipping import ShippingActivities
    from shipping.payloads import PrepareParcelInput, ReaddressInput, VoidParcelsInput
    from shipping.retry import RETRY_WAYBILL, VOID_WITHIN, WAYBILL_HEARTBEAT, WAYBILL_TIMEOUT
    from workflows.order.steps import STEP_FAILED, cause

if TYPE_CHECKING:
    from workflows.order.context import Order


async def prepare_parcels(o: Order, released: int) -> None:
    """Parcel, carrier and waybill of the shipments the release just wrote."""
    s = o.state
    if not o.patches.desk or released <= 0 or not s.policy.shipping.desk:
        return
    o.compensation.push("void_waybills", lambda: void_waybills(o))
    for shipment in s.shipments[-released:]:
        try:
            result = await workflow.execute_activity_method(
                ShippingActivities.prepare_parcel,
                PrepareParcelInput(order_id=s.order_id, shipment_id=shipment.id,
                                   merge=s.policy.merge.enabled,
                                   merge_window_s=s.policy.merge.window.total_seconds()),
                start_to_close_timeout=WAYBILL_TIMEOUT,
                heartbeat_timeout=WAYBILL_HEARTBEAT,
                retry_policy=RETRY_WAYBILL,
            )
        except STEP_FAILED as err:  # no retry can fix it: a clerk prints the label by hand
            s.flag("parcel_failed")
            s.log("parcel_failed", shipment=shipment.id, error=cause(err))
            continue
        if result.carrier is None and result.hold is None:
            continue  # no carriers loaded: the desk is not in use
        s.log("parcel", shipment=shipment.id, parcel=result.parcel_id, carrier=result.carrier,
              waybill=result.waybill, hold=result.hold, reason=result.reason)
        for flag in result.flags:
            s.flag(flag)
    s.touch()


async def void_waybills(o: Order) -> None:
    """Undo: the order's waybills that did not ship are voided (never issued again)."""
    s = o.state
    result = await workflow.execute_activity_method(
        ShippingActivities.void_parcels,
        VoidParcelsInput(order_id=s.order_id, reason=s.cancel_reason or "cancelled"),
        start_to_close_timeout=WAYBILL_TIMEOUT,
        heartbeat_timeout=WAYBILL_HEARTBEAT,
        # The numbers are void at the first attempt; only Cainiao's cancel may be owed. A
        # service down for longer than this does not hold the cancel: the undo is reported
        # failed (`undo_failed`, in the timeline) and the number stays void here.
        schedule_to_close_timeout=VOID_WITHIN,
        retry_policy=RETRY_WAYBILL,
    )
    if result.voided:
        s.log("waybills_voided", waybills=result.voided, cancelled=result.cancelled)


async def readdress(o: Order) -> None:
    """The buyer changed the address after the release (`address_change.amend`): the order's
    parcels re-labelled for it (`shipping.desk.readdress_order_parcels`). The desk reads the
    order's document from the database, so the state is written first. A waybill service
    that is down is retried with backoff; a problem no retry can fix is flagged for a clerk."""
    s = o.state
    if not (o.patches.readdress and s.policy.shipping.desk and s.open_shipments()):
        return
    await o.persistence.write_now()
    try:
        result = await workflow.execute_activity_method(
            ShippingActivities.readdress_parcels,
            ReaddressInput(order_id=s.order_id),
            start_to_close_timeout=WAYBILL_TIMEOUT,
            heartbeat_timeout=WAYBILL_HEARTBEAT,
            retry_policy=RETRY_WAYBILL,
        )
    except STEP_FAILED as err:
        s.flag("parcel_failed")
        s.log("parcel_failed", shipment=", ".join(sh.id for sh in s.open_shipments()),
              error=f"re-labelling for the changed address: {cause(err)}")
        return
    for parcel in result.parcels:
        s.log("parcel_readdressed", parcel=parcel.parcel_id, carrier=parcel.carrier,
              old_waybill=parcel.old_waybill, waybill=parcel.waybill, hold=parcel.hold,
              reason=parcel.reason)
        for flag in parcel.flags:
            s.flag(flag)
    s.touch()
