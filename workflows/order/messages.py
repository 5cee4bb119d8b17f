"""Every message an order accepts, defined once: its payload model, when it is refused, how it applies.

Two paths lead here, and both use the one definition:

* an operator's or the warehouse's action arrives as a Temporal **update** (`Message.update`):
  its validator refuses with the reason (nothing is written to the history), its handler
  applies and answers with the order's new state (`workflow.OrderWorkflow`);
* the same message as a **signal** (typed by hand in the Temporal UI, or sent by another
  workflow, as `restock_arrived` is by RestockWorkflow): validated and judged the same way,
  and recorded in the timeline as `signal_rejected` with the reason when it does not apply.
  A signal never fails the workflow.

A refusal rule reads the state only; `apply` puts the message in the inbox (or changes the
lines), where the stage that waits for it takes it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ValidationError

    from models.documents import RECEIVER_FIELDS, OrderDocument
    from models.enums import Flag, PaymentStatus, SignalName, Stage
    from models.payloads import (
        Approve,
        BuyerConfirmed,
        Cancel,
        Delivered,
        PaymentReceived,
        PickException,
        PlatformAddress,
        PlatformRefund,
        Reject,
        Resume,
        ShortageDecision,
        StockArrived,
        TransferArrived,
        WarehouseEvent,
    )
    from privacy.mask import mask_correction, mask_name
    from shipping.payloads import ParcelReady
    from workflows.order.state import CLOSED_SHIPMENT, OrderState

_WAREHOUSE_STAGES = {Stage.RELEASED, Stage.PICKING, Stage.PACKED}
_SHORT_STAGES = {Stage.BACKORDERED, Stage.AWAITING_TRANSFER}
_PRE_ALLOCATION = {Stage.RECEIVED, Stage.CHECKING, Stage.AWAITING_BUYER, Stage.AWAITING_PAYMENT}

Rule = Callable[[OrderState, Any], "str | None"]
Apply = Callable[[OrderState, Any], None]


@dataclass(frozen=True)
class Message:
    signal: str  # its name on the signal path (SignalName)
    update: str | None  # its update's name; None: a signal only (from another workflow)
    model: type[BaseModel]
    refuse: Rule  # why it does not apply now (None: it does); the order is not final
    apply: Apply


def _where(s: OrderState) -> str:
    return f"the order is {s.stage}" + (f" (held from {s.held_from})" if s.held_from else "")


# ------------------------------------------------------------------ rules


def _refuse_cancel(s: OrderState, _: Cancel) -> str | None:
    # Before `shipped` a cancel takes back whatever has not left yet (a partly shipped
    # order included); once every unit has left there is nothing to take back.
    left = s.units_left()
    if not s.stage.can_cancel or (left and not any(n > 0 for n in left)):
        return f"{_where(s)}: a shipped order cannot be cancelled"
    return None


def _refuse_confirm(s: OrderState, _: BuyerConfirmed) -> str | None:
    return None if s.effective_stage == Stage.AWAITING_BUYER else f"{_where(s)}, not waiting for the buyer"


def _refuse_pay(s: OrderState, _: PaymentReceived) -> str | None:
    if s.order.payment.status == PaymentStatus.PAID:
        return "the order is already paid"
    return None if s.effective_stage in _PRE_ALLOCATION else f"{_where(s)}, not waiting for payment"


def _refuse_decide(s: OrderState, _: ShortageDecision) -> str | None:
    return None if s.effective_stage in _SHORT_STAGES else f"{_where(s)}: the order is not short of stock"


def _refuse_restock(s: OrderState, m: StockArrived) -> str | None:
    line = next((li for li in s.lines if li.line_no == m.line_no), None)
    if line is None or line.backordered < m.qty:
        return f"line {m.line_no} does not wait for {m.qty} units"
    return None


def _refuse_transfer(s: OrderState, m: TransferArrived) -> str | None:
    return None if m.transfer_id in s.pending_transfers else f"transfer {m.transfer_id} is not pending for this order"


def _refuse_decision(s: OrderState, _: Approve | Reject) -> str | None:
    if s.inbox.approval is not None:
        return "a decision was already recorded"
    return None if s.stage == Stage.AWAITING_APPROVAL else f"{_where(s)}, not waiting for approval"


def _refuse_delivered(s: OrderState, _: Delivered) -> str | None:
    return None if s.stage == Stage.SHIPPED else f"{_where(s)}, not shipped yet"


def _refuse_resume(s: OrderState, _: Resume) -> str | None:
    if s.refund_held:
        return "held for the refund asked for on the platform: it goes on once the refund is closed"
    return None if s.stage == Stage.ON_HOLD else f"{_where(s)}, not on hold"


def _refuse_platform_refund(s: OrderState, m: PlatformRefund) -> str | None:
    held = Flag.REFUND_REQUESTED in s.flags
    if m.status == "requested" and held:
        return "already stopped for the refund asked for on the platform"
    if m.status == "closed" and not held:
        return "no refund asked for on the platform holds it"
    return None


def _apply_platform_refund(s: OrderState, m: PlatformRefund) -> None:
    """A refund asked for on the platform stops the order before it ships (`shipped` is
    refused while the flag is on); withdrawn, the order goes on."""
    if m.status == "requested":
        s.flag(Flag.REFUND_REQUESTED)
    else:
        s.drop_flag(Flag.REFUND_REQUESTED)


def _address_changes(s: OrderState, m: PlatformAddress) -> list[tuple[str, Any, Any]]:
    """(part.key, old, new) for each receiver field the platform's address changes."""
    doc = s.order.model_dump(mode="json")
    out = []
    for field, (part, key) in RECEIVER_FIELDS.items():
        new = getattr(m, field)
        old = (doc.get(part) or {}).get(key)
        if new is not None and new != old:
            out.append((f"{part}.{key}", old, new))
    return out


