"""Cancel and compensation (SPEC §3.7): undo in reverse, refund what was paid and not shipped, tell the buyer.

A cancel is accepted in any stage before shipped; it comes from an operator (`cancel`,
`reject`), from a policy (an expired wait, an unpaid window, a shortage that cancels) or
from Temporal itself (the Web UI's "Request Cancellation", `temporal workflow cancel`):
the same compensation runs for all of them. The undo steps here are the ones the stages
push on the compensation stack before the steps they undo.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.inventory import InventoryActivities
    from activities.orders import OrderActivities
    from models.documents import workflow_id_for
    from models.enums import SignalName, Stage
    from models.payloads import RefundInput, ReleaseStockInput, WithdrawInput
    from orders.refunds import refund_for

if TYPE_CHECKING:
    from workflows.order.context import Order

TEMPORAL_CANCEL_REASON = "cancelled in Temporal"


async def compensate(o: Order, reason: str) -> None:
    """Undo in reverse whatever was done, refund what was paid and not shipped, tell the buyer."""
    s = o.state
    s.cancel_reason = reason
    s.log("cancelling", reason=reason, undo=o.compensation.names())
    await o.steps.ensure_recorded()
    await o.compensation.unwind()
    for line in s.lines:
        left = line.qty - line.shipped - line.cancelled
        line.cancelled += left
        line.reserved = line.backordered = 0
    # refund_for is the whole refund the order owes; what was refunded earlier
    # (a partial remainder) is part of it, not on top of it.
    owed = refund_for(s.lines, paid=s.paid_amount()) - (s.refund_amount or Decimal(0))
    refunded_on = s.inbox.cancel.refunded_on if s.inbox.cancel is not None else None
    if owed > 0 and refunded_on:  # the platform refunded the buyer already: never twice
        s.log("refunded_elsewhere", platform=refunded_on, amount=str(owed))
    elif owed > 0:
        await refund(o, owed, reason)
    await o.steps.emit("buyer_cancel_notice", {"reason": reason}, "cancel-notice")
    s.set_stage(Stage.CANCELLED, None)


async def release_all_stock(o: Order) -> None:
    """Every reservation, backorder and transfer of the order goes back; freed stock goes to
    whoever waits for it next (first come first served), and they are told."""
    result = await o.steps.db(
        InventoryActivities.release_stock,
        ReleaseStockInput(order_id=o.state.order_id, op_key=o.steps.key("release-all")),
        hold=False,
    )
    await signal_served(o, result.served)


async def withdraw_pick_lists(o: Order) -> None:
    """Every pick list of the order that has not shipped is withdrawn, with an event to the warehouse."""
    s = o.state
    result = await o.steps.db(
        OrderActivities.withdraw_shipments,
        WithdrawInput(order_id=s.order_id, op_key=o.steps.key("withdraw")),
        hold=False,
    )
    for shipment in s.shipments:
        if shipment.id in result.shipment_ids:
            shipment.status = "cancelled"
            s.log("cancelled", shipment=shipment.id)
    o.steps.deliver(result.event_ids)


async def signal_served(o: Order, served: list[dict[str, Any]]) -> None:
    for item in served:
        if item["order_id"] == o.state.order_id:
            continue
        handle = workflow.get_external_workflow_handle(workflow_id_for(item["order_id"]))
        o.visibility.publish_due()  # the signal's round trip ends this workflow task
        try:
            await handle.signal(SignalName.RESTOCK_ARRIVED, item)
        except Exception as exc:  # the other order may have ended meanwhile
            o.state.log("signal_failed", target=item["order_id"], error=str(exc))


async def refund(o: Order, amount: Decimal, reason: str) -> None:
    s = o.state
    amount = amount.quantize(Decimal("0.01"))
    if amount <= 0:
        return
    events = await o.steps.db(
        OrderActivities.request_refund,
        RefundInput(order_id=s.order_id, amount=amount, reason=reason, refund_id=o.steps.key("refund")),
    )
    s.refund_amount = (s.refund_amount or Decimal(0)) + amount
    s.refund_status = "requested"
    s.log("refund", amount=str(amount), reason=reason)
    o.steps.deliver(events)
