"""The desk's activity inputs and results (one each; they cross the Temporal boundary)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PrepareParcelInput(BaseModel):
    order_id: str
    shipment_id: str
    merge: bool = True  # the order's policy: merge.enabled
    merge_window_s: float = 1800.0  # ... and merge.window


class PrepareParcelResult(BaseModel):
    parcel_id: str
    carrier: str | None = None
    waybill: str | None = None
    hold: str | None = None  # no_carrier | waybill_pool_empty: the parcel waits for a clerk
    reason: str = ""
    flags: list[str] = Field(default_factory=list)


class VoidParcelsInput(BaseModel):
    order_id: str
    reason: str


class VoidParcelsResult(BaseModel):
    voided: list[str] = Field(default_factory=list)  # the waybill numbers given back
    cancelled: list[str] = Field(default_factory=list)  # ... of them cancelled at Cainiao


class ReaddressInput(BaseModel):
    order_id: str


class ReaddressedParcel(PrepareParcelResult):
    old_waybill: str | None = None  # the number the order's label had (void now, or kept)


class ReaddressResult(BaseModel):
    parcels: list[ReaddressedParcel] = Field(default_factory=list)


class ParcelReady(BaseModel):
    """Signal `parcel_ready` (from the desk, never typed by a clerk): a parcel that waited
    (`no_carrier`, `waybill_pool_empty`) has its carrier and waybill now."""

    model_config = ConfigDict(extra="forbid")
    parcel_id: str = Field(min_length=1, max_length=120)
    carrier: str = Field(min_length=1, max_length=20)
    waybill: str = Field(min_length=1, max_length=40)
