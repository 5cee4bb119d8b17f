"""Inventory and shortage (SPEC §3.4): reserve the stock, or handle the shortage.

Allocation prefers one warehouse that ships the whole order (by the configured priority),
else a split if the policy allows, else a shortage, handled by the order's policy, the
default or the operator's `shortage_decision`: `partial` ships what there is, `cancel`
cancels and refunds, `wait` backorders until a restock (handed out first come first served
by RestockWorkflow, which signals `restock_arrived`), `transfer` moves stock from another
warehouse and waits in `awaiting_transfer` for `transfer_arrived`. Every wait has a deadline.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.inventory import InventoryActivities
    from activities.orders import OrderActivities
    from models.enums import Flag, ShortagePolicy, Stage, WaitingFor
    from models.payloads import AllocateInput, EmitInput, ReleaseStockInput, TransferArrivalInput
    from orders.refunds import order_value, refund_owed
    from workflows.order.stages import cancel
    from workflows.order.steps import STEP_FAILED, cause
    from workflows.order.waits import Cancelled

if TYPE_CHECKING:
    from workflows.order.context import Order


def push_release_stock(o: Order) -> None:
    """Before any step that reserves: on the way out, the order's stock goes back."""
    o.compensation.push("release_stock", lambda: cancel.release_all_stock(o))


def allocate_input(o: Order) -> AllocateInput:
    """What allocation is asked for the open units now (takes the next idempotency key)."""
    s = o.state
    policy = s.shortage_policy()
    rest = s.policy.shortage.partial_remainder
    return AllocateInput(
        order_id=s.order_id,
        op_key=o.steps.key("allocate"),
        needs=[
            {"line_no": line.line_no, "sku": line.sku, "qty": line.open_qty}
            for line in s.lines
            if line.open_qty > 0
        ],
        buyer_province=s.order.address.province,
        order_time=s.order.created_at or workflow.now(),
        policy=policy,
        split_allowed=s.policy.shortage.split_allowed,
        rule=s.policy.shortage.warehouse_rule,
        backorder_rest=policy != ShortagePolicy.PARTIAL or rest == "backorder",
    )


async def allocate(o: Order) -> None:
    s = o.state
    s.set_stage(Stage.ALLOCATING)
    policy = s.shortage_policy()
    rest = s.policy.shortage.partial_remainder
    if s.preallocated is not None:
        # reserved by the check that cleared the order, nothing awaited since
        result, s.preallocated = s.preallocated, None
    else:
        push_release_stock(o)
        result = await o.steps.db(InventoryActivities.allocate, allocate_input(o))
    by_line = {line.line_no: line for line in s.lines}
    for line_no, _wh, qty in result.reserved:
        by_line[line_no].reserved += qty
    for line_no, _wh, qty in result.backordered:
        by_line[line_no].backordered += qty
    for transfer in result.transfers:
        by_line[transfer["line_no"]].backordered += transfer["qty"]
        s.pending_transfers[transfer["id"]] = transfer
        s.log("transfer_requested", **transfer)
        events = await o.steps.db(
            OrderActivities.emit_event,
            EmitInput(
                order_id=s.order_id,
                type="transfer_request",
                payload=transfer,
                event_id=o.steps.key(f"transfer-{transfer['id']}"),
            ),
        )
        o.steps.deliver(events)
    shortfalls = [sf.model_dump() for sf in result.plan.shortfalls]
    s.log("allocated", reserved=[list(r) for r in result.reserved], shortfalls=shortfalls, policy=str(policy))
    if result.plan.shortfalls:
        if policy == ShortagePolicy.CANCEL:
            raise Cancelled("out of stock: " + ", ".join(f"{sf['sku']} x{sf['qty']}" for sf in shortfalls))
        if policy == ShortagePolicy.PARTIAL:
            s.flag(Flag.PARTIAL_SHIPMENT)
            if rest == "refund":
                await cancel_open_units(o, "partial shipment: the rest is refunded")
            if not any(line.reserved > 0 for line in s.lines):
                raise Cancelled("out of stock: nothing could be reserved for a partial shipment")
    s.touch()


def must_wait_for_stock(o: Order) -> bool:
    s = o.state
    if s.stock_done():
        return False
    ready = any(line.reserved > 0 for line in s.lines)
    return not (s.shortage_policy() == ShortagePolicy.PARTIAL and ready)


