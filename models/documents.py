"""The order document (SPEC §5.1) and the reference data (§5.2).

These pydantic models are the *shape* check at submit: a malformed document is
rejected with one message per bad field and no workflow starts. Whether the
content makes sense (a real phone, a district inside its city, a known SKU) is
the `check` stage's business and yields findings, never a rejection here.
Unknown fields are kept (``extra="allow"``) but ignored.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    field_validator,
)

from models.enums import PaymentStatus, ShortagePolicy

ORDER_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


def _no_control_chars(value: str | None) -> str | None:
    if value is None:
        return value
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs") and ch not in "\u200d":
            raise ValueError(f"contains a control character (U+{ord(ch):04X})")
    return value


def _money(value: Decimal | None) -> Decimal | None:
    if value is None:
        return value
    if not value.is_finite():
        raise ValueError("must be a finite decimal amount")
    if value < 0:
        raise ValueError("must not be negative")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:
        raise ValueError("has more than 2 decimal places")
    if value >= Decimal("100000000"):
        raise ValueError("is implausibly large")
    return value


Text = Annotated[str, AfterValidator(_no_control_chars)]
Money = Annotated[Decimal, Field(allow_inf_nan=False), AfterValidator(_money)]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)


class Buyer(_Doc):
    name: Text | None = Field(default=None, max_length=100)
    phone: Text | None = Field(default=None, max_length=40)
    id: Text | None = Field(default=None, max_length=100)
    language: Text | None = Field(default=None, max_length=10)


class Address(_Doc):
    country: Text = Field(default="CN", max_length=2)
    province: Text | None = Field(default=None, max_length=50)
    city: Text | None = Field(default=None, max_length=50)
    district: Text | None = Field(default=None, max_length=50)
    detail: Text | None = Field(default=None, max_length=200)
    postal_code: Text | None = Field(default=None, max_length=20)


class OrderLine(_Doc):
    sku: Text = Field(min_length=1, max_length=64)
    qty: StrictInt = Field(gt=0, le=100000)
    unit_price: Money | None = None
    name: Text | None = Field(default=None, max_length=200)
    attributes: dict[str, Text] | None = None


class Payment(_Doc):
    status: PaymentStatus = PaymentStatus.PENDING
    method: Text | None = Field(default=None, max_length=40)
    amount: Money | None = None
    transaction_id: Text | None = Field(default=None, max_length=100)


class OrderDocument(_Doc):
    order_id: Annotated[str, Field(max_length=64)]
    platform: Text = Field(default="unknown", max_length=40)
    created_at: datetime | None = None
    buyer: Buyer = Field(default_factory=Buyer)
    address: Address = Field(default_factory=Address)
    lines: list[OrderLine] = Field(min_length=1, max_length=200)
    coupon_code: Text | None = Field(default=None, max_length=40)
    discount: Money | None = None
    shipping_fee: Money | None = None
    total: Money | None = None
    payment: Payment = Field(default_factory=Payment)
    remarks: Text | None = Field(default=None, max_length=500)
    shortage_policy: ShortagePolicy | None = None

    @field_validator("order_id")
    @classmethod
    def _order_id_shape(cls, value: str) -> str:
        if not ORDER_ID_RE.match(value):
            raise ValueError(
                "must be 1-64 characters of letters, digits, '_', '.' or '-', "
                "starting with a letter or digit"
            )
        return value

    @field_validator("created_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must carry a timezone offset, e.g. 2026-11-26T10:00:00+08:00")
        return value

    @property
    def workflow_id(self) -> str:
        return workflow_id_for(self.order_id)


def workflow_id_for(order_id: str) -> str:
    return f"order-{order_id}"


def validation_messages(error: ValidationError) -> list[str]:
    """One clear message per bad field, naming the field by its JSON path."""
    messages = []
    for item in error.errors():
        path = ".".join(str(p) for p in item["loc"]) or "(document)"
        msg = item["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if item["type"] == "too_long" and isinstance(item.get("input"), str):
            # Optional text fields get pydantic's generic "... items after validation" wording.
            msg = f"String should have at most {item['ctx']['max_length']} characters"
        messages.append(f"{path}: {msg}")
    return messages


def parse_order(raw: Any) -> tuple[OrderDocument | None, list[str]]:
    """Validate one raw order; return the document or the list of messages."""
    if not isinstance(raw, dict):
        return None, [f"(document): must be a JSON object, not {type(raw).__name__}"]
    try:
        return OrderDocument.model_validate(raw), []
    except ValidationError as exc:
        return None, validation_messages(exc)


# ---------------------------------------------------------------- reference data


class CatalogItem(_Doc):
    sku: Text = Field(min_length=1, max_length=64)
    name: Text = Field(min_length=1, max_length=200)
    price: Money
    weight_g: StrictInt = Field(ge=0, default=0)
    attributes: dict[str, Text] = Field(default_factory=dict)
    active: bool = True
    usual_qty: StrictInt | None = Field(default=None, gt=0)


class WarehouseItem(_Doc):
    code: Text = Field(min_length=1, max_length=32)
    name: Text = Field(min_length=1, max_length=100)
    province: Text = Field(min_length=1, max_length=50)
    priority: StrictInt = 100


class StockItem(_Doc):
    sku: Text = Field(min_length=1, max_length=64)
    warehouse: Text = Field(min_length=1, max_length=32)
    on_hand: StrictInt = Field(ge=0)
