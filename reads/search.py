"""Finding orders (issue 21): by order id (exact or prefix), the buyer's name, the last four
digits of the buyer's phone, a tracking number, a SKU; filtered by platform, shop, province,
ship-by day, flag, stage and what the order waits for. Keyset-paged like the list, oldest first.

Every key is a row of `order_search_keys` (kind, value, created_at, order_id), whose primary
key is the index each search reads: one key is one index range already in the list's order,
so a page costs the same at any number of orders. A search for several kinds at once (what
`q` may mean) reads one page of each range and merges them. Filters are further keys checked
by their primary key (EXISTS), or columns of the order's row.

The buyer's name and the phone's last four digits are stored only as keyed hashes (HMAC-
SHA256 under `OMS_SEARCH_KEY`, which has no default): without the key they are not indexed
and cannot be searched. The index is written by the order's own writes
(`activities.orders` and `orders.store`: when the order is recorded, and at each stage change, which follows any
correction of the buyer's details and any shipment), and cleared of the hashes when the
order's buyer data is purged.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, and_, exists, literal, select, tuple_

from models.tables import Order, OrderFlag, OrderSearchKey
from privacy.search_keys import (  # noqa: F401  (the writer's names, re-exported)
    PII_KINDS,
    PREFIXES,
    forget_buyer,
    index_order,
    keys_for,
    name_hash,
    phone4_hash,
    province_key,
    secret_of,
)


@dataclass(frozen=True)
class Filters:
    platform: str | None = None
    province: str | None = None
    shop: str | None = None
    ship_by: str | None = None  # YYYY-MM-DD: the orders that must ship by that day
    flag: str | None = None
    stage: str | None = None
    waiting_for: str | None = None


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
    for kind, value in (("platform", filters.platform), ("shop", filters.shop),
                        ("shipby", filters.ship_by),
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
    from reads.queries import _LIST_COLUMNS, decode_cursor, encode_cursor, list_item

    after = decode_cursor(cursor) if cursor else None
    columns: list[Any] = [*_LIST_COLUMNS, OrderSearchKey.__table__.c.created_at.label("key_at")]
    if findings:
        columns.append(Order.findings)
    if q and q.strip():
        ranges = meanings(q, secret, pii=pii)
    elif filters.ship_by:  # the most selective first: a day's orders, a shop's, ...
        ranges = [("shipby", filters.ship_by, None)]
    elif filters.shop:
        ranges = [("shop", filters.shop, None)]
    elif filters.platform:
        ranges = [("platform", filters.platform, None)]
    elif filters.province:
        ranges = [("province", province_key(filters.province), None)]
    else:
        raise ValueError("a search needs q, platform, shop, province or ship_by")
    rows: dict[str, Any] = {}
    for kind, value, prefix in ranges:
        if value:
            for row in _page(session, columns, kind, value, prefix, filters, after, limit):
                rows.setdefault(row.order_id, row)
    ordered = sorted(rows.values(), key=lambda r: (r.key_at, r.order_id))
    more = len(ordered) > limit
    ordered = ordered[:limit]
    items = [list_item(row, findings) for row in ordered]
    next_cursor = encode_cursor(ordered[-1].key_at, ordered[-1].order_id) if more and ordered else None
    return items, next_cursor
