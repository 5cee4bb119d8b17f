"""What every platform's mapping shares: exact money, times, and the result of one mapping.

A platform order becomes an order document (SPEC §5.1) plus what the sync
needs beside it: the platform's view of the order (`PlatformView`: paid,
closed, refunds per line, which receiver it ships to) to notice changes after
import, and what must be decrypted (`Sealed`) before the order is checked.
A mapping never raises: whatever is wrong with a trade becomes a `Problem`
naming its field, and a trade with problems is not imported (the rest of
its window goes on).

The document carries, beside §5.1's fields (unknown fields are kept): ``shop``,
``platform_order_id``, ``ship_by`` (ISO time), ``clerk_note`` (the seller's
memo and flag) and, per line, ``platform_line_id``. The receiver's name,
phone and street address stay empty until the platform's decryption fills
them (`with_receiver`): the intake check never sees a masked value or
ciphertext. The masked values travel as ``receiver_masked`` for display.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from models.errors import OmsError

CHINA = timezone(timedelta(hours=8), "Asia/Shanghai")
CENT = Decimal("0.01")
PLATFORM_TIME = "%Y-%m-%d %H:%M:%S"


class MappingProblem(OmsError, ValueError):
    """One field of a platform order that cannot be mapped."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


@dataclass(frozen=True)
class Problem:
    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


def yuan(value: Any, field_name: str, *, required: bool = True) -> Decimal | None:
    """Yuan as the platform sends it (a decimal string or a JSON number) -> exact Decimal.

    A JSON number arrives as a float; its shortest repr is the number the platform wrote
    (59.9 -> "59.9"), so no binary rounding leaks into the amount.
    """
    if value is None or value == "":
        if required:
            raise MappingProblem(field_name, "is missing")
        return None
    if isinstance(value, bool):
        raise MappingProblem(field_name, f"is not an amount: {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise MappingProblem(field_name, f"is not a finite amount: {value!r}")
        text = repr(value)
    elif isinstance(value, int | Decimal):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise MappingProblem(field_name, f"is not an amount: {type(value).__name__}")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise MappingProblem(field_name, f"is not an amount: {text[:40]!r}") from None
    if not amount.is_finite():
        raise MappingProblem(field_name, f"is not a finite amount: {text[:40]!r}")
    if amount < 0:
        raise MappingProblem(field_name, f"is negative: {text[:40]}")
    cents = amount.quantize(CENT, rounding=ROUND_HALF_UP)
    if cents != amount:
        raise MappingProblem(field_name, f"has more than 2 decimal places: {text[:40]}")
    return cents


def fen(value: Any, field_name: str, *, required: bool = True) -> Decimal | None:
    """Fen as an integer (some platform calls count in fen) -> exact yuan."""
    if value is None or value == "":
        if required:
            raise MappingProblem(field_name, "is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise MappingProblem(field_name, f"is not a whole number of fen: {value!r}")
    try:
        count = int(value)
    except ValueError:
        raise MappingProblem(field_name, f"is not a whole number of fen: {value!r}") from None
    if count < 0:
        raise MappingProblem(field_name, f"is negative: {count}")
    return (Decimal(count) / 100).quantize(CENT)


def money_text(amount: Decimal) -> str:
    return f"{amount:.2f}"


def china_time(value: Any, field_name: str, *, required: bool = True) -> datetime | None:
    """``yyyy-MM-dd HH:mm:ss`` in China time (or Unix seconds) -> an aware datetime."""
    if value is None or value == "":
        if required:
            raise MappingProblem(field_name, "is missing")
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC).astimezone(CHINA)
    if not isinstance(value, str):
        raise MappingProblem(field_name, f"is not a time: {value!r}")
    try:
        return datetime.strptime(value.strip(), PLATFORM_TIME).replace(tzinfo=CHINA)
    except ValueError:
        raise MappingProblem(
            field_name, f"is not a time like 2026-11-26 10:00:00: {value[:40]!r}"
        ) from None


def text(value: Any, limit: int) -> str | None:
    """Free text from the platform, trimmed to what the document allows (None when empty)."""
    if value is None:
        return None
    out = str(value).strip()
    return out[:limit] or None


@dataclass(frozen=True)
class PlatformView:
    """What the platform says about an order, compared across syncs to find changes.

    ``refunds`` maps each line's platform id to ``none``, ``requested``, ``refunded`` or
    ``closed`` (the buyer withdrew it); ``receiver`` identifies the address (an oaid, an
    open address id or the ciphertexts), so a changed address is a changed value.
    """

    status: str
    paid: bool
    closed: bool
    shipped: bool
    refunds: dict[str, str]
    receiver: str
    modified: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "paid": self.paid,
            "closed": self.closed,
            "shipped": self.shipped,
            "refunds": dict(self.refunds),
            "receiver": self.receiver,
            "modified": self.modified,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlatformView:
        return cls(
            status=str(data["status"]),
            paid=bool(data["paid"]),
            closed=bool(data["closed"]),
            shipped=bool(data["shipped"]),
            refunds={str(k): str(v) for k, v in dict(data["refunds"]).items()},
            receiver=str(data["receiver"]),
            modified=str(data["modified"]),
        )


@dataclass(frozen=True)
class Sealed:
    """What the platform's decryption call needs for one order's receiver.

    Taobao: ``oaid`` (and the tid). Pinduoduo: ``ciphertexts``, part -> ``~...~``.
    """

    platform_order_id: str
    oaid: str | None = None
    ciphertexts: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Receiver:
    """A decrypted receiver: the parts the order document needs."""

    name: str
    phone: str
    detail: str
    province: str | None = None
    city: str | None = None
    district: str | None = None


@dataclass
class Mapped:
    """One platform order mapped: the document (None when it has problems) and the rest."""

    order_id: str
    platform: str
    platform_order_id: str
    document: dict[str, Any] | None
    problems: list[Problem]
    view: PlatformView | None = None
    sealed: Sealed | None = None

    @property
    def importable(self) -> bool:
        """Whether the OMS should take this order in: open, not shipped, not refunded."""
        if self.document is None or self.view is None:
            return False
        v = self.view
        refunded_all = bool(v.refunds) and all(s == "refunded" for s in v.refunds.values())
        return not v.closed and not v.shipped and not refunded_all


def with_receiver(document: dict[str, Any], receiver: Receiver) -> dict[str, Any]:
    """The document with the decrypted receiver filled in (a new dict)."""
    out = dict(document)
    buyer = dict(out.get("buyer") or {})
    address = dict(out.get("address") or {})
    buyer["name"] = receiver.name
    buyer["phone"] = receiver.phone
    address["detail"] = receiver.detail
    for part in ("province", "city", "district"):
        value = getattr(receiver, part)
        if value:
            address[part] = value
    out["buyer"], out["address"] = buyer, address
    return out


def fingerprint(value: str) -> str:
    """A receiver's identity without its content (ciphertexts are never stored or shown)."""
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def problem_from(exc: Exception, default_field: str = "(trade)") -> Problem:
    if isinstance(exc, MappingProblem):
        return Problem(exc.field, exc.message)
    return Problem(default_field, f"cannot be read: {type(exc).__name__}: {str(exc)[:200]}")
