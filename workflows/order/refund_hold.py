"""A refund asked for on the platform stops the order before it ships (SPEC §3.9, 拦截; §8.10).

The shop's sync sends the order `platform_refund` (`messages`): "requested" flags it
`refund_requested` (and `shipped` is refused while the flag is on), "closed" drops the flag.
For an order started on this code (`patches.REFUND_HOLD`) the flag also HOLDS it, wherever
its main flow stands when the flag comes (any `Waits.wait`, or the step before a release):

* stage `on_hold` (held_from: the stage it was in), waiting for an operator, with an
  `on_hold` event; `resume` is refused meanwhile (the refund decides, or a `cancel`);
* if it was released, its open pick lists are withdrawn (`pick_list_withdrawn` events: the
  warehouse intercepts the parcels) with the stock kept reserved for the order, and at the
  shipping desk their parcels' waybills are voided (`waybills_voided`);
* the refund closed, it goes on where it stopped; pick lists that were withdrawn are
  written again by a new release (`take_release_again`, read by the fulfilment loop).

Refunded on every line, the sync cancels the order instead ("refunded on <platform>"), and
the compensation asks for no second refund (`stages.cancel.compensate`). Nothing here runs
for an order already on hold for another reason: once resumed, its next wait holds it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.shipping import ShippingActivities
    from models.enums import Flag, Stage, WaitingFor
    from shipping.payloads import VoidParcelsInput
    from shipping.retry import RETRY_WAYBILL, VOID_WITHIN, WAYBILL_HEARTBEAT, WAYBILL_TIMEOUT
    from workflows.order.stages import cancel
    from workflows.order.steps import STEP_FAILED, cause
    from workflows.order.waits import A_YEAR

if TYPE_CHECKING:
    from workflows.order.context import Order

# Stages a refund does not hold: already held, or nothing left to stop.
_NOT_HELD = {Stage.ON_HOLD, Stage.SHIPPED, Stage.COMPLETED, Stage.CANCELLED}
INTERCEPTED = "a refund asked for on the platform: the parcel intercepted (拦截)"


def wire(o: Order) -> None:
    """Every wait of the order (`Waits.wait`) holds it when a refund is due."""
    o.waits.refund_due = lambda: due(o)
    o.waits.refund_hold = lambda: hold(o)


def due(o: Order) -> bool:
    """A refund is asked for, and the order is not held for it yet though something is left to ship."""
    s = o.state
    return (
        o.patches.refund_hold
        and not s.refund_held
        and Flag.REFUND_REQUESTED in s.flags
        and s.inbox.cancel is None
        and s.stage not in _NOT_HELD
        and any(n > 0 for n in s.units_left())
    )


async def checkpoint(o: Order) -> None:
    """Before a release: an order whose refund is asked for is held first (no pick list goes out)."""
    if due(o):
        await hold(o)


async def hold(o: Order) -> bool:
    """Hold the order until the refund is closed (a cancel ends it instead, raised by the wait).
    Returns whether pick lists were withdrawn (the caller looks again at what it waited for)."""
    s = o.state
    s.refund_held = True
    stage, waiting, held_from = s.stage, s.waiting, s.held_from
    withdrawn: list[str] = []
    if s.open_shipments():
        try:
            withdrawn = await cancel.withdraw_pick_lists(
                o, keep_stock=True, reason=str(Flag.REFUND_REQUESTED)
            )
        except STEP_FAILED as err:  # bad data no retry fixes: `shipped` stays refused anyway
            s.log("withdraw_failed", error=cause(err))
        if withdrawn and o.patches.desk and s.policy.shipping.desk:
            await _void_waybills(o)
    s.held_from = stage
    s.set_stage(Stage.ON_HOLD, WaitingFor.OPERATOR)
    s.log("refund_hold", held_from=str(stage), withdrawn=withdrawn)
    await o.steps.emit(
        "on_hold", {"held_from": str(stage), "reason": str(Flag.REFUND_REQUESTED)}, "refund-hold"
    )
    while Flag.REFUND_REQUESTED in s.flags:
        await o.waits.wait(lambda: Flag.REFUND_REQUESTED not in s.flags, A_YEAR)
    s.set_stage(stage, waiting)
    s.held_from = held_from
    s.refund_held = False
    if withdrawn:
        s.release_again = True
    s.log("refund_closed", resumed=str(stage), release_again=bool(withdrawn))
    return bool(withdrawn)


async def _void_waybills(o: Order) -> None:
    """The intercepted parcels leave the desk: their waybills are voided (never issued again);
    the new release gets parcels and waybills of its own."""
    s = o.state
    try:
        result = await workflow.execute_activity_method(
            ShippingActivities.void_parcels,
            VoidParcelsInput(order_id=s.order_id, reason=INTERCEPTED),
            start_to_close_timeout=WAYBILL_TIMEOUT,
            heartbeat_timeout=WAYBILL_HEARTBEAT,
            schedule_to_close_timeout=VOID_WITHIN,
            retry_policy=RETRY_WAYBILL,
        )
    except STEP_FAILED as err:  # the numbers are void here at the first attempt; Cainiao may be owed
        s.log("void_failed", error=cause(err))
        return
    if result.voided:
        s.log("waybills_voided", waybills=result.voided, cancelled=result.cancelled)


def take_release_again(o: Order) -> bool:
    """Pick lists were withdrawn for a refund since the last look: release the stock again."""
    s = o.state
    again, s.release_again = s.release_again, False
    return again
