"""Release, pick, pack and ship (SPEC §3.5 release, §3.6): the warehouse's part, chased on a timer.

Release writes one pick list per shipment (warehouse, lines, quantities, remarks) and the
order's new stage in one transaction. Warehouse events then arrive per shipment: picked,
packed, shipped (carrier and tracking number) are applied by the workflow and written with
the state they lead to (`Persistence.unwritten`); shipping consumes the reservation. A
pick exception corrects the ledger and sends its units back to allocation. A release not
picked in time raises a reminder to the warehouse, then an escalation (`pick_overdue`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.inventory import InventoryActivities
    from activities.orders import OrderActivities
    from models.enums import Flag, Stage, WaitingFor
    from models.payloads import (
        PickException,
        PickExceptionInput,
        ReleaseInput,
        ShipmentState,
        ShipmentUpdateInput,
        ShipmentUpdateResult,
        ShipmentUpdatesInput,
        WarehouseEvent,
    )
    from workflows.order import patches
    from workflows.order.stages import cancel
    from workflows.order.waits import Cancelled

if TYPE_CHECKING:
    from workflows.order.context import Order


async def release(o: Order) -> int:
    """Pick lists for the held stock not yet released; returns how many shipments were written."""
    s, persistence = o.state, o.persistence
    if not any(line.reserved > 0 for line in s.lines):
        return 0
    if not s.payment_settled():
        raise Cancelled("payment not settled at release")
    remarks = [r for r in [s.order.remarks] if r]
    o.compensation.push("withdraw_pick_lists", lambda: cancel.withdraw_pick_lists(o))
    inp = ReleaseInput(
        order_id=s.order_id,
        op_key=o.steps.key("release"),
        remarks=remarks,
        first_shipment_no=len(s.shipments) + 1,
    )
    if not o.patches.uses(patches.RELEASE_WRITES_STATE):
        result = await o.steps.db(OrderActivities.release_order, inp)
        _released(o, result)
        s.log("released", shipments=[sh["id"] for sh in result.shipments])
        s.set_stage(Stage.RELEASED, WaitingFor.WAREHOUSE)
        return len(result.shipments)
    # The order is released the moment its pick lists are written: both go into one
    # transaction, so the pause that follows (waiting for the warehouse) needs no
    # write of its own. The step fills in the ids of the pick lists it made.
    if persistence.persisting:
        await workflow.wait_condition(lambda: not persistence.persisting)  # no older write lands after this one
    if persistence.unwritten:
        await persistence.write_warehouse_events()  # their results are delivered and checked there
    released = s.log("released", shipments=[])
    s.set_stage(Stage.RELEASED, WaitingFor.WAREHOUSE)
    inp.state, upto = persistence.state_write()
    inp.released_entry_seq = released["seq"]
    try:
        result = await o.steps.db(OrderActivities.release_order, inp)
    except BaseException:
        s.touch()  # not written: the persister writes it
        raise
    released["data"]["shipments"] = [sh["id"] for sh in result.shipments]
    persistence.persisted = max(persistence.persisted, upto)
    _released(o, result)
    return len(result.shipments)


def _released(o: Order, result: Any) -> None:
    for data in result.shipments:
        o.state.shipments.append(ShipmentState.model_validate(data))
    o.steps.deliver(result.event_ids)


async def track_warehouse(o: Order) -> None:
    """Warehouse events per shipment, with the pick SLA: reminder, escalation, `pick_overdue`."""
    s = o.state
    inbox = s.inbox
    released_at = workflow.now()
    reminded = escalated = False
    pick = s.policy.pick
    while s.open_shipments():
        elapsed = workflow.now() - released_at
        if not reminded:
            timer = pick.remind_after - elapsed
        elif not escalated:
            timer = pick.escalate_after - elapsed
        else:
            timer = timedelta(days=1)
        got = await o.waits.wait(lambda: bool(inbox.warehouse), max(timer, timedelta(seconds=1)))
        if not got:
            open_ids = {"shipments": [sh.id for sh in s.open_shipments()]}
            if not reminded:
                reminded = True
                s.flag(Flag.PICK_OVERDUE)
                await o.steps.emit("pick_reminder", open_ids, "pick-reminder")
            elif not escalated:
                escalated = True
                s.flag(Flag.PICK_ESCALATED)
                await o.steps.emit("pick_escalation", open_ids, "pick-escalation")
            continue
        while inbox.warehouse:
            # Picked, packed, shipped often come together: one database step for the run of them.
            run: list[tuple[str, WarehouseEvent]] = []
            while inbox.warehouse and not isinstance(inbox.warehouse[0][1], PickException):
                kind, plain = inbox.warehouse.pop(0)
                assert isinstance(plain, WarehouseEvent)
                run.append((kind, plain))
            if run:
                await warehouse_events(o, run)
            else:
                _kind, event = inbox.warehouse.pop(0)
                assert isinstance(event, PickException)
                await pick_exception(o, event)
            if any(line.open_qty > 0 for line in s.lines):
                return  # a pick exception sent units back to allocation
    s.drop_flag(Flag.PICK_OVERDUE)
    s.drop_flag(Flag.PICK_ESCALATED)


async def pick_exception(o: Order, event: PickException) -> None:
    s = o.state
    shipment = s.shipment_for(event.shipment)
    if shipment is None:
        return
    result = await o.steps.db(
        InventoryActivities.pick_exception,
        PickExceptionInput(
            order_id=s.order_id,
            shipment_id=shipment.id,
            sku=event.sku,
            qty=event.qty,
            reason=event.reason,
            op_key=o.steps.key("pick-exception"),
        ),
    )
    for line_no, qty in result.lines:
        for line in s.lines:
            if line.line_no == line_no:
                line.reserved -= qty
        for item in shipment.lines:
            if item["line_no"] == line_no:
                item["qty"] -= qty
    shipment.lines = [item for item in shipment.lines if item["qty"] > 0]
    if not shipment.lines:
        await update_shipment(o, shipment, "cancelled")
    s.log("pick_exception", shipment=shipment.id, sku=event.sku, qty=event.qty, reason=event.reason)
    s.touch()


async def warehouse_events(o: Order, run: list[tuple[str, WarehouseEvent]]) -> None:
    """Picked / packed / shipped events in a row: written in one step, then applied one by one."""
    s = o.state
    todo: list[tuple[str, WarehouseEvent, ShipmentState, ShipmentUpdateInput]] = []
    for kind, event in run:
        shipment = s.shipment_for(event.shipment)
        if shipment is not None:
            todo.append((kind, event, shipment, _shipment_input(o, shipment, kind, event)))
    if not todo:
        return
    if o.patches.uses(patches.WAREHOUSE_WITH_STATE):
        # Applied now, written with the state they lead to (the next write: the pause
        # after them, or the order's last), in one transaction: what a shipment holds
        # is what it ships. The write reports what it consumed; `written_events` compares.
        for kind, event, shipment, inp in todo:
            expected = ShipmentUpdateResult(shipped_lines=_shipment_lines(shipment) if kind == "shipped" else [])
            o.persistence.unwritten.append((inp, expected))
            _shipment_updated(o, shipment, kind, event, expected)
            _apply_shipment_result(o, expected)
        return
    results = await o.steps.db(
        OrderActivities.update_shipments, ShipmentUpdatesInput(updates=[item[3] for item in todo])
    )
    for (kind, event, shipment, _inp), result in zip(todo, results, strict=True):
        _shipment_updated(o, shipment, kind, event, result)
        _apply_shipment_result(o, result)


def _apply_shipment_result(o: Order, result: Any) -> None:
    s = o.state
    for line_no, qty in result.shipped_lines:
        for line in s.lines:
            if line.line_no == line_no:
                line.reserved -= qty
                line.shipped += qty
    statuses = {sh.status for sh in s.shipments if sh.status != "cancelled"}
    if statuses == {"shipped"}:
        if not any(line.backordered > 0 or line.open_qty > 0 or line.reserved > 0 for line in s.lines):
            s.set_stage(Stage.SHIPPED, None)
    elif statuses <= {"packed", "shipped"}:
        s.set_stage(Stage.PACKED, WaitingFor.WAREHOUSE)
    elif statuses <= {"picked", "packed", "shipped"}:
        s.set_stage(Stage.PICKING, WaitingFor.WAREHOUSE)
    s.touch()


def _shipment_input(o: Order, shipment: ShipmentState, kind: str, event: WarehouseEvent | None) -> ShipmentUpdateInput:
    return ShipmentUpdateInput(
        order_id=o.state.order_id,
        shipment_id=shipment.id,
        kind=kind,
        op_key=o.steps.key(f"{kind}-{shipment.shipment_no}"),
        carrier=event.carrier if event else None,
        tracking_no=event.tracking_no if event else None,
        parcels=event.parcels if event else None,
        weight_g=event.weight_g if event else None,
    )


async def update_shipment(o: Order, shipment: ShipmentState, kind: str, event: WarehouseEvent | None = None) -> Any:
    result = await o.steps.db(OrderActivities.update_shipment, _shipment_input(o, shipment, kind, event))
    _shipment_updated(o, shipment, kind, event, result)
    return result


def _shipment_updated(o: Order, shipment: ShipmentState, kind: str, event: WarehouseEvent | None, result: Any) -> None:
    shipment.status = kind
    if event is not None and kind == "shipped":
        shipment.carrier, shipment.tracking_no = event.carrier, event.tracking_no
    o.state.log(kind, shipment=shipment.id, carrier=shipment.carrier, tracking_no=shipment.tracking_no)
    o.steps.deliver(result.event_ids)


def _shipment_lines(shipment: ShipmentState) -> list[tuple[int, int]]:
    """(line_no, qty) a shipment holds, as the ledger reports what shipping it consumed."""
    qty: dict[int, int] = {}
    for item in shipment.lines:
        qty[item["line_no"]] = qty.get(item["line_no"], 0) + item["qty"]
    return sorted(qty.items())
