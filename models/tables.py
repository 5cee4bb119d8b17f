"""SQLModel tables: the OMS database is the source of truth for lists, reports and stock.

The order workflow owns the order's state and writes it here through
activities; the stock ledger changes only through `StockMovement` rows written
in the same transaction as the `StockLevel` they change, so every figure can be
rebuilt from its movements (``starter.py stock --audit``). Table objects never
cross the Temporal boundary: activities convert them to `models.types` /
`models.payloads` values.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Column, Index, Numeric, UniqueConstraint
from sqlalchemy.types import DateTime
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_utc(value: datetime) -> datetime:
    """Aware datetimes in UTC; naive ones (SQLite gives them back so) are taken as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ts(**kw: Any) -> Any:
    return Field(sa_column=Column(DateTime(timezone=True), **kw))


def _money(**kw: Any) -> Any:
    return Field(sa_column=Column(Numeric(14, 2), **kw))


def _json(**kw: Any) -> Any:
    return Field(sa_column=Column(JSON, **kw))


# ----------------------------------------------------------------------- orders


class Order(SQLModel, table=True):
    __tablename__ = "orders"
    __table_args__ = (
        # Keyset pages (created_at, order_id) of the whole list, by stage and by waiting_for.
        Index("ix_orders_created_id", "created_at", "order_id"),
        Index("ix_orders_stage_created_id", "stage", "created_at", "order_id"),
        Index("ix_orders_waiting_created_id", "waiting_for", "created_at", "order_id"),
        # The queue by deadline (issue 19, migration 0007): the orders still to ship by a
        # platform's ship-by time, soonest first, then the rest (ship_due NULL) oldest first.
        Index("ix_orders_due_created_id", "ship_due", "created_at", "order_id"),
        Index("ix_orders_waiting_due_created_id", "waiting_for", "ship_due", "created_at", "order_id"),
        Index("ix_orders_stage_due_created_id", "stage", "ship_due", "created_at", "order_id"),
        Index("ix_orders_phone_key", "phone_key"),
        Index("ix_orders_address_key", "address_key"),
    )

    order_id: str = Field(primary_key=True, max_length=64)
    workflow_id: str = Field(max_length=80)
    platform: str = Field(default="unknown", max_length=40)
    stage: str = Field(default="received", max_length=32)
    waiting_for: str | None = Field(default=None, max_length=32)
    stage_since: datetime | None = _ts(nullable=True)
    flags: list[str] = _json(nullable=False, default=list)
    findings: list[dict[str, Any]] = _json(nullable=False, default=list)
    document: dict[str, Any] = _json(nullable=False)
    phone_key: str | None = Field(default=None, max_length=40)
    address_key: str | None = Field(default=None, max_length=400)
    total: Decimal | None = _money(nullable=True)
    refund_amount: Decimal | None = _money(nullable=True)
    refund_status: str | None = Field(default=None, max_length=20)
    cancel_reason: str | None = Field(default=None, max_length=500)
    created_at: datetime = _ts(nullable=False)
    submitted_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)
    # When `oms purge-pii` masked the buyer's name, phone and address detail (migration 0003).
    pii_purged_at: datetime | None = _ts(nullable=True)
    # The platform's ship-by time (the document's `ship_by`, UTC), shown by lists; and the same
    # while the order is still to ship, NULL once it shipped, completed or was cancelled: the
    # key the queue sorts on, so a deadline that no longer matters drops out of its index range
    # (migration 0007; written by the order's record and its state writes).
    ship_by: datetime | None = _ts(nullable=True)
    ship_due: datetime | None = _ts(nullable=True)


class OrderLineRow(SQLModel, table=True):
    __tablename__ = "order_lines"

    order_id: str = Field(primary_key=True, foreign_key="orders.order_id", max_length=64)
    line_no: int = Field(primary_key=True)
    sku: str = Field(max_length=64, index=True)
    qty: int
    unit_price: Decimal | None = _money(nullable=True)
    reserved: int = 0
    shipped: int = 0
    backordered: int = 0
    cancelled: int = 0


class TimelineEntry(SQLModel, table=True):
    """Every stage change, finding, signal (accepted or rejected), contact and decision."""

    __tablename__ = "timeline"
    __table_args__ = (UniqueConstraint("order_id", "seq", name="uq_timeline_order_seq"),)

    id: int | None = Field(default=None, primary_key=True)
    order_id: str = Field(max_length=64, index=True)
    seq: int
    at: datetime = _ts(nullable=False)
    type: str = Field(max_length=40)
    data: dict[str, Any] = _json(nullable=False, default=dict)


