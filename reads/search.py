"""Finding orders (issue 21): by order id (exact or prefix), the buyer's name, the last four
digits of the buyer's phone, a tracking number, a SKU; filtered by platform, province, flag,
stage and what the order waits for. Keyset-paged like the list, oldest first.

Every key is a row of `order_search_keys` (kind, value, created_at, order_id), whose primary
key is the index each search reads: one key is one index range already in the list's order,
so a page costs the same at any number of orders. A search for several kinds at once (what
`q` may mean) reads one page of each range and merges them. Filters are further keys checked
by their primary key (EXISTS), or columns of the order's row.

The buyer's name and the phone's last four digits are stored only as keyed hashes (HMAC-
SHA256 under `OMS_SEARCH_KEY`, which has no default): without the key they are not indexed
and cannot be searched. The index is written by the order's own writes
(`activities.orders`: when the order is recorded, and at each stage change, which follows any
correction of the buyer's details and any shipment), and cleared of the hashes when the
order's buyer data is purged.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, and_, delete, exists, literal, select, tuple_

from models.tables import Order, OrderFlag, OrderSearchKey, Shipment

PREFIXES = range(4, 11)  # the order-id prefixes kept as keys (a longer prefix is checked on the row)
PII_KINDS = ("name", "phone4")


@dataclass(frozen=True)
class Filters:
    platform: str | None = None
    province: str | None = None
    flag: str | None = None
    stage: str | None = None
    waiting_for: str | None = None


class SearchRefused(ValueError):
    """A search this caller may not make (by name or phone without the key or the right)."""


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
    from activities.addresses import key, stem

    return stem(key(province))


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


# ----------------------------------------------------------------- reading


def meanings(q: str, secret: bytes | None, *, pii: bool) -> list[tuple[str, str, str | None]]:
    """What `q` may mean: (kind, value, the order-id prefix the row must start with)."""
    q = unicodedata.normalize("NFKC", q).strip()
    out: list[tuple[str, str, str | None]] = [("id", q, None), ("sku", q, None), ("tracking", q, None)]
    if len(q) >= PREFIXES.start:
        out.append(("idp", q[: PREFIXES.stop - 1], q if len(q) >= PREFIXES.stop else None))
    if pii and secret:
        if re.fullmatch(r"\d{4}", q):
            out.append(("phone4", phone4_hash(secret, q) or "", None))
        elif not q.isascii() or q.replace(" ", "").isalpha():
            out.append(("name", name_hash(secret, q) or "", None))
    return out


def looks_like_buyer(q: str) -> bool:
    """A query that can only be a name or a phone's last four digits (refused to platforms)."""
    q = unicodedata.normalize("NFKC", q).strip()
    return bool(re.fullmatch(r"\d{4}", q)) or bool(re.fullmatch(r"[\u4e00-\u9fff·]{2,6}", q))


def _page(session: Any, columns: list[Any], kind: str, value: str, prefix: str | None,
          filters: Filters, after: tuple[datetime, str] | None, limit: int) -> list[Any]:
    key = OrderSearchKey.__table__
    stmt = (select(*columns).select_from(key).join(Order, Order.order_id == key.c.order_id)
            .where(key.c.kind == kind, key.c.value == value))
    stmt = _filtered(stmt, key, filters)
    if prefix:
        stmt = stmt.where(Order.order_id.startswith(prefix, autoescape=True))  # type: ignore[attr-defined]
    if after is not None:
        stmt = stmt.where(tuple_(key.c.created_at, key.c.order_id)
                          > tuple_(literal(after[0], DateTime(timezone=True)), after[1]))
    return session.execute(stmt.order_by(key.c.created_at, key.c.order_id).limit(limit + 1)).all()


def _filtered(stmt: Any, key: Any, filters: Filters) -> Any:
    other = OrderSearchKey.__table__.alias("f")
    for kind, value in (("platform", filters.platform),
                        ("province", province_key(filters.province) if filters.province else None)):
        if value:
            stmt = stmt.where(exists().where(and_(
                other.c.kind == kind, other.c.value == value,
                other.c.created_at == key.c.created_at, other.c.order_id == key.c.order_id)))
    if filters.flag:
        flags = OrderFlag.__table__
        stmt = stmt.where(exists().where(and_(
            flags.c.order_id == key.c.order_id, flags.c.flag == filters.flag)))
    if filters.stage:
        stmt = stmt.where(Order.stage == filters.stage)
    if filters.waiting_for:
        stmt = stmt.where(Order.waiting_for == filters.waiting_for)
    return stmt


def search_orders(session: Any, *, q: str | None, filters: Filters, limit: int = 100,
                  cursor: str | None = None, secret: bytes | None = None, pii: bool = True,
                  findings: bool = False) -> tuple[list[dict[str, Any]], str | None]:
    """One keyset page of the orders `q` finds, with the filters; the next page's cursor."""
    from activities.queries import _LIST_COLUMNS, _iso, decode_cursor, encode_cursor

    after = decode_cursor(cursor) if cursor else None
    columns: list[Any] = [*_LIST_COLUMNS, OrderSearchKey.__table__.c.created_at.label("key_at")]
    if findings:
        columns.append(Order.findings)
    if q and q.strip():
        ranges = meanings(q, secret, pii=pii)
    elif filters.platform:
        ranges = [("platform", filters.platform, None)]
    elif filters.province:
        ranges = [("province", province_key(filters.province), None)]
    else:
        raise ValueError("a search needs q, platform or province")
    rows: dict[str, Any] = {}
    for kind, value, prefix in ranges:
        if value:
            for row in _page(session, columns, kind, value, prefix, filters, after, limit):
                rows.setdefault(row.order_id, row)
    ordered = sorted(rows.values(), key=lambda r: (r.key_at, r.order_id))
    more = len(ordered) > limit
    ordered = ordered[:limit]
    items = []
    for row in ordered:
        item = {"order_id": row.order_id, "stage": row.stage, "waiting_for": row.waiting_for,
                "flags": list(row.flags or []), "created_at": _iso(row.created_at),
                "stage_since": _iso(row.stage_since)}
        if findings:
            item["findings"] = list(row.findings or [])
        items.append(item)
    next_cursor = encode_cursor(ordered[-1].key_at, ordered[-1].order_id) if more and ordered else None
    return items, next_cursor
