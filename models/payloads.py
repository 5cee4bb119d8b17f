"""Inputs and results of the workflows, activities and signals: one type each.

Signals arrive as raw JSON (they can be typed by hand in the Temporal UI), and
the workflow validates them against these models itself, so that a bad payload
is recorded as rejected instead of being dropped by the data converter.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from models.documents import OrderDocument
from models.enums import Channel, ShortagePolicy
from models.settings import Policy
from models.types import AllocationPlan, Finding, TimelineEvent, Totals


class _Signal(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# --------------------------------------------------------------------- workflow


class OrderInput(BaseModel):
    order: OrderDocument
    policy: Policy
    submitted_at: datetime
    # A shop's order whose receiver the platform would not decrypt (issue 19): the reason.
    # The order is held at intake (`pii_unavailable`) until a `resume` decrypts it, or the
    # shop's sync does and sends it the receiver; nothing is checked against ciphertext.
    pii_unavailable: str | None = Field(default=None, max_length=1000)


class OrderOutcome(BaseModel):
    order_id: str
    stage: str
    reason: str | None = None


class LineState(BaseModel):
    line_no: int
    sku: str
    qty: int
    unit_price: Decimal | None = None
    reserved: int = 0
    shipped: int = 0
    backordered: int = 0
    cancelled: int = 0

    @property
    def open_qty(self) -> int:
        """Units neither reserved, shipped, backordered nor cancelled yet."""
        return self.qty - self.reserved - self.shipped - self.backordered - self.cancelled


class ShipmentState(BaseModel):
    id: str
    shipment_no: int
    warehouse: str
    status: str = "released"
    carrier: str | None = None
    tracking_no: str | None = None
    lines: list[dict[str, Any]] = Field(default_factory=list)


class OrderSnapshot(BaseModel):
    """What the workflow knows; persisted to the database and returned by the `state` query."""

    order_id: str
    stage: str
    waiting_for: str | None
    stage_since: datetime
    flags: list[str]
    findings: list[Finding]
    document: OrderDocument
    lines: list[LineState]
    shipments: list[ShipmentState]
    refund_amount: Decimal | None = None
    refund_status: str | None = None
    cancel_reason: str | None = None
    held_from: str | None = None
    decision: ShortagePolicy | None = None


# --------------------------------------------------------------------- signals


class BuyerConfirmed(_Signal):
    phone: str | None = Field(default=None, max_length=40)
    name: str | None = Field(default=None, max_length=100)
    province: str | None = Field(default=None, max_length=50)
    city: str | None = Field(default=None, max_length=50)
    district: str | None = Field(default=None, max_length=50)
    detail: str | None = Field(default=None, max_length=200)
    postal_code: str | None = Field(default=None, max_length=20)
    remarks: str | None = Field(default=None, max_length=500)
    delivery_window: str | None = Field(default=None, max_length=100)
    parcel_locker: bool | None = None
    note: str | None = Field(default=None, max_length=500)
    channel: Channel | None = None


class PaymentReceived(_Signal):
    amount: Decimal = Field(gt=0, allow_inf_nan=False)
    transaction_id: str = Field(min_length=1, max_length=100)
    method: str | None = Field(default=None, max_length=40)


class ShortageDecision(_Signal):
    policy: ShortagePolicy
    note: str | None = Field(default=None, max_length=500)


class PlatformRefund(_Signal):
    """A shop's sync saw the buyer ask the platform for a refund (`requested`), or withdraw
    it (`closed`), before the order shipped (issue 19)."""

    status: str = Field(pattern="^(requested|closed)$")
    platform: str = Field(min_length=1, max_length=40)


class PlatformAddress(_Signal):
    """A shop's sync saw the buyer change the receiver on the platform before the order
    shipped (issue 19): the new receiver, decrypted. Checked again by the order; a released
    order's warehouse gets an amended pick list (`workflows.order.address_change`)."""

    platform: str = Field(min_length=1, max_length=40)
    name: str | None = Field(default=None, max_length=100)
    phone: str | None = Field(default=None, max_length=40)
    province: str | None = Field(default=None, max_length=50)
    city: str | None = Field(default=None, max_length=50)
    district: str | None = Field(default=None, max_length=50)
    detail: str = Field(min_length=1, max_length=200)
    postal_code: str | None = Field(default=None, max_length=20)