class ContactLog(SQLModel, table=True):
    """The order's communication log with the buyer."""

    __tablename__ = "contact_log"
    __table_args__ = (UniqueConstraint("order_id", "contact_no", name="uq_contact_order_no"),)

    id: int | None = Field(default=None, primary_key=True)
    order_id: str = Field(max_length=64, index=True)
    contact_no: int
    channel: str = Field(max_length=10)
    text: str
    at: datetime = _ts(nullable=False)
    reminder: int = 0
    outcome: str | None = Field(default=None, max_length=40)
    note: str | None = None


class Refund(SQLModel, table=True):
    __tablename__ = "refunds"

    id: str = Field(primary_key=True, max_length=120)
    order_id: str = Field(max_length=64, index=True)
    amount: Decimal = _money(nullable=False)
    reason: str = Field(max_length=500)
    status: str = Field(default="requested", max_length=20)
    created_at: datetime = _ts(nullable=False)


# -------------------------------------------------------------- reference data


class CatalogRow(SQLModel, table=True):
    __tablename__ = "catalog"

    sku: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    price: Decimal = _money(nullable=False)
    weight_g: int = 0
    attributes: dict[str, str] = _json(nullable=False, default=dict)
    active: bool = True
    usual_qty: int | None = None


class WarehouseRow(SQLModel, table=True):
    __tablename__ = "warehouses"

    code: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=100)
    province: str = Field(max_length=50)
    priority: int = 100


# ------------------------------------------------------------------ the ledger


class StockLevel(SQLModel, table=True):
    """Per SKU and warehouse. ``available = on_hand - reserved``; changed only with a movement."""

    __tablename__ = "stock_levels"

    sku: str = Field(primary_key=True, max_length=64)
    warehouse: str = Field(primary_key=True, max_length=32)
    on_hand: int = 0
    reserved: int = 0


class StockMovement(SQLModel, table=True):
    __tablename__ = "stock_movements"
    __table_args__ = (Index("ix_movements_sku_wh", "sku", "warehouse"),)

    id: int | None = Field(default=None, primary_key=True)
    sku: str = Field(max_length=64)
    warehouse: str = Field(max_length=32)
    kind: str = Field(max_length=20)
    on_hand_delta: int = 0
    reserved_delta: int = 0
    order_id: str | None = Field(default=None, max_length=64, index=True)
    ref: str | None = Field(default=None, max_length=120)
    at: datetime = _ts(nullable=False)


class Reservation(SQLModel, table=True):
    """Stock held for one order line in one warehouse (qty accumulates; status held→consumed/released)."""

    __tablename__ = "reservations"
    __table_args__ = (
        Index("ix_reservations_order_line", "order_id", "line_no"),
    )

    id: int | None = Field(default=None, primary_key=True)
    order_id: str = Field(max_length=64, index=True)
    line_no: int
    sku: str = Field(max_length=64)
    warehouse: str = Field(max_length=32)
    qty: int = 0
    shipment_id: str | None = Field(default=None, max_length=80)
    status: str = Field(default="held", max_length=20)
    created_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)


class Backorder(SQLModel, table=True):
    """An order line waiting for stock at a warehouse; served first come first served by order time."""

    __tablename__ = "backorders"
    __table_args__ = (
        Index("ix_backorders_order", "order_id", "line_no"),
        Index("ix_backorders_queue", "sku", "warehouse", "status", "order_time"),
    )

    id: int | None = Field(default=None, primary_key=True)
    order_id: str = Field(max_length=64)
    line_no: int
    sku: str = Field(max_length=64)
    warehouse: str = Field(max_length=32)
    qty_wanted: int
    qty_filled: int = 0
    order_time: datetime = _ts(nullable=False)
    status: str = Field(default="waiting", max_length=20)
    created_at: datetime = _ts(nullable=False)


class Transfer(SQLModel, table=True):
    """Stock moving between warehouses for one order line; in transit it counts in neither."""

    __tablename__ = "transfers"

    id: str = Field(primary_key=True, max_length=80)
    order_id: str = Field(max_length=64, index=True)
    line_no: int
    sku: str = Field(max_length=64)
    from_warehouse: str = Field(max_length=32)
    to_warehouse: str = Field(max_length=32)
    qty: int
    status: str = Field(default="in_transit", max_length=20)
    created_at: datetime = _ts(nullable=False)
    arrived_at: datetime | None = _ts(nullable=True)


