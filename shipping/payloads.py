"""The desk's activity inputs and results (one each; they cross the Temporal boundary)."""

from __future__ import annotations

from pydantic import BaseModel, Field


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