def _refuse_platform_address(s: OrderState, m: PlatformAddress) -> str | None:
    if s.stage == Stage.SHIPPED or not any(n > 0 for n in s.units_left()):
        return "already shipped: the parcel left for the address it had"
    if not _address_changes(s, m):
        return "the order already has this address"
    return None


def _mask_receiver(field: str, value: Any) -> Any:
    """A receiver's value as the timeline keeps it (`privacy.mask`): a name, phone or door
    address masked; the province, city and district as they are."""
    if field in ("buyer.name", "name"):
        return mask_name(value) if isinstance(value, str) else value
    if field in ("buyer.phone", "address.detail", "phone", "detail"):
        return mask_correction(value)
    return value


def _apply_platform_address(s: OrderState, m: PlatformAddress) -> None:
    """The buyer changed the receiver on the platform: the order takes the new one at once,
    each change shown old → new (masked), and is checked again (`address_change`). An order
    waiting for its buyer's answer takes it as that answer: the buyer corrected it."""
    doc = s.order.model_dump(mode="json")
    for path, old, new in _address_changes(s, m):
        part, key = path.split(".")
        doc[part][key] = new
        s.log("correction", field=path, old=_mask_receiver(path, old),
              new=_mask_receiver(path, new), by=f"{m.platform} sync")
    s.order = OrderDocument.model_validate(doc)
    s.address_changed = True
    if s.stage == Stage.AWAITING_BUYER:
        s.inbox.confirmations.append(
            BuyerConfirmed(note=f"the buyer changed the address on {m.platform}")
        )


