"""The order as the workflow knows it: one object, read and changed by every stage and handler.

Everything here is deterministic state: what the order is, where it stands, what has
arrived for it (the inbox) and what the steps carry to each other. The database copy
of it is written by `persistence.Persistence`; the UI's copy by `visibility.Visibility`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.documents import OrderDocument
    from models.enums import PaymentStatus, ShortagePolicy, Stage, WaitingFor
    from models.payloads import (
        Approve,
        BuyerConfirmed,
        Cancel,
        LineState,
        OrderInput,
        OrderSnapshot,
        PaymentReceived,
        PickException,
        Reject,
        Resume,
        ShipmentState,
        WarehouseEvent,
    )
    from models.settings import Policy
    from models.types import Finding

CLOSED_SHIPMENT = ("shipped", "cancelled")


@dataclass
class Inbox:
    """What operators, the warehouse and other workflows sent, until a stage takes it."""

    cancel: Cancel | None = None
    confirmations: list[BuyerConfirmed] = field(default_factory=list)
    payment: PaymentReceived | None = None
    decision: ShortagePolicy | None = None  # the operator's shortage decision (it stays in force)
    decision_new: bool = False  # ... and not yet acted on
    transfers_arrived: list[str] = field(default_factory=list)
    approval: Approve | Reject | None = None
    warehouse: list[tuple[str, WarehouseEvent | PickException]] = field(default_factory=list)
    delivered: bool = False
    resume: Resume | None = None


class OrderState:
    def __init__(self, inp: OrderInput, now: datetime) -> None:
        self.order: OrderDocument = inp.order
        self.policy: Policy = inp.policy
        self.stage = Stage.RECEIVED
        self.waiting: WaitingFor | None = None
        self.since: datetime = now
        self.flags: list[str] = []
        self.findings: list[Finding] = []
        self.lines = [
            LineState(line_no=i, sku=line.sku, qty=line.qty, unit_price=line.unit_price)
            for i, line in enumerate(inp.order.lines, start=1)
        ]
        self.shipments: list[ShipmentState] = []
        self.timeline: list[dict[str, Any]] = []
        self.inbox = Inbox()
        self.pending_transfers: dict[str, dict[str, Any]] = {}
        self.held_from: Stage | None = None
        self.refund_held = False  # on hold for a refund asked for on the platform (`refund_hold`)
        self.release_again = False  # ... and its pick lists were withdrawn: release them again
        self.address_changed = False  # the platform's new address, not checked yet (`address_change`)
        self.pii_unavailable = inp.pii_unavailable  # why the receiver is not decrypted (`pii_hold`)
        self.buyer_confirmed = False
        self.refund_amount: Decimal | None = None
        self.refund_status: str | None = None
        self.cancel_reason: str | None = None
        self.reviewed = False
        self.contact_no: int | None = None  # the latest contact, which a confirmation answers
        # Carried from one step to the next:
        # - until the first check records the order (same transaction): when it was submitted;
        self.unrecorded_since: datetime | None = inp.submitted_at
        # - the price review check_order computed, for the document it checked; used by the
        #   review while that document is unchanged and nothing was awaited since;
        self.prereview: tuple[OrderDocument, Any] | None = None
        # - the reservation check_order made when it cleared the order; allocation takes it.
        self.preallocated: Any = None
        self.version = 0  # one more at every change (the database copy is behind while they differ)
        self.on_publish: Callable[[], None] = lambda: None  # wired to `Visibility.publish`

    # ------------------------------------------------------------- changing

    def touch(self) -> None:
        self.version += 1

    def log(self, type_: str, **data: Any) -> dict[str, Any]:
        """A timeline entry (written to the database with the next state write)."""
        entry = {"seq": len(self.timeline) + 1, "at": workflow.now(), "type": type_, "data": data}
        self.timeline.append(entry)
        self.touch()
        return entry

    def set_stage(self, stage: Stage, waiting: WaitingFor | None = None) -> None:
        if stage == self.stage and waiting == self.waiting and self.timeline:
            return
        previous = self.stage
        self.stage = stage
        self.waiting = waiting
        self.since = workflow.now()
        self.log("stage", stage=str(stage), previous=str(previous), waiting_for=str(waiting) if waiting else None)
        self.on_publish()
        self.touch()

    def flag(self, flag: str) -> None:
        if flag not in self.flags:
            self.flags.append(flag)
            self.flags.sort()
            self.on_publish()
            self.touch()

    def drop_flag(self, flag: str) -> None:
        if flag in self.flags:
            self.flags.remove(flag)
            self.on_publish()
            self.touch()

    def move_backordered_to_reserved(self, line_no: int, qty: int) -> None:
        for line in self.lines:
            if line.line_no == line_no:
                moved = min(qty, line.backordered)
                line.backordered -= moved
                line.reserved += moved
        self.touch()

    # -------------------------------------------------------------- reading

    @property
    def order_id(self) -> str:
        return self.order.order_id

    @property
    def effective_stage(self) -> Stage:
        """The stage an order on hold was held from (what a message is judged against)."""
        return self.held_from if self.stage == Stage.ON_HOLD and self.held_from else self.stage

    def open_shipments(self) -> list[ShipmentState]:
        return [s for s in self.shipments if s.status not in CLOSED_SHIPMENT]

    def shipment_for(self, number: int | None) -> ShipmentState | None:
        candidates = self.open_shipments()
        if number is not None:
            candidates = [s for s in self.shipments if s.shipment_no == number]
        return candidates[0] if candidates else None

    def units_left(self) -> list[int]:
        """Per line, the units neither shipped nor cancelled (what a cancel could still take back)."""
        return [line.qty - line.shipped - line.cancelled for line in self.lines]

    def stock_done(self) -> bool:
        return not any(line.backordered > 0 for line in self.lines)

    def shortage_policy(self) -> ShortagePolicy:
        return self.inbox.decision or self.order.shortage_policy or self.policy.shortage.default

    def must_confirm(self) -> bool:
        """The policy asks every buyer to confirm, and this one has not yet."""
        return self.policy.confirmation.mode == "always" and not self.buyer_confirmed

    def paid_amount(self) -> Decimal:
        payment = self.order.payment
        if payment.status == PaymentStatus.PAID:
            return payment.amount or Decimal(0)
        return Decimal(0)

    def payment_settled(self) -> bool:
        status = self.order.payment.status
        cod_confirmed = self.buyer_confirmed or self.policy.confirmation.mode == "on_findings"
        return status == PaymentStatus.PAID or (status == PaymentStatus.COD and cod_confirmed)

    def snapshot(self) -> OrderSnapshot:
        return OrderSnapshot(
            order_id=self.order.order_id,
            stage=str(self.stage),
            waiting_for=str(self.waiting) if self.waiting else None,
            stage_since=self.since,
            flags=list(self.flags),
            findings=list(self.findings),
            document=self.order,
            lines=[line.model_copy() for line in self.lines],
            shipments=[s.model_copy() for s in self.shipments],
            refund_amount=self.refund_amount,
            refund_status=self.refund_status,
            cancel_reason=self.cancel_reason,
            held_from=str(self.held_from) if self.held_from else None,
            decision=self.inbox.decision,
        )
