"""The order document (SPEC §5.1) and the reference data (§5.2).

These pydantic models are the *shape* check at submit: a malformed document is
rejected with one message per bad field and no workflow starts. Whether the
content makes sense (a real phone, a district inside its city, a known SKU) is
the `check` stage's business and yields findings, never a rejection here.
Unknown fields are kept (``extra="allow"``) but ignored.

`check_document` is the whole intake check that the CLI's `submit` and the HTTP intake
share: the shape, and on top the limits no model constraint states (nesting depth, the size
of the document and of each unknown field, valid Unicode everywhere, a plausible
`created_at`). Those limits live here rather than in the models on purpose: a model also
decodes the input of orders already running, and a rule tightened there would make an
older order's input fail to decode.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
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


# The receiver's fields a buyer's answer or the platform can correct: the name a confirmation
# or `platform_address` gives each, and where it sits in the document.
RECEIVER_FIELDS: dict[str, tuple[str, str]] = {
    "phone": ("buyer", "phone"), "name": ("buyer", "name"),
    "province": ("address", "province"), "city": ("address", "city"),
    "district": ("address", "district"), "detail": ("address", "detail"),
    "postal_code": ("address", "postal_code"),
}


def ship_by_time(raw: Any) -> datetime | None:
    """A document's `ship_by` (set by a platform's sync: an ISO time with its offset) as an
    aware time in the platform's own offset; None without one, or one that is unreadable or
    has no offset. The one reading of it: the queue's column, the search's day, the timers."""
    if not isinstance(raw, str):
        return None
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


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
        return None, [f"(document): {_not_an_object(raw)}"]
    try:
        return OrderDocument.model_validate(raw), []
    except ValidationError as exc:
        return None, validation_messages(exc)


# ---------------------------------------------------------------- limits on intake
# (stated in the README, "Limits on intake")

MAX_DEPTH = 32  # levels of objects and arrays, the document's own braces counting as one
MAX_DOCUMENT_CHARS = 256 * 1024  # the document as compact JSON; Temporal refuses inputs over 2 MB
MAX_UNKNOWN_CHARS = 16 * 1024  # one unknown field as compact JSON
MAX_STRING_CHARS = 4000  # any one string or key, where the field has no tighter limit
EARLIEST_CREATED_AT = datetime(2000, 1, 1, tzinfo=UTC)
CREATED_AT_AHEAD = timedelta(days=1)  # how far in the future created_at may lie (clock skew)
TOO_DEEP = f"nested more than {MAX_DEPTH} levels deep"


class TooDeep:
    """Where a reader cut off a value nested deeper than MAX_DEPTH (never parsed)."""

    def __repr__(self) -> str:
        return "TooDeep()"


@dataclass
class Checked:
    """One document through intake: the document, or one error per bad field.

    `label` names the document in answers: its order_id when it is printable text.
    """

    document: OrderDocument | None
    errors: list[tuple[str, str]] = field(default_factory=list)
    label: str | None = None

    def messages(self) -> list[str]:
        return [f"{path}: {message}" for path, message in self.errors]


# The models of each level of a document, to tell known fields from unknown ones.
_MODELS: dict[str, type[BaseModel]] = {
    "buyer": Buyer,
    "address": Address,
    "payment": Payment,
}


def check_document(raw: Any, *, now: datetime | None = None) -> Checked:
    """The intake check of one raw document (a parsed JSON value, `TooDeep` where cut off).

    Never raises: everything wrong is an error naming its field by its JSON path.
    """
    label = _label(raw)
    if isinstance(raw, TooDeep) or (not isinstance(raw, dict) and _depth_problem(raw)):
        return Checked(None, [("(document)", TOO_DEEP)], label)
    if not isinstance(raw, dict):
        return Checked(None, [("(document)", _not_an_object(raw))])
    errors: list[tuple[str, str]] = []
    _scan(raw, (), 1, errors)
    named = [path for path, _ in errors]
    errors.extend(e for e in _unknown_field_sizes(raw)
                  if not any(p == e[0] or p.startswith(e[0] + ".") for p in named))
    # pydantic's word on a field already named (under the first three levels of its path) adds nothing
    bad = {".".join(path.split(".")[:3]) for path, _ in errors}
    doc, messages = parse_order(raw)
    for message in messages:
        path, _, text = message.partition(": ")
        if not any(path == b or path.startswith(b + ".") or b.startswith(path + ".") for b in bad):
            errors.append((path, text))
    if doc is not None and not errors:
        window = created_at_problem(doc.created_at, now=now or datetime.now(UTC))
        if window:
            errors.append(("created_at", window))
        elif len(doc.model_dump_json()) > MAX_DOCUMENT_CHARS:
            errors.append(("(document)", f"larger than {MAX_DOCUMENT_CHARS // 1024} kB as JSON"))
    if errors:
        return Checked(None, [(_shown(path, 200), _shown(text, 500)) for path, text in errors], label)
    assert doc is not None
    return Checked(doc, [], doc.order_id)


def created_at_problem(value: datetime | None, *, now: datetime) -> str | None:
    """Why `created_at` is implausible (before 2000, or more than a day ahead), or None."""
    if value is None:
        return None
    latest = now + CREATED_AT_AHEAD
    try:
        utc = value.astimezone(UTC)
    except (OverflowError, ValueError):
        utc = None
    if utc is None or not EARLIEST_CREATED_AT <= utc <= latest:
        return (
            f"must lie between {EARLIEST_CREATED_AT:%Y-%m-%d} and a day from now "
            f"({latest:%Y-%m-%d}), not {value.isoformat()}"
        )
    return None


def stored_document_problems(order: OrderDocument, *, now: datetime) -> list[str]:
    """What makes an already-parsed document unprocessable, as field messages: an order that
    reached a step without this intake (started before these rules, or by hand in Temporal).

    Only what no step could get past (a created_at out of range, a document nested too deep
    to serialize); the size limits, newer than some running orders, are left out."""
    problems: list[str] = []
    window = created_at_problem(order.created_at, now=now)
    if window:
        problems.append(f"created_at: {window}")
    try:
        order.model_dump_json()
    except ValueError as exc:  # PydanticSerializationError: nested too deep for the serializer
        problems.append(f"(document): cannot be serialized ({exc})"[:300])
    return problems


def _label(raw: Any) -> str | None:
    value = raw.get("order_id") if isinstance(raw, dict) else None
    if not isinstance(value, str) or len(value) > 200:
        return None
    value = value.strip()
    if not value or any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp") for ch in value):
        return None
    return value


def _depth_problem(value: Any, depth: int = 1) -> bool:
    if isinstance(value, TooDeep) or depth > MAX_DEPTH:
        return True
    if isinstance(value, dict):
        return any(_depth_problem(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return any(_depth_problem(v, depth + 1) for v in value)
    return False


def _dotted(path: tuple[Any, ...]) -> str:
    """A JSON path as messages name fields; a deep one by its first levels (`x.a.a.a.a.…`)."""
    shown = [_shown(str(p), 40) for p in path[:5]] + (["…"] if len(path) > 5 else [])
    return ".".join(shown) or "(document)"


def _shown(text: str, limit: int) -> str:
    """Text safe to print and to encode: what is not printable escaped, cut at `limit`."""
    if len(text) > limit:
        text = text[:limit] + "…"
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in text)


_JSON_TYPES = {dict: "object", list: "array", str: "string", int: "number", float: "number",
               bool: "boolean", type(None): "null"}


def _not_an_object(raw: Any) -> str:
    return f"must be a JSON object, not {_JSON_TYPES.get(type(raw), type(raw).__name__)}"


def _scan(
    value: Any,
    path: tuple[Any, ...],
    depth: int,
    errors: list[tuple[str, str]],
) -> bool:
    """Depth, lone surrogates and overlong strings anywhere in `value`: each top-level field
    gets one error, the first met inside it. True when it found one."""
    if isinstance(value, TooDeep) or depth > MAX_DEPTH:
        errors.append((_dotted(path), TOO_DEEP))
        return True
    if isinstance(value, str):
        problem = _text_problem(value)
        if problem:
            errors.append((_dotted(path), problem))
        return problem is not None
    items: Any = ()
    if isinstance(value, dict):
        for key in value:
            problem = _text_problem(key)
            if problem:
                errors.append((_dotted((*path, key)), "its name " + problem))
                return True
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    hit = False
    for key, item in items:
        if _scan(item, (*path, key), depth + 1, errors):
            hit = True
            if path:  # below the top level, the first problem names the field
                return True
    return hit


_SURROGATE = re.compile("[\ud800-\udfff]")


def _text_problem(text: str) -> str | None:
    found = _SURROGATE.search(text)
    if found:
        return (
            f"contains a lone surrogate (U+{ord(found.group()):04X} at character "
            f"{found.start() + 1}), which is not valid Unicode"
        )
    if len(text) > MAX_STRING_CHARS:
        return f"is longer than {MAX_STRING_CHARS} characters ({len(text)})"
    return None


def _unknown_field_sizes(raw: dict[str, Any]) -> list[tuple[str, str]]:
    """Unknown fields (of the document, its buyer, address, payment and lines) over MAX_UNKNOWN_CHARS."""
    levels: list[tuple[tuple[Any, ...], Any, type[BaseModel]]] = [((), raw, OrderDocument)]
    for name, model in _MODELS.items():
        levels.append(((name,), raw.get(name), model))
    lines = raw.get("lines")
    if isinstance(lines, list):
        levels.extend((("lines", i), line, OrderLine) for i, line in enumerate(lines))
    errors = []
    for path, value, model in levels:
        if not isinstance(value, dict):
            continue
        for key, item in value.items():
            if key in model.model_fields:
                continue
            try:
                size = len(json.dumps(item, ensure_ascii=False, separators=(",", ":")))
            except (ValueError, TypeError, RecursionError):
                continue  # _scan names what makes it unserializable
            if size > MAX_UNKNOWN_CHARS:
                errors.append((
                    _dotted((*path, key)),
                    f"an unknown field larger than {MAX_UNKNOWN_CHARS // 1024} kB as JSON "
                    f"({size // 1024} kB): unknown fields are kept only up to that",
                ))
    return errors


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