def _warehouse_rule(kind: str) -> Rule:
    def refuse(s: OrderState, m: WarehouseEvent | PickException) -> str | None:
        if s.refund_held:
            return ("the buyer asked the platform for a refund: the order is held, its pick lists "
                    "withdrawn, until the refund is closed")
        if s.stage not in _WAREHOUSE_STAGES and not s.open_shipments():
            return f"{_where(s)}: nothing is released to the warehouse"
        number = m.shipment
        if number is None:
            open_ = s.open_shipments()
            if len(open_) > 1:
                return f"{len(open_)} shipments are open: name one with --shipment"
            shipment = open_[0] if open_ else None
        else:
            shipment = next((sh for sh in s.shipments if sh.shipment_no == number), None)
        if shipment is None:
            return f"no open shipment {number or ''}".strip()
        pending = [k for k, e in s.inbox.warehouse if e.shipment in (None, shipment.shipment_no)]
        status = pending[-1] if pending else shipment.status
        if status in CLOSED_SHIPMENT:
            return f"shipment {shipment.shipment_no} is already {status}"
        if kind == SignalName.PICKED and status != "released":
            return f"shipment {shipment.shipment_no} is {status}, not waiting to be picked"
        if kind == SignalName.PACKED and status not in ("released", "picked"):
            return f"shipment {shipment.shipment_no} is already {status}"
        if kind == SignalName.SHIPPED and Flag.REFUND_REQUESTED in s.flags:
            return "the buyer asked the platform for a refund: the order is stopped before it ships"
        if kind == SignalName.SHIPPED:
            assert isinstance(m, WarehouseEvent)
            if not m.carrier or not m.tracking_no:
                return "a shipped event needs a carrier and a tracking number"
            if m.carrier.upper() not in {c.upper() for c in s.policy.pick.carriers}:
                return f"carrier {m.carrier!r} is not one of {', '.join(s.policy.pick.carriers)}"
        if kind == SignalName.PICK_EXCEPTION:
            assert isinstance(m, PickException)
            held = sum(item["qty"] for item in shipment.lines if item["sku"] == m.sku)
            if held < m.qty:
                return f"shipment {shipment.shipment_no} holds {held} of {m.sku}, not {m.qty}"
        return None

    return refuse


# ---------------------------------------------------------------- applying


def _set(attr: str) -> Apply:
    def apply(s: OrderState, m: Any) -> None:
        setattr(s.inbox, attr, m)

    return apply


def _apply_confirm(s: OrderState, m: BuyerConfirmed) -> None:
    s.inbox.confirmations.append(m)


def _apply_decide(s: OrderState, m: ShortageDecision) -> None:
    s.inbox.decision = m.policy
    s.inbox.decision_new = True


def _apply_restock(s: OrderState, m: StockArrived) -> None:
    s.move_backordered_to_reserved(m.line_no, m.qty)


def _apply_transfer(s: OrderState, m: TransferArrived) -> None:
    s.inbox.transfers_arrived.append(m.transfer_id)


def _apply_warehouse(kind: str) -> Apply:
    def apply(s: OrderState, m: WarehouseEvent | PickException) -> None:
        if m.shipment is None:
            m = m.model_copy(update={"shipment": s.open_shipments()[0].shipment_no})
        s.inbox.warehouse.append((kind, m))

    return apply


# The shipping desk's holds, cleared once the parcel has its carrier and waybill.
DESK_HOLDS = ("no_carrier", "waybill_pool_empty", "parcel_failed")


def _refuse_parcel_ready(s: OrderState, _: ParcelReady) -> str | None:
    return None if s.open_shipments() else f"{_where(s)}: no open shipment"


def _apply_parcel_ready(s: OrderState, _: ParcelReady) -> None:
    for flag in DESK_HOLDS:
        s.drop_flag(flag)


def _apply_delivered(s: OrderState, _: Delivered) -> None:
    s.inbox.delivered = True


def _warehouse(kind: str, update: str, model: type[BaseModel]) -> Message:
    return Message(kind, update, model, _warehouse_rule(kind), _apply_warehouse(kind))


