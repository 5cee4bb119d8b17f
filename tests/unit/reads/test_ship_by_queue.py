"""The queue by ship-by deadline (issue 19, SPEC §3.9) on SQLite and PostgreSQL: the orders
still to ship by a platform's deadline come first, soonest (so the late ones) first, then
every other order oldest first; keyset pages visit each order once in that order; each page
reads index ranges (SQLite's plans), so its cost does not grow with the orders kept. And the
time left as the console says it, relative to a fixed `now`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from benchmarks.seed import seed_order
from models.db import SessionFactory, make_engine, migrate, session_factory, transaction
from models.documents import OrderDocument
from models.tables import Order
from reads import localtime
from reads.queries import BadCursor, encode_due_cursor, page_orders
from tests.harness.documents import make_order

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)  # the orders' created_at: T0 + i minutes
NOW = datetime(2026, 12, 5, 4, 0, tzinfo=UTC)
WARN = timedelta(hours=6)

# order id, stage, ship-by relative to NOW (None: no ship-by), flags
ORDERS: list[tuple[str, str, timedelta | None, list[str]]] = [
    ("Q-A-none", "awaiting_buyer", None, []),
    ("Q-B-10h", "awaiting_buyer", timedelta(hours=10), []),
    ("Q-C-late", "awaiting_buyer", -timedelta(hours=1, minutes=5), ["ship_by_late"]),
    ("Q-D-none", "awaiting_buyer", None, []),
    ("Q-E-2h", "awaiting_buyer", timedelta(hours=2), ["ship_by_soon"]),
    ("Q-F-10h", "awaiting_buyer", timedelta(hours=10), []),  # the same deadline as B: B first
    ("Q-G-done", "completed", -timedelta(days=3), ["ship_by_late"]),  # shipped: no deadline left
    ("Q-H-3h", "released", timedelta(hours=3), ["ship_by_soon"]),
    ("Q-I-none", "released", None, []),
]


def platform_doc(order_id: str, i: int, ship_by: timedelta | None) -> OrderDocument:
    doc = make_order(order_id, [("TSHIRT-RED-M", 1)], minutes=i)
    if ship_by is None:
        return doc
    # as a platform's sync writes it: the platform's own offset (+08:00)
    return OrderDocument.model_validate({**doc.model_dump(mode="json"),
                                         "ship_by": (NOW + ship_by).astimezone(SHANGHAI).isoformat()})


def seed(factory: SessionFactory) -> None:
    with transaction(factory) as session:
        for i, (order_id, stage, ship_by, flags) in enumerate(ORDERS):
            seed_order(session, platform_doc(order_id, i, ship_by), stage=stage, flags=flags,
                       submitted_at=T0 + timedelta(minutes=i))


def walk(factory: SessionFactory, limit: int, **filters: Any) -> list[str]:
    seen: list[str] = []
    cursor = None
    with transaction(factory) as session:
        while True:
            items, cursor = page_orders(session, limit=limit, cursor=cursor, sort="ship_by", **filters)
            seen += [i["order_id"] for i in items]
            if cursor is None:
                return seen


def test_the_queue_puts_the_soonest_deadline_first_and_pages_it_once(factory: SessionFactory) -> None:
    seed(factory)
    buyer = ["Q-C-late", "Q-E-2h", "Q-B-10h", "Q-F-10h", "Q-A-none", "Q-D-none"]
    for limit in (1, 2, 3, 4, 100):  # pages that end inside and at the edge of each range
        assert walk(factory, limit, waiting_for="buyer") == buyer, limit
    everything = ["Q-C-late", "Q-E-2h", "Q-H-3h", "Q-B-10h", "Q-F-10h",
                  "Q-A-none", "Q-D-none", "Q-G-done", "Q-I-none"]  # the shipped one: no deadline left
    for limit in (2, 5, 1000):
        assert walk(factory, limit) == everything, limit
    assert walk(factory, 1, stage="released") == ["Q-H-3h", "Q-I-none"]
    assert walk(factory, 1, flag="ship_by_late") == ["Q-C-late", "Q-G-done"]
    assert walk(factory, 1, flag="ship_by_soon") == ["Q-E-2h", "Q-H-3h"]
    assert walk(factory, 2, flag="ship_by_soon", waiting_for="buyer") == ["Q-E-2h"]

    with transaction(factory) as session:
        items = {i["order_id"]: i for i in page_orders(session, limit=100, sort="ship_by")[0]}
        # each item carries its ship-by time in UTC; a shipped order keeps it, sorted without
        assert items["Q-C-late"]["ship_by"] == (NOW - timedelta(hours=1, minutes=5)).isoformat()
        assert items["Q-G-done"]["ship_by"] == (NOW - timedelta(days=3)).isoformat()
        assert items["Q-A-none"]["ship_by"] is None
        # oldest first stays the default (SPEC §5.6)
        oldest, _ = page_orders(session, waiting_for="buyer", limit=100)
        assert [i["order_id"] for i in oldest] == [o for o, stage, *_ in ORDERS if stage == "awaiting_buyer"]
        # a cursor of one order is refused by the other
        _, by_deadline = page_orders(session, waiting_for="buyer", limit=1, sort="ship_by")
        _, by_age = page_orders(session, waiting_for="buyer", limit=1)
        assert by_deadline and by_age
        with pytest.raises(BadCursor):
            page_orders(session, waiting_for="buyer", cursor=by_deadline)
        with pytest.raises(BadCursor):
            page_orders(session, waiting_for="buyer", cursor=by_age, sort="ship_by")
        with pytest.raises(ValueError, match="sort"):
            page_orders(session, sort="deadline")


def test_an_order_that_ships_leaves_the_deadline_range(factory: SessionFactory) -> None:
    """The state write keeps `ship_due`: set while the order is to ship, NULL once shipped."""
    seed(factory)
    doc = platform_doc("Q-H-3h", 7, timedelta(hours=3))
    with transaction(factory) as session:
        seed_order(session, doc, stage="completed", submitted_at=T0 + timedelta(minutes=7))
    with transaction(factory) as session:
        row = session.get(Order, "Q-H-3h")
        assert row is not None and row.ship_due is None and row.ship_by is not None
        assert [i["order_id"] for i in page_orders(session, stage="completed", sort="ship_by")[0]] == [
            "Q-G-done", "Q-H-3h"]  # both by age now
        # an order kept before migration 0007 (no columns yet) gets them at its next write
        session.execute(sa.update(Order).where(Order.order_id == "Q-E-2h").values(ship_by=None, ship_due=None))
    with transaction(factory) as session:
        seed_order(session, platform_doc("Q-E-2h", 4, timedelta(hours=2)), stage="awaiting_buyer",
                   submitted_at=T0 + timedelta(minutes=4))
    with transaction(factory) as session:
        row = session.get(Order, "Q-E-2h")
        assert row is not None and row.ship_due is not None
        assert localtime.parse(row.ship_due) == NOW + timedelta(hours=2)


def test_migration_0007_fills_the_deadlines_of_the_orders_kept(db_url: str) -> None:
    """Orders recorded before the columns existed get them from their documents at the upgrade
    (the JSON read differs between SQLite and PostgreSQL)."""
    from alembic import command
    from alembic.config import Config

    from models.db import MIGRATIONS_DIR

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", db_url)
    command.upgrade(cfg, "0006_console")
    engine = make_engine(db_url)
    due = NOW + timedelta(hours=5)
    docs = {"OLD-OPEN": json.dumps({"ship_by": due.astimezone(SHANGHAI).isoformat()}),
            "OLD-SHIPPED": json.dumps({"ship_by": due.isoformat()}),
            "OLD-BAD": '{"ship_by": "tomorrow"}', "OLD-NONE": "{}"}
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO orders (order_id, workflow_id, platform, stage, flags, findings, document,"
            " created_at, submitted_at, updated_at) VALUES (:o, :w, 'pdd', :s, '[]', '[]', :d,"
            " :t, :t, :t)"),
            [{"o": o, "w": f"order-{o}", "s": "shipped" if o == "OLD-SHIPPED" else "awaiting_buyer",
              "d": d, "t": T0} for o, d in docs.items()])
    engine.dispose()
    migrate(db_url)
    engine = make_engine(db_url)
    with transaction(session_factory(engine)) as session:
        got = {o: (localtime.parse(by), localtime.parse(d)) for o, by, d in session.execute(
            sa.select(Order.order_id, Order.ship_by, Order.ship_due))}
    engine.dispose()
    assert got == {"OLD-OPEN": (due, due), "OLD-SHIPPED": (due, None),
                   "OLD-BAD": (None, None), "OLD-NONE": (None, None)}


def test_each_deadline_page_reads_an_index_range_on_sqlite(sqlite_url: str) -> None:
    """The plans of the queue's queries: both ranges (with a deadline, then without), with and
    without a cursor in each, read an index in order: no scan of the orders, no sort."""
    migrate(sqlite_url)
    engine = make_engine(sqlite_url)
    factory = session_factory(engine)
    seed(factory)
    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        captured.append((statement, parameters))

    cursors = {"first page": None,
               "inside the deadlines": encode_due_cursor(NOW, T0, "Q-C-late"),
               "inside the rest": encode_due_cursor(None, T0, "Q-A-none")}
    # each filter: the index of its deadline range, then of the rest (the oldest-first list's)
    expected = {
        "waiting_for": ("ix_orders_waiting_due_created_id", "ix_orders_waiting_due_created_id"),
        "stage": ("ix_orders_stage_due_created_id", "ix_orders_stage_due_created_id"),
        "flag": ("ix_orders_due_created_id", "ix_order_flags_flag_created_id"),
        None: ("ix_orders_due_created_id", "ix_orders_due_created_id"),
    }
    values = {"waiting_for": "buyer", "stage": "released", "flag": "ship_by_soon"}
    with transaction(factory) as session:
        for kind, indexes in expected.items():
            for where, cursor in cursors.items():
                captured.clear()
                sa.event.listen(engine, "before_cursor_execute", capture)
                page_orders(session, limit=50, cursor=cursor, sort="ship_by",
                            **({kind: values[kind]} if kind else {}))
                sa.event.remove(engine, "before_cursor_execute", capture)
                selects = [(st, p) for st, p in captured if st.lstrip().startswith("SELECT")]
                # a first page reads both ranges, a page inside the rest only the rest
                assert len(selects) == (1 if where == "inside the rest" else 2), (kind, where)
                for (statement, parameters), index in zip(selects, indexes[-len(selects):], strict=True):
                    plan = " | ".join(str(row[-1]) for row in session.connection().exec_driver_sql(
                        "EXPLAIN QUERY PLAN " + statement, parameters))
                    assert f"INDEX {index} (" in plan, (kind, where, plan)
                    assert "SCAN" not in plan and "TEMP B-TREE" not in plan, (kind, where, plan)
    engine.dispose()


# ------------------------------------------------------------- the time left, as said


@pytest.mark.parametrize(("ship_by", "state", "zh", "en"), [
    (NOW + timedelta(hours=8), "ok", "剩 8h 00m", "8h 00m left"),
    (NOW + timedelta(hours=3, minutes=20), "soon", "剩 3h 20m", "3h 20m left"),
    (NOW + WARN, "soon", "剩 6h 00m", "6h 00m left"),  # at the warning, as the flag is raised
    (NOW + timedelta(seconds=45), "soon", "剩 45s", "45s left"),
    (NOW + timedelta(days=3, hours=2), "ok", "剩 3d 2h", "3d 2h left"),
    (NOW, "late", "超时 0s", "late by 0s"),  # at the deadline, as ship_by_late is raised
    (NOW - timedelta(hours=1, minutes=5), "late", "超时 1h 05m", "late by 1h 05m"),
    (NOW - timedelta(minutes=12), "late", "超时 12m", "late by 12m"),
])
def test_the_time_left_to_a_deadline(ship_by: datetime, state: str, zh: str, en: str) -> None:
    for given in (ship_by, ship_by.astimezone(SHANGHAI).isoformat(), ship_by.isoformat()):
        got = localtime.time_left(given, NOW, WARN)
        assert got is not None
        assert (got["state"], got["zh"], got["en"]) == (state, zh, en), given


def test_the_time_left_follows_the_warning_policy_and_needs_a_deadline() -> None:
    in_3h = NOW + timedelta(hours=3)
    assert localtime.time_left(in_3h, NOW, timedelta(hours=2))["state"] == "ok"  # type: ignore[index]
    assert localtime.time_left(in_3h, NOW, timedelta(hours=3))["state"] == "soon"  # type: ignore[index]
    assert localtime.time_left(None, NOW, WARN) is None
    assert localtime.time_left("", NOW, WARN) is None
    assert localtime.time_left("not a time", NOW, WARN) is None
    # the console's ages say durations the same way
    from service.console import age

    assert age((NOW - timedelta(hours=3, minutes=5)).isoformat(), NOW) == "3h 05m"