class Shipment(SQLModel, table=True):
    __tablename__ = "shipments"

    id: str = Field(primary_key=True, max_length=80)
    order_id: str = Field(max_length=64, index=True)
    shipment_no: int
    warehouse: str = Field(max_length=32)
    status: str = Field(default="released", max_length=20)
    pick_list: dict[str, Any] = _json(nullable=False, default=dict)
    carrier: str | None = Field(default=None, max_length=20)
    tracking_no: str | None = Field(default=None, max_length=60)
    parcels: int | None = None
    weight_g: int | None = None
    released_at: datetime = _ts(nullable=False)
    picked_at: datetime | None = _ts(nullable=True)
    packed_at: datetime | None = _ts(nullable=True)
    shipped_at: datetime | None = _ts(nullable=True)


# ---------------------------------------------------------------------- outbox


class OutboxEvent(SQLModel, table=True):
    """Every externally visible event, written in the transaction that caused it."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_order", "order_id", "created_at"),
        Index("ix_outbox_created_id", "created_at", "id"),
        Index("ix_outbox_status", "status"),
    )

    id: str = Field(primary_key=True, max_length=120)
    order_id: str | None = Field(default=None, max_length=64)
    type: str = Field(max_length=40)
    payload: dict[str, Any] = _json(nullable=False, default=dict)
    status: str = Field(default="pending", max_length=20)
    attempts: int = 0
    last_error: str | None = None
    created_at: datetime = _ts(nullable=False)
    delivered_at: datetime | None = _ts(nullable=True)


class AppliedOp(SQLModel, table=True):
    """Idempotency keys: a retried activity finds its first result here and does nothing twice."""

    __tablename__ = "applied_ops"

    op_key: str = Field(primary_key=True, max_length=200)
    result: dict[str, Any] = _json(nullable=False, default=dict)
    at: datetime = _ts(nullable=False)


# ------------------------------------------------------------ list reads, keys


class OrderFlag(SQLModel, table=True):
    """One row per flag an order carries: the flag filter of lists as an index, not a JSON scan.

    Kept in step with ``orders.flags`` by the state write (`activities.orders.write_state`);
    ``created_at`` is the order's, so a flag's page is read in the list's keyset order.
    """

    __tablename__ = "order_flags"
    __table_args__ = (Index("ix_order_flags_flag_created_id", "flag", "created_at", "order_id"),)

    order_id: str = Field(primary_key=True, max_length=64)
    flag: str = Field(primary_key=True, max_length=40)
    created_at: datetime = _ts(nullable=False)


class ApiKey(SQLModel, table=True):
    """An HTTP API key (`oms keys create`): only its SHA-256 is kept, never the key itself."""

    __tablename__ = "api_keys"

    name: str = Field(primary_key=True, max_length=64)
    role: str = Field(max_length=16)
    key_hash: str = Field(max_length=64, unique=True)
    prefix: str = Field(max_length=16)
    created_at: datetime = _ts(nullable=False)
    revoked_at: datetime | None = _ts(nullable=True)

# ----------------------------------------------------- privacy (migration 0003)


class CodecKeyCheck(SQLModel, table=True):
    """Each payload-codec key id this installation has used, with a fingerprint (never the key).

    A worker refuses to start with a key whose id is known here under another
    fingerprint: the wrong key for that id (`runtime.codec.check_ring`).
    """

    __tablename__ = "codec_key_checks"

    key_id: str = Field(primary_key=True, max_length=64)
    fingerprint: str = Field(max_length=64)
    first_seen: datetime = _ts(nullable=False)


class WebhookEndpoint(SQLModel, table=True):
    """A webhook URL's delivery state: a 410 Gone disables it until an operator re-enables it."""

    __tablename__ = "webhook_endpoints"

    url: str = Field(primary_key=True, max_length=500)
    status: str = Field(default="enabled", max_length=20)  # enabled | disabled
    reason: str | None = Field(default=None, max_length=500)
    disabled_at: datetime | None = _ts(nullable=True)
    disabled_by_event: str | None = Field(default=None, max_length=120)
    enabled_at: datetime | None = _ts(nullable=True)
    enabled_by: str | None = Field(default=None, max_length=100)


class OrderSearchKey(SQLModel, table=True):
    """What an order can be found by (issue 21, `reads/search.py`): one row per key, read in
    the list's keyset order. Kinds: `id` (the order id, and the platform's when it differs),
    `idp` (its prefixes of 4..10 characters), `sku`, `tracking`, `platform`, `province` (its
    stem), and `name` / `phone4` as keyed hashes (HMAC, `OMS_SEARCH_KEY`), never plaintext.
    """

    __tablename__ = "order_search_keys"
    __table_args__ = (Index("ix_order_search_keys_order", "order_id"),)

    kind: str = Field(primary_key=True, max_length=12)
    value: str = Field(primary_key=True, max_length=128)
    created_at: datetime = _ts(nullable=False, primary_key=True)
    order_id: str = Field(primary_key=True, max_length=64)
