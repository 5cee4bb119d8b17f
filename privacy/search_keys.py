"""The search index's keys of an order (issue 21), written beside the order's own writes.

What an order can be found by (`reads/search.py` reads them): its id and the platform's
order id, their prefixes of 4..10 characters, its SKUs, tracking numbers, platform and
province (its stem), shop and ship-by day (from a platform's sync), and the buyer's name and the phone's last four digits as keyed hashes
(HMAC-SHA256 under `OMS_SEARCH_KEY`, no default), never in plaintext. Here, below the order
store and the purge, so both can keep the index in step: the store at the order's record and
at each stage change, the purge by dropping the hashes with the buyer's data.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic import SecretStr
from sqlalchemy import delete, select, tuple_

from models.documents import ship_by_time
from models.settings import kept_secret
from models.tables import OrderSearchKey, Shipment

PREFIXES = range(4, 11)  # the order-id prefixes kept as keys (a longer prefix is checked on the row)
PII_KINDS = ("name", "phone4")
# How provinces are written beyond their stem (浙江省, 广西壮族自治区, 香港特别行政区).
_PROVINCE_SUFFIXES = ("维吾尔自治区", "壮族自治区", "回族自治区", "特别行政区", "自治区", "省", "市")


# -------------------------------------------------------------------- keys


def _digest(secret: bytes, kind: str, text: str) -> str:
    return hmac.new(secret, f"{kind}:{text}".encode(), hashlib.sha256).hexdigest()[:40]


def name_hash(secret: bytes, name: str) -> str | None:
    folded = "".join(unicodedata.normalize("NFKC", name).split()).casefold()
    return _digest(secret, "name", folded) if folded else None


def phone4_hash(secret: bytes, phone: str) -> str | None:
    digits = re.sub(r"\D", "", unicodedata.normalize("NFKC", phone))
    return _digest(secret, "phone4", digits[-4:]) if len(digits) >= 4 else None


def province_key(province: str) -> str:
    """The province's stem, as the filter compares it (浙江省 and 浙江 alike)."""
    folded = "".join(unicodedata.normalize("NFKC", province).split()).casefold()
    for suffix in _PROVINCE_SUFFIXES:
        if folded.endswith(suffix) and len(folded) - len(suffix) >= 2:
            return folded[: -len(suffix)]
    return folded


def ship_by_day(value: Any) -> str | None:
    """The day an order must ship by (`ship_by`, set by a platform's sync), as the platform
    wrote it (its own offset: +08:00 for the Chinese platforms): `YYYY-MM-DD`."""
    at = ship_by_time(value)
    return at.date().isoformat() if at is not None else None


def keys_for(order_id: str, document: dict[str, Any], trackings: Iterable[str],
             secret: bytes | None) -> set[tuple[str, str]]:
    """Every (kind, value) the order can be found by."""
    out: set[tuple[str, str]] = {("id", order_id)}
    out.update(("idp", order_id[:n]) for n in PREFIXES if len(order_id) > n)
    platform_id = document.get("platform_order_id")
    if isinstance(platform_id, str) and platform_id and platform_id != order_id:
        out.add(("id", platform_id[:128]))
        out.update(("idp", platform_id[:n]) for n in PREFIXES if len(platform_id) > n)
    if document.get("platform"):
        out.add(("platform", str(document["platform"])[:128]))
    if isinstance(document.get("shop"), str) and document["shop"]:  # a platform's shop (sync)
        out.add(("shop", document["shop"][:128]))
    day = ship_by_day(document.get("ship_by"))
    if day:
        out.add(("shipby", day))
    for line in document.get("lines") or []:
        if line.get("sku"):
            out.add(("sku", str(line["sku"])[:128]))
    for tracking in trackings:
        if tracking:
            out.add(("tracking", tracking[:128]))
    province = (document.get("address") or {}).get("province")
    if province:
        out.add(("province", province_key(province)[:128]))
    if secret:
        buyer = document.get("buyer") or {}
        if buyer.get("name"):
            value = name_hash(secret, str(buyer["name"]))
            if value:
                out.add(("name", value))
        if buyer.get("phone"):
            value = phone4_hash(secret, str(buyer["phone"]))
            if value:
                out.add(("phone4", value))
    return out


def index_order(session: Any, order_id: str, document: dict[str, Any], created_at: datetime,
                secret: bytes | None) -> None:
    """Bring the order's keys up to date (rows added and removed; none rewritten)."""
    trackings = session.execute(
        select(Shipment.tracking_no).where(Shipment.order_id == order_id,
                                           Shipment.tracking_no.is_not(None))  # type: ignore[union-attr]
    ).scalars().all()
    wanted = keys_for(order_id, document, trackings, secret)
    table = OrderSearchKey.__table__
    have = {(k, v) for k, v in session.execute(
        select(table.c.kind, table.c.value).where(table.c.order_id == order_id)).all()
        if secret or k not in PII_KINDS}  # without the key, the hashed keys are left alone
    stale = have - wanted
    if stale:
        session.execute(delete(table).where(
            table.c.order_id == order_id, tuple_(table.c.kind, table.c.value).in_(list(stale))))
    new = wanted - have
    if new:
        session.execute(table.insert(), [
            {"kind": k, "value": v, "created_at": created_at, "order_id": order_id} for k, v in new])


def secret_of(settings: Any) -> bytes | None:
    """The HMAC key from the settings (`OMS_SEARCH_KEY`), or None: no name / phone search."""
    value = getattr(settings, "search_key", None)
    return value.get_secret_value().encode() if value is not None else None


def forget_buyer(session: Any, order_id: str) -> None:
    """The buyer's hashed keys removed (the order's buyer data was purged)."""
    table = OrderSearchKey.__table__
    session.execute(delete(table).where(table.c.order_id == order_id, table.c.kind.in_(PII_KINDS)))


def reindex(factory: Any, secret: bytes | None, *, batch: int = 500) -> int:
    """Every order's keys brought up to date, in batches by order id (`oms search reindex`):
    after the migration, for orders kept before it, and after a new `OMS_SEARCH_KEY` (the
    old key's hashes are then replaced). Returns how many orders were read."""
    from models.db import transaction
    from models.tables import Order

    seen, after = 0, ""
    while True:
        with transaction(factory) as session:
            rows = session.execute(
                select(Order.order_id, Order.document, Order.created_at)
                .where(Order.order_id > after).order_by(Order.order_id).limit(batch)
            ).all()
            for order_id, document, created_at in rows:
                if secret:  # a new key: the hashes of the old one go
                    forget_buyer(session, order_id)
                index_order(session, order_id, dict(document or {}), created_at, secret)
        seen += len(rows)
        if len(rows) < batch:
            return seen
        after = rows[-1][0]


KEY_FILE = "search-key"


def with_dev_search_key(settings: Any) -> Any:
    """`--dev` and the demo: an `OMS_SEARCH_KEY` kept under OMS_HOME (made once) when none is set,
    so that a clerk finds orders by the buyer's name and phone there too. A deployment sets the same
    OMS_SEARCH_KEY on every worker and service instead (there is no default in code)."""
    if getattr(settings, "search_key", None) is not None:
        return settings
    value = kept_secret(settings.home / KEY_FILE)
    return settings.model_copy(update={"search_key": SecretStr(value)})