class StockArrived(_Signal):
    """restock_arrived / transfer_arrived: the ledger already holds the stock for the order."""

    order_id: str | None = None
    line_no: StrictInt
    sku: str
    warehouse: str
    qty: StrictInt = Field(gt=0)
    ref: str | None = None


class Approve(_Signal):
    note: str | None = Field(default=None, max_length=500)
    by: str | None = Field(default=None, max_length=100)


class Reject(_Signal):
    reason: str = Field(min_length=1, max_length=500)
    by: str | None = Field(default=None, max_length=100)


class WarehouseEvent(_Signal):
    """picked / packed / shipped for one shipment (number 1, 2, ...; default: the only open one)."""

    shipment: StrictInt | None = Field(default=None, gt=0)
    carrier: str | None = Field(default=None, max_length=20)
    tracking_no: str | None = Field(default=None, max_length=60)
    parcels: StrictInt | None = Field(default=None, gt=0)
    weight_g: StrictInt | None = Field(default=None, gt=0)

    @field_validator("tracking_no")
    @classmethod
    def _tracking_shape(cls, value: str | None) -> str | None:
        if value is not None and not value.replace("-", "").isalnum():
            raise ValueError("must be letters and digits")
        return value


class PickException(_Signal):
    sku: str = Field(min_length=1, max_length=64)
    qty: StrictInt = Field(gt=0)
    reason: str = Field(pattern="^(damaged|missing)$")
    shipment: StrictInt | None = Field(default=None, gt=0)


class Cancel(_Signal):
    reason: str = Field(min_length=1, max_length=500)
    by: str | None = Field(default=None, max_length=100)
    # the platform that already refunded the buyer (a shop's sync, issue 19): no second refund
    refunded_on: str | None = Field(default=None, max_length=40)


class Resume(_Signal):
    note: str | None = Field(default=None, max_length=500)


class Delivered(_Signal):
    shipment: StrictInt | None = Field(default=None, gt=0)


