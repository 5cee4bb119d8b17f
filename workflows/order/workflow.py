"""OrderWorkflow: one durable workflow per order, run the way an experienced clerk runs it.

    intake (check, buyer, payment) → inventory (reserve, or the shortage) → review
    (money, approval) → fulfilment (release, pick, pack, ship) → completed;
    cancel (compensation) on any way out before shipped.

This class only wires the parts together; each stage of SPEC §3 is a module of
`workflows/order/stages/`, the order's state is one object (`state.OrderState`), its
database copy is written by `persistence.Persistence`, every message it accepts is
defined once in `messages.MESSAGES`, every wait is in `waits.Waits`, and the undo steps
sit on one stack (`compensation.Compensation`). Changes of its commands are guarded in
`patches`.

Operators and the warehouse act through **updates** (one per action): the validator
refuses with the workflow's reason, writing nothing to the history; the handler applies
the action and answers once the order has settled again (paused, or closed) with its new
state. One action at a time: while one is being applied, another is refused ("try again"),
so that two clerks acting at once (approve and cancel) each get a definite answer and only
one takes effect. The same messages are still accepted as signals (`on_signal`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from models.enums import SignalName, Stage
    from models.errors import ErrorType, application_error
    from models.payloads import Cancel, OrderInput, OrderOutcome, OrderSnapshot
    from workflows.inputs import decode_input
    from workflows.order import address_change, messages, refund_hold, ship_by
    from workflows.order.context import Order
    from workflows.order.stages import cancel as cancel_stage
    from workflows.order.stages import desk, fulfilment, intake, inventory, review
    from workflows.order.state import OrderState
    from workflows.order.waits import Cancelled

# No delivery scan within 60 days: the parcel is taken as delivered.
DELIVERY_WAIT = timedelta(days=60)


def _action(name: str) -> Any:
    """`@workflow.update(name=name)` with its validator, for one operator action of `messages`:
    both take the action's payload model, as the registry names it (the SDK decodes the payload
    into it, and refuses the update when it does not fit)."""
    model = messages.BY_UPDATE[name].model

    async def handler(self: Any, payload: BaseModel) -> OrderSnapshot:
        return await self.apply_action(name, payload)

    def validator(self: Any, payload: BaseModel) -> None:
        self.judge_action(name, payload)

    handler.__name__ = handler.__qualname__ = name
    handler.__annotations__ = {"payload": model, "return": OrderSnapshot}
    validator.__annotations__ = {"payload": model, "return": None}
    update = workflow.update(name=name)(handler)
    update.validator(validator)
    return update


@workflow.defn(name="OrderWorkflow")
class OrderWorkflow:
    @workflow.init
    def __init__(self, raw: RawValue = None) -> None:  # type: ignore[assignment]  (no input: `decode_input` says so)
        # The input is decoded here, not by the SDK: one that is no order fails the workflow
        # at once, naming the field, instead of failing its first task for ever (`inputs`).
        self.invalid_input: ApplicationError | None = None
        try:
            inp = decode_input(raw, OrderInput)
        except ApplicationError as exc:
            self.invalid_input = exc
            return
        self.o = Order.wire(OrderState(inp, workflow.now()))
        refund_hold.wire(self.o)
        address_change.wire(self.o)
        self.applying: str | None = None  # the action being applied (another is refused meanwhile)

    # ================================================================== run

    @workflow.run
    async def run(self, raw: RawValue = None) -> OrderOutcome:  # type: ignore[assignment]
        if self.invalid_input is not None:
            raise self.invalid_input
        o, s = self.o, self.o.state
        o.patches.decide()
        o.visibility.at_pause = o.patches.flow_11_30
        o.compensation.shield = o.patches.flow_12_01
        persister = asyncio.create_task(o.persistence.loop())
        deadline = ship_by.watch(s)  # a platform's ship-by time: flagged as it nears and passes
        if not o.patches.flow_12_01:
            # Orders started before 2026-12-01 put both undo steps on the stack here.
            inventory.push_release_stock(o)
            o.compensation.push("withdraw_pick_lists", lambda: cancel_stage.withdraw_pick_lists(o))
        s.log("received", platform=s.order.platform, lines=len(s.lines))
        s.set_stage(Stage.RECEIVED)
        reason: str | None = None
        try:
            await self._process()
        except Cancelled as cancelled:
            reason = cancelled.reason
            await o.compensation.shielded(cancel_stage.compensate(o, reason))
        except asyncio.CancelledError:
            reason = await o.compensation.shielded(self._cancelled_in_temporal())
        if deadline is not None:
            deadline.cancel()
        await o.compensation.shielded(self._close(persister))
        if o.compensation.cancel_requested and s.stage == Stage.CANCELLED:
            raise asyncio.CancelledError(reason)  # the workflow shows Canceled, its order cancelled
        return OrderOutcome(order_id=s.order_id, stage=str(s.stage), reason=reason)

    async def _process(self) -> None:
        """The clerk's day: check and confirm, then fulfil, then done."""
        await intake.intake(self.o)
        await self._fulfil()
        await self._complete()

    async def _fulfil(self) -> None:
        """Allocate, wait for stock if needed, review once, release, track; loop while lines reopen."""
        o, s = self.o, self.o.state
        while True:
            o.waits.raise_if_cancelled()  # a cancel that came in during the last step: stop here
            if any(line.open_qty > 0 for line in s.lines):
                await inventory.allocate(o)
            if inventory.must_wait_for_stock(o):
                await inventory.wait_for_stock(o)
                continue
            if not s.reviewed:
                await review.review(o)
            o.waits.raise_if_cancelled()  # never send a pick list for an order already cancelled
            await refund_hold.checkpoint(o)  # nor one for an order whose refund is asked for
            await address_change.checkpoint(o)  # nor one for an address the buyer just changed
            released = await fulfilment.release(o)
            await desk.prepare_parcels(o, released)
            await fulfilment.track_warehouse(o)
            if refund_hold.take_release_again(o):
                continue  # its pick lists were withdrawn for a refund, since closed
            if any(line.open_qty > 0 or line.backordered > 0 for line in s.lines):
                continue
            if released and any(line.reserved > 0 for line in s.lines):
                continue  # stock arrived (restock) while the warehouse worked: release it too
            return

    async def _complete(self) -> None:
        s = self.o.state
        if s.policy.pick.complete_on == "delivered":
            s.set_stage(Stage.SHIPPED, None)
            await self.o.waits.wait(lambda: s.inbox.delivered, DELIVERY_WAIT)
        s.set_stage(Stage.COMPLETED, None)

    async def _cancelled_in_temporal(self) -> str | None:
        """A cancellation requested through Temporal is a cancel like any other: compensated, or
        refused once nothing is left to take back (the order then goes on to its end)."""
        o, s = self.o, self.o.state
        o.compensation.cancel_requested = True
        why = messages.refusal(s, messages.MESSAGES[SignalName.CANCEL], Cancel(reason=cancel_stage.TEMPORAL_CANCEL_REASON))
        if why is None:
            s.log("signal", signal=SignalName.CANCEL, reason=cancel_stage.TEMPORAL_CANCEL_REASON, via="temporal")
            await cancel_stage.compensate(o, cancel_stage.TEMPORAL_CANCEL_REASON)
            return cancel_stage.TEMPORAL_CANCEL_REASON
        s.log("signal_rejected", signal=SignalName.CANCEL, reason=why, via="temporal")
        await self._complete()
        return None

    async def _close(self, persister: asyncio.Task[None]) -> None:
        """The last write, the webhook deliveries, the last search attributes; answers given."""
        o = self.o
        o.persistence.closing = True
        o.state.touch()
        o.visibility.publish_due()
        await workflow.wait_condition(lambda: persister.done())
        await o.steps.drain_deliveries()
        o.visibility.publish_due()
        await workflow.wait_condition(workflow.all_handlers_finished)

    # ============================================================ actions (updates)

    confirm = _action("confirm")
    pay = _action("pay")
    decide = _action("decide")
    approve = _action("approve")
    reject = _action("reject")
    cancel = _action("cancel")
    resume = _action("resume")
    picked = _action("picked")
    packed = _action("packed")
    shipped = _action("shipped")
    pick_exception = _action("pick_exception")
    delivered = _action("delivered")
    transfer_arrived = _action("transfer_arrived")

    def judge_action(self, name: str, payload: BaseModel) -> None:
        """The validator of every action: refuse (nothing is written to the history) with the reason."""
        why = self._busy() or messages.refusal(self.o.state, messages.BY_UPDATE[name], payload)
        why = why or messages.update_refusal(self.o.state, name, payload)
        if why:
            raise application_error(ErrorType.REFUSED, why)

    async def apply_action(self, name: str, payload: BaseModel) -> OrderSnapshot:
        """Apply an accepted action and answer, once the order has settled, with its new state."""
        s, message = self.o.state, messages.BY_UPDATE[name]
        # Judged again: another action accepted in the same activation may have come first.
        why = self._busy() or messages.refusal(s, message, payload)
        if why:
            raise application_error(ErrorType.REFUSED, why)
        self.applying = name
        try:
            messages.accept(s, message, payload, via="update")
            await workflow.wait_condition(self._settled)
        finally:
            self.applying = None
        return s.snapshot()

    def _busy(self) -> str | None:
        if self.applying is not None:
            return f"another action ({self.applying}) is being applied to this order; try again"
        return None

    def _settled(self) -> bool:
        persistence = self.o.persistence
        return persistence.closing or persistence.paused()

    # ============================================================ signals, queries

    @workflow.signal(dynamic=True)
    def on_signal(self, name: str, args: Sequence[RawValue]) -> None:
        """Every signal lands here: validated, judged against the stage, recorded either way."""
        if self.invalid_input is not None:
            return  # no order to apply it to: the workflow fails on its input at once
        s = self.o.state
        try:
            payload = workflow.payload_converter().from_payload(args[0].payload) if args else {}
        except Exception as exc:  # not JSON at all: record it, never fail the workflow
            s.log("signal_rejected", signal=name, reason=f"payload could not be read: {exc}")
            return
        why, parsed = messages.validate(s, name, {} if payload is None else payload)
        if why:
            s.log("signal_rejected", signal=name, reason=why)
            return
        messages.accept(s, messages.MESSAGES[name], parsed)

    @workflow.query(name="refusal")
    def refusal(self, name: str, payload: dict[str, Any]) -> str | None:
        """Why this message would not apply now (None: it would)."""
        return messages.validate(self.o.state, name, payload or {})[0]

    @workflow.query(name="state")
    def state(self) -> OrderSnapshot:
        return self.o.state.snapshot()
