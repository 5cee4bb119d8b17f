"""Value types that cross the Temporal boundary and the pure rule functions.

Workflows and activities exchange these pydantic models (with the pydantic
data converter), never table objects. Pure functions (check rules, pricing,
allocation) take and return them too, so they are testable without I/O.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from models.enums import FindingClass, FindingCode


class Finding(BaseModel):
    """Something the check found. `cls` is serialised as ``class`` (SPEC §5.3)."""

    model_config = ConfigDict(populate_by_name=True)

    code: FindingCode
    field: str
    cls: FindingClass = Field(alias="class")
    message_en: str = ""
    message_zh: str = ""
    detail: dict[str, Any] = Field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        return {
            "code": str(self.code),
            "field": self.field,
            "class": str(self.cls),
            "message": self.message_en,
            "message_zh": self.message_zh,
        }


class CatalogEntry(BaseModel):
    sku: str
    name: str
    price: Decimal
    weight_g: int = 0
    attributes: dict[str, str] = Field(default_factory=dict)
    active: bool = True
    usual_qty: int | None = None


class FraudContext(BaseModel):
    """What the database knows about this buyer's recent orders (looked up by the activity)."""

    orders_same_phone: int = 0
    orders_same_address: int = 0


class Totals(BaseModel):
    """Money recomputed from the catalog and the rules (all `Decimal`, to the cent)."""

    subtotal: Decimal
    discount: Decimal
    shipping_fee: Decimal
    total: Decimal
    applied: list[str] = Field(default_factory=list)


# ------------------------------------------------------------------ allocation


class LineNeed(BaseModel):
    line_no: int
    sku: str
    qty: int


class StockAvailability(BaseModel):
    sku: str
    warehouse: str
    available: int


class WarehouseInfo(BaseModel):
    code: str
    province: str
    priority: int = 100


class PlannedLine(BaseModel):
    line_no: int
    sku: str
    qty: int


class PlannedShipment(BaseModel):
    warehouse: str
    lines: list[PlannedLine]


class Shortfall(BaseModel):
    line_no: int
    sku: str
    qty: int
    # Warehouse the shortfall would be served from (restock / backorder queue).
    warehouse: str


class AllocationPlan(BaseModel):
    """What can be reserved now, and what is missing.

    `complete` is True when `shipments` cover every line in full.
    """

    shipments: list[PlannedShipment] = Field(default_factory=list)
    shortfalls: list[Shortfall] = Field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.shortfalls


class TimelineEvent(BaseModel):
    seq: int
    at: datetime
    type: str
    data: dict[str, Any] = Field(default_factory=dict)
