"""The shipping desk's tables (migration 0005_shipping), on the same metadata as models.tables.

Reference data of the desk (carriers, item barcodes, warehouse senders) lives in its own
tables so that the catalog and warehouse tables stay as they are: `oms load catalog` and
`oms load warehouses` also fill `item_barcodes` and `warehouse_senders` from the same file.

A parcel is keyed by its parcel key (`parcel_id`, chosen from the shipment id, so a retried
activity finds the same parcel); the waybill numbers it was ever given are rows of
`waybills`, whose primary key is the number: a number belongs to one parcel, ever (§8.11).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlalchemy.types import DateTime
from sqlmodel import Field, SQLModel


def _ts(**kw: Any) -> Any:
    return Field(sa_column=Column(DateTime(timezone=True), **kw))


def _json(**kw: Any) -> Any:
    return Field(sa_column=Column(JSON, **kw))


class CarrierRow(SQLModel, table=True):
    """A carrier of the reference data (SPEC §5.2), as loaded by `oms load carriers`."""

    __tablename__ = "carriers"

    code: str = Field(primary_key=True, max_length=20)
    name: str = Field(max_length=100)
    rank: int = 0  # the position in the loaded file: a tie of cost goes to the earlier one
    cod: bool = False
    max_weight_g: int | None = None
    warehouses: list[str] | None = _json(nullable=True)
    excluded_provinces: list[str] = _json(nullable=False, default=list)
    rates: list[dict[str, Any]] = _json(nullable=False, default=list)
    waybill: dict[str, Any] = _json(nullable=False, default=dict)
    updated_at: datetime = _ts(nullable=False)


class ItemBarcodeRow(SQLModel, table=True):
    """The barcode printed on an item (catalog `barcode`), scanned at the packing desk."""

    __tablename__ = "item_barcodes"

    barcode: str = Field(primary_key=True, max_length=64)
    sku: str = Field(max_length=64, index=True)


class WarehouseSenderRow(SQLModel, table=True):
    """The sender a warehouse prints on its labels and gives the waybill service."""

    __tablename__ = "warehouse_senders"

    warehouse: str = Field(primary_key=True, max_length=32)
    sender: dict[str, Any] = _json(nullable=False, default=dict)


class PoolNumberRow(SQLModel, table=True):
    """One waybill number of a carrier's loaded range: free until a parcel takes it, once."""

    __tablename__ = "waybill_pool"
    __table_args__ = (Index("ix_waybill_pool_free", "carrier", "status", "seq"),)

    number: str = Field(primary_key=True, max_length=40)
    carrier: str = Field(max_length=20)
    seq: int
    status: str = Field(default="free", max_length=10)  # free | used | void
    parcel_id: str | None = Field(default=None, max_length=120)
    loaded_at: datetime = _ts(nullable=False)
    used_at: datetime | None = _ts(nullable=True)


class WaybillRow(SQLModel, table=True):
    """Every waybill number ever issued, to the one parcel it belongs to."""

    __tablename__ = "waybills"

    number: str = Field(primary_key=True, max_length=40)
    carrier: str = Field(max_length=20)
    kind: str = Field(max_length=10)  # cainiao | pool
    parcel_id: str = Field(max_length=120, index=True)
    status: str = Field(default="issued", max_length=12)  # issued | void | cancelled
    routing_code: str | None = Field(default=None, max_length=60)
    # Whom it was issued to (`parcels.receiver_key`, a hash): a changed address is seen.
    receiver_key: str | None = Field(default=None, max_length=40)
    issued_at: datetime = _ts(nullable=False)
    voided_at: datetime | None = _ts(nullable=True)
    void_reason: str | None = Field(default=None, max_length=200)


class ParcelRow(SQLModel, table=True):
    """One parcel: a carrier, a waybill, the orders and lines in it, and how far it got."""

    __tablename__ = "parcels"
    __table_args__ = (Index("ix_parcels_merge", "merge_key", "state"),)

    parcel_id: str = Field(primary_key=True, max_length=120)
    warehouse: str = Field(max_length=32)
    carrier: str | None = Field(default=None, max_length=20)
    carrier_reason: str | None = Field(default=None, max_length=300)
    waybill: str | None = Field(default=None, max_length=40, unique=True)
    routing_code: str | None = Field(default=None, max_length=60)
    state: str = Field(default="allocated", max_length=12)
    merge_key: str | None = Field(default=None, max_length=200)
    cod: bool = False
    weight_g: int | None = None
    expected_g: int = 0
    hold: str | None = Field(default=None, max_length=40)
    cost: str | None = Field(default=None, max_length=20)
    issue_no: int = 0  # how many waybills it had before this one (a relabel asks afresh)
    created_at: datetime = _ts(nullable=False)
    printed_at: datetime | None = _ts(nullable=True)
    verified_at: datetime | None = _ts(nullable=True)
    weighed_at: datetime | None = _ts(nullable=True)
    shipped_at: datetime | None = _ts(nullable=True)
    updated_at: datetime = _ts(nullable=False)


class ParcelOrderRow(SQLModel, table=True):
    """An order (one of its shipments) in a parcel; a merged parcel has several."""

    __tablename__ = "parcel_orders"

    parcel_id: str = Field(primary_key=True, max_length=120)
    order_id: str = Field(primary_key=True, max_length=64, index=True)
    shipment_id: str = Field(max_length=80, index=True)
    status: str = Field(default="in", max_length=10)  # in | left
    joined_at: datetime = _ts(nullable=False)


class ParcelLineRow(SQLModel, table=True):
    """A line of a parcel with what the packer has scanned of it so far."""

    __tablename__ = "parcel_lines"

    parcel_id: str = Field(primary_key=True, max_length=120)
    order_id: str = Field(primary_key=True, max_length=64)
    sku: str = Field(primary_key=True, max_length=64)
    name: str = Field(default="", max_length=200)
    qty: int
    scanned: int = 0
    weight_g: int = 0
