"""Stage names, waits, finding codes, signal names: defined once, used everywhere.

They are `StrEnum`s so they travel through Temporal payloads, the database and
the CLI as the plain strings of SPEC §3 without any mapping layer.
"""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    RECEIVED = "received"
    CHECKING = "checking"
    AWAITING_BUYER = "awaiting_buyer"
    AWAITING_PAYMENT = "awaiting_payment"
    ALLOCATING = "allocating"
    BACKORDERED = "backordered"
    AWAITING_TRANSFER = "awaiting_transfer"
    REVIEWING = "reviewing"
    AWAITING_APPROVAL = "awaiting_approval"
    RELEASED = "released"
    PICKING = "picking"
    PACKED = "packed"
    SHIPPED = "shipped"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    ON_HOLD = "on_hold"

    @property
    def is_final(self) -> bool:
        return self in (Stage.COMPLETED, Stage.CANCELLED)

    @property
    def can_cancel(self) -> bool:
        """A cancel is accepted in any stage before the parcel has left."""
        return self not in (Stage.SHIPPED, Stage.COMPLETED, Stage.CANCELLED)


class WaitingFor(StrEnum):
    BUYER = "buyer"
    PAYMENT = "payment"
    STOCK = "stock"
    TRANSFER = "transfer"
    APPROVAL = "approval"
    WAREHOUSE = "warehouse"
    OPERATOR = "operator"


class FindingClass(StrEnum):
    BUYER = "buyer"
    PAYMENT = "payment"
    REVIEW = "review"
    REJECT = "reject"


class FindingCode(StrEnum):
    # buyer: only the buyer can fix it
    NAME_MISSING = "name_missing"
    NAME_IMPLAUSIBLE = "name_implausible"
    PHONE_INVALID = "phone_invalid"
    ADDRESS_INCOMPLETE = "address_incomplete"
    ADDRESS_INCONSISTENT = "address_inconsistent"
    ADDRESS_VAGUE = "address_vague"
    POSTAL_CODE_INVALID = "postal_code_invalid"
    COD_UNCONFIRMED = "cod_unconfirmed"
    # payment: money is not settled
    UNPAID = "unpaid"
    AMOUNT_MISMATCH = "amount_mismatch"
    # review: an operator must look
    SUSPECTED_FRAUD = "suspected_fraud"
    PRICE_MISMATCH = "price_mismatch"
    SKU_ATTRIBUTE_MISMATCH = "sku_attribute_mismatch"
    QTY_OVER_LIMIT = "qty_over_limit"
    HIGH_VALUE = "high_value"
    COUPON_UNKNOWN = "coupon_unknown"
    # reject: cannot be processed
    SKU_UNKNOWN = "sku_unknown"
    SKU_INACTIVE = "sku_inactive"


class Flag(StrEnum):
    """Flags shown in the UI (`OrderFlags`) and the CLI. Finding codes are flags too."""

    PICK_OVERDUE = "pick_overdue"
    PICK_ESCALATED = "pick_escalated"
    APPROVAL_OVERDUE = "approval_overdue"
    BUYER_TIMEOUT = "buyer_timeout"
    PAYMENT_TIMEOUT = "payment_timeout"
    BACKORDER_TIMEOUT = "backorder_timeout"
    TRANSFER_TIMEOUT = "transfer_timeout"
    PARTIAL_SHIPMENT = "partial_shipment"
    WEBHOOK_FAILED = "webhook_failed"
    NEEDS_APPROVAL = "needs_approval"
    STEP_FAILED = "step_failed"  # a step failed for good (bad data): the order waits for an operator
    REFUND_REQUESTED = "refund_requested"  # the buyer asked the platform for a refund (issue 19)
    SHIP_BY_SOON = "ship_by_soon"  # not shipped `ship_by.warn` before the platform's ship-by time
    SHIP_BY_LATE = "ship_by_late"  # not shipped by the platform's ship-by time
    PII_UNAVAILABLE = "pii_unavailable"  # the platform would not decrypt the receiver (issue 19)
    # the platform refused the shipment's tracking (a refund, say): a clerk settles it there.
    # Raised by the shop's sync beside the workflow (platforms.writeback), kept by its state writes.
    PLATFORM_SHIP_REFUSED = "platform_ship_refused"


class SignalName(StrEnum):
    BUYER_CONFIRMED = "buyer_confirmed"
    PAYMENT_RECEIVED = "payment_received"
    SHORTAGE_DECISION = "shortage_decision"
    RESTOCK_ARRIVED = "restock_arrived"
    PLATFORM_REFUND = "platform_refund"  # from a shop's sync: a refund asked for / withdrawn
    PLATFORM_ADDRESS = "platform_address"  # from a shop's sync: the buyer changed the address
    TRANSFER_ARRIVED = "transfer_arrived"
    APPROVE = "approve"
    REJECT = "reject"
    PICKED = "picked"
    PACKED = "packed"
    SHIPPED = "shipped"
    PICK_EXCEPTION = "pick_exception"
    DELIVERED = "delivered"
    CANCEL = "cancel"
    RESUME = "resume"
    PARCEL_READY = "parcel_ready"  # the shipping desk: a held parcel got its carrier and waybill


class Action(StrEnum):
    """An operator's or the warehouse's action: the CLI's subcommand, the API's and the console's
    action (SPEC §5.3, §5.6). What each takes and where it applies: `workflows.order.actions`."""

    CONFIRM = "confirm"
    PAY = "pay"
    DECIDE = "decide"
    APPROVE = "approve"
    REJECT = "reject"
    RESUME = "resume"
    PICKED = "picked"
    PACKED = "packed"
    SHIPPED = "shipped"
    PICK_EXCEPTION = "pick-exception"
    DELIVERED = "delivered"
    CANCEL = "cancel"
    TRANSFER_ARRIVED = "transfer-arrived"


class ShortagePolicy(StrEnum):
    PARTIAL = "partial"
    CANCEL = "cancel"
    WAIT = "wait"
    TRANSFER = "transfer"


class TimeoutAction(StrEnum):
    CANCEL = "cancel"
    HOLD = "hold"


class ConfirmationMode(StrEnum):
    ON_FINDINGS = "on_findings"
    COD = "cod"
    ALWAYS = "always"


class Channel(StrEnum):
    IM = "im"
    SMS = "sms"
    PHONE = "phone"


class PaymentStatus(StrEnum):
    PAID = "paid"
    PENDING = "pending"
    COD = "cod"


class MovementKind(StrEnum):
    RESTOCK = "restock"
    RESERVE = "reserve"
    RELEASE = "release"
    SHIP = "ship"
    ADJUST = "adjust"
    TRANSFER_OUT = "transfer_out"
    TRANSFER_IN = "transfer_in"


class ReservationStatus(StrEnum):
    HELD = "held"
    RELEASED = "released"
    CONSUMED = "consumed"


class ShipmentStatus(StrEnum):
    RELEASED = "released"
    PICKED = "picked"
    PACKED = "packed"
    SHIPPED = "shipped"
    CANCELLED = "cancelled"


class EventStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
