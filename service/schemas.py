"""The HTTP API's request and response shapes (SPEC §5.6), as they appear in /openapi.json.

Action bodies use the API's field names (the CLI's options in snake_case); the workflow's
update validator is the judge of whether an action applies, these models only make sure
that each field has the right type and a sane size before anything is sent.
"""

from __future__ import annotations

import unicodedata
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt

from models.enums import Channel, ShortagePolicy
from workflows.order.actions import ORDER_ACTIONS, ActionSpec, api_fields


def _plain_text(value: str | None) -> str | None:
    """No control characters (newlines and tabs are fine in a note) and no lone surrogates."""
    if value is None:
        return value
    for ch in value:
        category = unicodedata.category(ch)
        if category == "Cs" or (category == "Cc" and ch not in "\n\r\t"):
            raise ValueError(f"contains a control character (U+{ord(ch):04X})")
    return value


def _text(max_length: int, min_length: int = 0) -> Any:
    return Annotated[
        str, Field(min_length=min_length, max_length=max_length), AfterValidator(_plain_text)
    ]


# The actions addressed to an order, as the API's path names them (from the registry).
OrderAction = StrEnum("OrderAction", {a.name.name: a.name.value for a in ORDER_ACTIONS})


class ActionBody(BaseModel):
    """Every field any action takes; each action uses its own (see the route's description)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    # confirm
    phone: _text(40) | None = None
    name: _text(100) | None = None
    province: _text(50) | None = None
    city: _text(50) | None = None
    district: _text(50) | None = None
    detail: _text(200) | None = None
    postal_code: _text(20) | None = None
    remarks: _text(500) | None = None
    delivery_window: _text(100) | None = None
    parcel_locker: StrictBool | None = None
    channel: Channel | None = None
    # pay
    amount: Annotated[Decimal, Field(gt=0, lt=Decimal("100000000"), allow_inf_nan=False,
                                     decimal_places=2)] | None = None
    txn: _text(100, 1) | None = None
    method: _text(40) | None = None
    # decide
    decision: ShortagePolicy | None = None
    # approve / resume / decide / confirm
    note: _text(500) | None = None
    # reject / cancel / pick-exception
    reason: _text(500, 1) | None = None
    # warehouse events
    shipment: Annotated[StrictInt, Field(gt=0, le=1000)] | None = None
    carrier: _text(20, 1) | None = None
    tracking: _text(60, 1) | None = None
    parcels: Annotated[StrictInt, Field(gt=0, le=1000)] | None = None
    weight_g: Annotated[StrictInt, Field(gt=0, le=10_000_000)] | None = None
    # pick-exception
    sku: _text(64, 1) | None = None
    qty: Annotated[StrictInt, Field(gt=0, le=100_000)] | None = None

    def for_action(self, spec: ActionSpec) -> tuple[dict[str, Any], list[dict[str, str]]]:
        """The fields given (JSON-ready), and an error for each that this action does not take."""
        given = self.model_dump(mode="json", exclude_none=True)
        takes = api_fields(spec)
        errors = [
            {"field": name, "message": f"{spec.name} does not take {name!r}; it takes "
             + ", ".join(sorted(takes))}
            for name in sorted(set(given) - takes)
        ]
        return given, errors


class ErrorBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    error: str = Field(description="one sentence that says what is wrong")


class FieldError(BaseModel):
    field: str
    message: str


class ValidationErrorBody(ErrorBody):
    field: str | None = None
    errors: list[FieldError] = Field(default_factory=list)


class IntakeResult(BaseModel):
    order_id: str | None
    result: str = Field(pattern="^(started|duplicate|rejected)$")
    errors: list[FieldError]


class IntakeResponse(BaseModel):
    results: list[IntakeResult]


class Finding(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    code: str
    field: str
    class_: str = Field(alias="class")


class Line(BaseModel):
    model_config = ConfigDict(extra="allow")
    sku: str
    qty: int
    reserved: int
    shipped: int
    backordered: int


class ShipmentOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    warehouse: str
    status: str
    carrier: str | None
    tracking_no: str | None


class RefundOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    amount: str | None
    status: str | None


class TimelineEvent(BaseModel):
    model_config = ConfigDict(extra="allow")
    at: str
    type: str


class OrderOut(BaseModel):
    """The object `status --json` prints."""

    model_config = ConfigDict(extra="allow")
    order_id: str
    stage: str
    waiting_for: str | None
    flags: list[str]
    findings: list[Finding]
    lines: list[Line]
    shipments: list[ShipmentOut]
    refund: RefundOut | None
    events: list[TimelineEvent]


class OrderItem(BaseModel):
    model_config = ConfigDict(extra="allow")
    order_id: str
    stage: str
    waiting_for: str | None
    flags: list[str]
    created_at: str | None
    ship_by: str | None = Field(None, description=(
        "the platform's ship-by time (UTC, ISO 8601); null for an order without one"))


class OrderPage(BaseModel):
    orders: list[OrderItem]
    next_cursor: str | None


class ActionAccepted(BaseModel):
    accepted: bool = Field(description="true")
    order: dict[str, Any] | None


class ActionRefused(BaseModel):
    accepted: bool = Field(description="false")
    reason: str | None


class RestockBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    sku: _text(64, 1)
    qty: Annotated[StrictInt, Field(gt=0, le=1_000_000)]
    warehouse: _text(32, 1) | None = None


class RestockResponse(BaseModel):
    served: list[str] = Field(description="the order ids that got stock, first come first served")
    handouts: list[dict[str, Any]] = Field(default_factory=list)


class StockRow(BaseModel):
    sku: str
    warehouse: str
    on_hand: int
    reserved: int
    available: int


class EventOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    order_id: str | None
    type: str
    status: str
    attempts: int
    created_at: str | None
    last_error: str | None
    payload: dict[str, Any]


class EventPage(BaseModel):
    events: list[EventOut]
    next_cursor: str | None


class Health(BaseModel):
    status: str
    temporal: str
    database: str


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@\-]{0,63}$")]
    role: Annotated[str, Field(pattern="^(platform|warehouse|clerk|admin)$")]


class KeyMade(BaseModel):
    name: str
    role: str
    key: str


class KeyOut(BaseModel):
    name: str
    role: str
    prefix: str
    created_at: str
    revoked_at: str | None


class Loaded(BaseModel):
    loaded: int


class CodecPayload(BaseModel):
    model_config = ConfigDict(extra="allow")
    metadata: dict[str, str] = Field(default_factory=dict)
    data: str = ""


class CodecBody(BaseModel):
    payloads: list[CodecPayload]
