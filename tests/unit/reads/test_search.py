"""Search (issue 21) on SQLite and PostgreSQL: every key finds its orders, filters narrow them,
pages are keyset pages, and each search reads an index range in the list's order (the query
plans), so its cost does not grow with the orders kept. Names and phones are never stored in
plaintext in the index, and without the key they are neither indexed nor found."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from activities.orders import OrderActivities
from models.db import SessionFactory, transaction
from models.documents import OrderDocument
from models.tables import Order, OrderSearchKey, Shipment
from reads.search import Filters, index_order, search_orders
from tests.harness.documents import make_order

SECRET = b"test-search-key-" + b"k" * 16
SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
ORDERS = [  # order id, buyer, phone, platform, province/city/district, sku
    ("TB2026-0001", "李雷", "13800001234", "taobao", ("浙江省", "杭州市", "西湖区"), "TSHIRT-RED-M"),
    ("TB2026-0002", "韩梅梅", "13900005678", "jd", ("上海市", "上海市", "浦东新区"), "MUG-WHITE"),
    ("JD-777", "李雷", "13700009999", "pdd", ("广东省", "广州市", "天河区"), "TSHIRT-RED-M"),
    ("TB2025-0003", "王芳", "+86 135-0000-4321", "taobao", ("浙江省", "宁波市", "鄞州区"), "MUG-WHITE"),
]


def seed(factory: SessionFactory, secret: bytes | None = SECRET) -> None:
    with transaction(factory) as session:
        for i, (order_id, name, phone, platform, (prov, city, dist), sku) in enumerate(ORDERS):
            doc = make_order(order_id, [(sku, 1)], phone=phone)
            doc = doc.model_copy(update={
                "platform": platform, "created_at": T0 + timedelta(minutes=i),
                "buyer": doc.buyer.model_copy(update={"name": name}),
                "address": doc.address.model_copy(update={"province": prov, "city": city,
                                                          "district": dist})})
            if platform == "taobao":  # as a platform's sync sends it: its shop and ship-by time
                doc = OrderDocument.model_validate({
                    **doc.model_dump(mode="json"), "shop": f"tb-shop-{i % 2}",
                    "ship_by": (T0 + timedelta(days=1 + i)).astimezone(SHANGHAI).isoformat()})
            OrderActivities._record(session, doc, T0 + timedelta(minutes=i), search_key=secret)
        session.add(Shipment(id="TB2026-0002-1", order_id="TB2026-0002", shipment_no=1,
                             warehouse="SH", status="shipped", carrier="SF",
                             tracking_no="SF1234567890", released_at=T0))
        session.flush()
        row = session.execute(sa.text("SELECT document, created_at FROM orders "
                                      "WHERE order_id = 'TB2026-0002'")).one()
        document = row[0] if isinstance(row[0], dict) else __import__("json").loads(row[0])
        created = row[1] if isinstance(row[1], datetime) else datetime.fromisoformat(row[1])
        index_order(session, "TB2026-0002", document, created, secret)


def found(factory: SessionFactory, q: str | None, secret: bytes | None = SECRET,
          **filters: Any) -> list[str]:
    with transaction(factory) as session:
        orders, _ = search_orders(session, q=q, filters=Filters(**filters), secret=secret)
    return [o["order_id"] for o in orders]


def test_each_key_finds_its_orders_and_filters_narrow_them(factory: SessionFactory) -> None:
    seed(factory)
    assert found(factory, "TB2026-0001") == ["TB2026-0001"]  # the order id, exact
    assert found(factory, "TB2026") == ["TB2026-0001", "TB2026-0002"]  # a prefix
    assert found(factory, "tb2026") == []  # ids are exact about case
    assert found(factory, "1234") == ["TB2026-0001"]  # the phone's last four digits
    assert found(factory, "4321") == ["TB2025-0003"]  # written with +86 and dashes
    assert found(factory, "李雷") == ["TB2026-0001", "JD-777"]  # the buyer's name
    assert found(factory, " 李 雷 ") == ["TB2026-0001", "JD-777"]
    assert found(factory, "SF1234567890") == ["TB2026-0002"]  # a tracking number
    assert found(factory, "MUG-WHITE") == ["TB2026-0002", "TB2025-0003"]  # a SKU
    assert found(factory, "李雷", platform="pdd") == ["JD-777"]
    assert found(factory, "MUG-WHITE", province="浙江") == ["TB2025-0003"]
    assert found(factory, None, province="上海市") == ["TB2026-0002"]
    assert found(factory, None, platform="taobao") == ["TB2026-0001", "TB2025-0003"]
    assert found(factory, "TB2026", stage="awaiting_buyer") == []
    assert found(factory, "TB2026", stage="received") == ["TB2026-0001", "TB2026-0002"]
    assert found(factory, "nothing-like-it") == []
    # a platform's shop and ship-by day (TB2026-0001 is shop 0, due 12-02; TB2025-0003 shop 1, 12-05)
    assert found(factory, None, shop="tb-shop-0") == ["TB2026-0001"]
    assert found(factory, None, ship_by="2026-12-05") == ["TB2025-0003"]
    assert found(factory, "MUG-WHITE", shop="tb-shop-1") == ["TB2025-0003"]
    assert found(factory, None, platform="taobao", ship_by="2026-12-02") == ["TB2026-0001"]


def test_pages_are_keyset_pages(factory: SessionFactory) -> None:
    seed(factory)
    with transaction(factory) as session:
        first, cursor = search_orders(session, q="李雷", filters=Filters(), secret=SECRET, limit=1)
        assert [o["order_id"] for o in first] == ["TB2026-0001"] and cursor
        second, end = search_orders(session, q="李雷", filters=Filters(), secret=SECRET,
                                    limit=1, cursor=cursor)
        assert [o["order_id"] for o in second] == ["JD-777"] and end is None


def test_names_and_phones_are_keyed_hashes_and_need_the_key(factory: SessionFactory) -> None:
    seed(factory)
    with transaction(factory) as session:
        rows = session.execute(sa.select(OrderSearchKey.kind, OrderSearchKey.value)).all()
    hashed = [v for k, v in rows if k in ("name", "phone4")]
    assert len(hashed) == 2 * len(ORDERS) and len(set(hashed)) == 2 * len(ORDERS) - 1  # 李雷 twice
    assert all(re.fullmatch(r"[0-9a-f]{40}", v) for v in hashed)
    for _order, name, phone, *_ in ORDERS:
        digits = re.sub(r"\D", "", phone)
        assert not any(name in v or digits[-8:] in v for _k, v in rows)
    assert found(factory, "李雷", secret=None) == []  # no key: no name search
    assert found(factory, "李雷", secret=b"another-key-" + b"x" * 20) == []


def test_without_the_key_no_name_or_phone_is_indexed(factory: SessionFactory) -> None:
    seed(factory, secret=None)
    with transaction(factory) as session:
        kinds = set(session.execute(sa.select(OrderSearchKey.kind)).scalars())
    assert "name" not in kinds and "phone4" not in kinds
    assert {"id", "idp", "sku", "tracking", "platform", "province"} <= kinds
    assert found(factory, "1234") == []


def test_every_search_reads_an_index_range_in_keyset_order(factory: SessionFactory, db_url: str) -> None:
    """The plan of each key's query: the index of order_search_keys, no scan of it or of the
    orders, and no sort (SQLite); on PostgreSQL an index scan of it (sequential scans off, as
    at 100,000 orders the planner would choose the index by itself)."""
    seed(factory)
    with transaction(factory) as session:
        engine = session.get_bind()
    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "order_search_keys" in statement and statement.lstrip().upper().startswith("SELECT"):
            captured.append((statement, parameters))

    cases = {"order id": ("TB2026-0001", {}), "prefix": ("TB2026-00", {}), "phone": ("1234", {}),
             "name": ("李雷", {}), "tracking": ("SF1234567890", {}), "sku": ("MUG-WHITE", {}),
             "filters": ("李雷", {"platform": "pdd", "province": "广东", "flag": "unpaid"}),
             "province": (None, {"province": "浙江"}), "platform": (None, {"platform": "jd"}),
             "shop": (None, {"shop": "tb-shop-0"}),
             "ship-by": (None, {"ship_by": "2026-12-02", "platform": "taobao"})}
    postgres = db_url.startswith("postgresql")
    for label, (q, filters) in cases.items():
        captured.clear()
        sa.event.listen(engine, "before_cursor_execute", capture)
        with transaction(factory) as session:
            search_orders(session, q=q, filters=Filters(**filters), secret=SECRET, limit=50,
                          cursor="WyIyMDI2LTEyLTAxVDAxOjAwOjAwKzAwOjAwIiwiQSJd")
        sa.event.remove(engine, "before_cursor_execute", capture)
        assert captured, label
        with engine.connect() as conn:
            for statement, parameters in captured:
                if postgres:
                    conn.exec_driver_sql("SET enable_seqscan = off")
                    plan = " | ".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, parameters))
                    assert "order_search_keys_pkey" in plan, (label, plan)
                    assert "Seq Scan on order_search_keys" not in plan, (label, plan)
                    assert "Seq Scan on orders" not in plan, (label, plan)
                else:
                    plan = " | ".join(str(r[-1]) for r in conn.exec_driver_sql(
                        "EXPLAIN QUERY PLAN " + statement, parameters))
                    assert "order_search_keys USING" in plan and "PRIMARY KEY" in plan.upper() \
                        or "sqlite_autoindex_order_search_keys" in plan, (label, plan)
                    assert "SCAN order_search_keys" not in plan, (label, plan)
                    assert "SCAN orders" not in plan and "TEMP B-TREE" not in plan, (label, plan)


def test_purging_the_buyers_data_drops_their_hashes_from_the_index(factory: SessionFactory) -> None:
    from privacy.purge import purge_pii

    seed(factory)
    with transaction(factory) as session:
        session.execute(sa.update(Order).where(Order.order_id == "JD-777")
                        .values(stage="completed", stage_since=T0))
    result = purge_pii(factory, timedelta(days=1), now=T0 + timedelta(days=30))
    assert result.orders == ["JD-777"]
    assert found(factory, "李雷") == ["TB2026-0001"]  # the purged order is no longer found by name
    assert found(factory, "9999") == []
    assert found(factory, "JD-777") == ["JD-777"]  # by its id it still is