MESSAGES: dict[str, Message] = {
    m.signal: m
    for m in (
        Message(SignalName.BUYER_CONFIRMED, "confirm", BuyerConfirmed, _refuse_confirm, _apply_confirm),
        Message(SignalName.PAYMENT_RECEIVED, "pay", PaymentReceived, _refuse_pay, _set("payment")),
        Message(SignalName.SHORTAGE_DECISION, "decide", ShortageDecision, _refuse_decide, _apply_decide),
        Message(SignalName.RESTOCK_ARRIVED, None, StockArrived, _refuse_restock, _apply_restock),
        Message(SignalName.PLATFORM_REFUND, None, PlatformRefund, _refuse_platform_refund,
                _apply_platform_refund),
        Message(SignalName.PLATFORM_ADDRESS, None, PlatformAddress, _refuse_platform_address,
                _apply_platform_address),
        Message(SignalName.TRANSFER_ARRIVED, "transfer_arrived", TransferArrived, _refuse_transfer, _apply_transfer),
        Message(SignalName.APPROVE, "approve", Approve, _refuse_decision, _set("approval")),
        Message(SignalName.REJECT, "reject", Reject, _refuse_decision, _set("approval")),
        _warehouse(SignalName.PICKED, "picked", WarehouseEvent),
        _warehouse(SignalName.PACKED, "packed", WarehouseEvent),
        _warehouse(SignalName.SHIPPED, "shipped", WarehouseEvent),
        _warehouse(SignalName.PICK_EXCEPTION, "pick_exception", PickException),
        Message(SignalName.DELIVERED, "delivered", Delivered, _refuse_delivered, _apply_delivered),
        Message(SignalName.CANCEL, "cancel", Cancel, _refuse_cancel, _set("cancel")),
        Message(SignalName.RESUME, "resume", Resume, _refuse_resume, _set("resume")),
        Message(SignalName.PARCEL_READY, None, ParcelReady, _refuse_parcel_ready, _apply_parcel_ready),
    )
}
BY_UPDATE: dict[str, Message] = {m.update: m for m in MESSAGES.values() if m.update}


# ----------------------------------------------------- update-only refusals


def nothing_to_confirm(s: OrderState, m: BuyerConfirmed) -> str | None:
    """A confirm that corrects nothing, asks for nothing and carries no note is refused: it
    would only re-check the order and send the buyer the same question again (issue 21)."""
    if (m.note or "").strip() or m.remarks or m.delivery_window or m.parcel_locker:
        return None
    doc = s.order.model_dump(mode="json")
    for field, (part, key) in RECEIVER_FIELDS.items():
        value = getattr(m, field)
        if value is not None and value != (doc.get(part) or {}).get(key):
            return None
    return "nothing to confirm: no field changes and no note (say what the buyer confirmed)"


def update_refusal(s: OrderState, update: str, payload: Any) -> str | None:
    """Refusals of the update path only (its validator; a refused update writes nothing).
    The signal path keeps its recorded behaviour, so older histories replay unchanged."""
    if update == "confirm" and isinstance(payload, BuyerConfirmed):
        return nothing_to_confirm(s, payload)
    return None


# ----------------------------------------------------------------- judging


def validate(s: OrderState, name: str, payload: Any) -> tuple[str | None, Any]:
    """(why not, the parsed payload): the payload against its model, then the order's state."""
    message = MESSAGES.get(name)
    if message is None:
        return f"unknown signal {name!r}", None
    if not isinstance(payload, dict):
        return "payload must be a JSON object", None
    try:
        parsed = message.model.model_validate(payload)
    except ValidationError as exc:
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'payload'}: {e['msg']}" for e in exc.errors()
        ), None
    return refusal(s, message, parsed), parsed


def refusal(s: OrderState, message: Message, parsed: Any) -> str | None:
    if s.stage.is_final:
        return f"the order is {s.stage}"
    return message.refuse(s, parsed)


def accept(s: OrderState, message: Message, parsed: Any, **how: Any) -> None:
    """Record the message in the timeline (PII masked) and hand it to the stage that takes it."""
    data = parsed.model_dump(mode="json", exclude_none=True)
    if message.signal == SignalName.BUYER_CONFIRMED:
        data = {k: (mask_correction(v) if k in ("phone", "detail") else v) for k, v in data.items()}
    elif message.signal == SignalName.PLATFORM_ADDRESS:
        data = {k: _mask_receiver(k, v) for k, v in data.items()}
    s.log("signal", signal=message.signal, **data, **how)
    message.apply(s, parsed)
    s.touch()