class TransferArrived(_Signal):
    """transfer_arrived: the goods of this transfer reached the order's warehouse."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    transfer_id: str = Field(min_length=1, max_length=100)


# ------------------------------------------------------------------ activities


class RecordOrderInput(BaseModel):
    order: OrderDocument
    submitted_at: datetime


class CheckInput(BaseModel):
    order: OrderDocument
    policy: Policy


class ContactInput(BaseModel):
    order: OrderDocument
    findings: list[Finding]
    channel: Channel
    reminder: int = 0
    event_id: str


class ContactResult(BaseModel):
    contact_no: int
    event_ids: list[str]


class AllocateInput(BaseModel):
    order_id: str
    op_key: str
    needs: list[dict[str, Any]]  # LineNeed dicts: line_no, sku, qty
    buyer_province: str | None
    order_time: datetime
    policy: ShortagePolicy
    split_allowed: bool
    rule: str
    # Book what cannot be had now as backorders (wait, transfer without a source,
    # partial with the rest backordered); otherwise it is left to the workflow.
    backorder_rest: bool = True


class AllocateResult(BaseModel):
    plan: AllocationPlan
    # (line_no, warehouse, qty) reserved now / backordered / moving in a transfer
    reserved: list[tuple[int, str, int]] = Field(default_factory=list)
    backordered: list[tuple[int, str, int]] = Field(default_factory=list)
    transfers: list[dict[str, Any]] = Field(default_factory=list)
    event_ids: list[str] = Field(default_factory=list)


class ReleaseStockInput(BaseModel):
    """Release held stock, backorders and transfers of an order (all, or some lines)."""

    order_id: str
    op_key: str
    line_nos: list[int] | None = None
    include_reserved: bool = True


class ReleaseStockResult(BaseModel):
    released_units: int = 0
    # orders that the freed stock was handed to (first come first served): signal them
    served: list[dict[str, Any]] = Field(default_factory=list)


class ReviewInput(BaseModel):
    order: OrderDocument
    policy: Policy


class ReviewResult(BaseModel):
    totals: Totals
    findings: list[Finding]


class ReleaseInput(BaseModel):
    order_id: str
    op_key: str
    remarks: list[str]
    first_shipment_no: int
    # The order's state as it stands once released, written in the same transaction as the
    # pick lists; its timeline entry `released_entry_seq` gets the ids of the pick lists made.
    state: PersistInput | None = None
    released_entry_seq: int | None = None


class ReleaseResult(BaseModel):
    shipments: list[dict[str, Any]]  # ShipmentState dicts
    event_ids: list[str] = Field(default_factory=list)


class ShipmentUpdateInput(BaseModel):
    order_id: str
    shipment_id: str
    kind: str  # picked | packed | shipped | cancelled
    op_key: str
    carrier: str | None = None
    tracking_no: str | None = None
    parcels: int | None = None
    weight_g: int | None = None


class WithdrawInput(BaseModel):
    order_id: str
    op_key: str
    # A refund interception (issue 19): the stock stays reserved for the order, unassigned
    # from the withdrawn pick lists, so that a later release writes new ones for it.
    keep_stock: bool = False
    reason: str | None = None  # given: in each `pick_list_withdrawn` event's payload


class WithdrawResult(BaseModel):
    shipment_ids: list[str] = Field(default_factory=list)
    event_ids: list[str] = Field(default_factory=list)


class ShipmentUpdateResult(BaseModel):
    shipped_lines: list[tuple[int, int]] = Field(default_factory=list)  # (line_no, qty)
    event_ids: list[str] = Field(default_factory=list)


class PickExceptionInput(BaseModel):
    order_id: str
    shipment_id: str
    sku: str
    qty: int
    reason: str
    op_key: str


class PickExceptionResult(BaseModel):
    # (line_no, qty) taken off the shipment and back to allocation
    lines: list[tuple[int, int]] = Field(default_factory=list)
    shipment_empty: bool = False


class TransferArrivalInput(BaseModel):
    transfer_id: str
    op_key: str


class RefundInput(BaseModel):
    order_id: str
    amount: Decimal
    reason: str
    refund_id: str


class EmitInput(BaseModel):
    order_id: str
    type: str
    payload: dict[str, Any]
    event_id: str


class PersistInput(BaseModel):
    snapshot: OrderSnapshot
    events: list[TimelineEvent]
    status_event_id: str | None = None
    # Warehouse events the workflow has applied to its state: written with it, each once.
    shipment_updates: list[ShipmentUpdateInput] = Field(default_factory=list)


class PersistResult(BaseModel):
    event_ids: list[str] = Field(default_factory=list)
    shipments: list[ShipmentUpdateResult] = Field(default_factory=list)  # one per shipment update


class RestockInput(BaseModel):
    sku: str
    warehouse: str
    qty: int
    op_key: str


class RestockResult(BaseModel):
    served: list[dict[str, Any]] = Field(default_factory=list)
    error: str | None = None


class DeliverInput(BaseModel):
    event_id: str


class CheckOrderInput(CheckInput):
    """check_order's input.

    `submitted_at`: on the first check, record the order in the same transaction.
    `reserve`: when the findings clear the order for allocation (`clears_intake`),
    reserve its stock right away, in the same step, under that input's key.
    """

    submitted_at: datetime | None = None
    buyer_confirmed: bool = False
    reserve: AllocateInput | None = None


class ShipmentUpdatesInput(BaseModel):
    """Warehouse events for update_shipments, in the order they are applied."""

    updates: list[ShipmentUpdateInput]


class CheckOutcome(BaseModel):
    """The check's findings and the price review computed from the same catalog rows."""

    findings: list[Finding]
    review: ReviewResult | None = None  # None: the reviewing stage calls review_order itself
    allocation: AllocateResult | None = None  # the reservation, when one was asked for and the check cleared