async def wait_for_stock(o: Order) -> None:
    """backordered / awaiting_transfer until everything is reserved, a decision, or the deadline."""
    s = o.state
    inbox = s.inbox
    transfers = bool(s.pending_transfers)
    s.set_stage(
        Stage.AWAITING_TRANSFER if transfers else Stage.BACKORDERED,
        WaitingFor.TRANSFER if transfers else WaitingFor.STOCK,
    )
    shortage = s.policy.shortage
    deadline = shortage.transfer_deadline if transfers else shortage.backorder_deadline
    started = workflow.now()
    while not s.stock_done():
        remaining = deadline - (workflow.now() - started)
        got = remaining > timedelta(0) and await o.waits.wait(
            lambda: bool(inbox.transfers_arrived) or inbox.decision_new or s.stock_done(),
            remaining,
        )
        if not got:
            flag = Flag.TRANSFER_TIMEOUT if transfers else Flag.BACKORDER_TIMEOUT
            await o.waits.expire("stock", shortage.timeout_action, flag)
            started = workflow.now()
            continue
        while inbox.transfers_arrived:
            await receive_transfer(o, inbox.transfers_arrived.pop(0))
        if inbox.decision_new:
            inbox.decision_new = False
            await apply_decision(o)
            return
        s.touch()


async def apply_decision(o: Order) -> None:
    s = o.state
    decision = s.shortage_policy()
    s.log("shortage_decision_applied", policy=str(decision))
    if decision == ShortagePolicy.CANCEL:
        raise Cancelled("shortage: cancelled by the operator")
    if decision in (ShortagePolicy.TRANSFER, ShortagePolicy.PARTIAL):
        if decision == ShortagePolicy.PARTIAL and s.policy.shortage.partial_remainder == "backorder":
            if not any(line.reserved > 0 for line in s.lines):
                raise Cancelled("shortage: nothing in stock to ship partially")
            s.flag(Flag.PARTIAL_SHIPMENT)
            return
        # give the queued units back to allocation under the new policy
        await release_backorders(o)
        if decision == ShortagePolicy.PARTIAL:
            await cancel_open_units(o, "partial shipment: the rest is refunded")
            s.flag(Flag.PARTIAL_SHIPMENT)
            if not any(line.reserved > 0 for line in s.lines):
                raise Cancelled("shortage: nothing in stock to ship partially")


async def release_backorders(o: Order) -> None:
    s = o.state
    waiting_lines = [line.line_no for line in s.lines if line.backordered > 0]
    await o.steps.db(
        InventoryActivities.release_stock,
        ReleaseStockInput(
            order_id=s.order_id,
            op_key=o.steps.key("unqueue"),
            line_nos=waiting_lines,
            include_reserved=False,
        ),
    )
    s.pending_transfers.clear()
    for line in s.lines:
        line.backordered = 0


async def receive_transfer(o: Order, transfer_id: str) -> None:
    s = o.state
    try:
        arrived = await o.steps.db(
            InventoryActivities.transfer_arrival,
            TransferArrivalInput(transfer_id=transfer_id, op_key=o.steps.key(f"arrive-{transfer_id}")),
            hold=False,
        )
    except STEP_FAILED as err:
        s.log("signal_rejected", signal="transfer_arrived", reason=cause(err))
        return
    s.pending_transfers.pop(transfer_id, None)
    s.move_backordered_to_reserved(arrived["line_no"], arrived["qty"])
    s.log("transfer_arrived", transfer_id=transfer_id, qty=arrived["qty"])


async def cancel_open_units(o: Order, reason: str) -> None:
    """Units that will not ship (refund remainder): cancelled on the line, their paid share refunded now.

    The share is pro rata of what was paid (`orders.refunds`, the same rule as on cancel).
    """
    s = o.state
    for line in s.lines:
        line.cancelled += max(line.open_qty, 0)
    paid = s.paid_amount()
    if paid <= 0 or order_value(s.lines) <= 0:
        return
    owed = refund_owed(s.lines, paid=paid, kept=lambda li: li.qty - li.cancelled)
    await cancel.refund(o, owed - (s.refund_amount or Decimal(0)), reason)
