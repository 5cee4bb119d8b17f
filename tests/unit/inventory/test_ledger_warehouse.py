"""The stock ledger and the warehouse on SQLite and PostgreSQL: shipments, pick exceptions,
transfers, the audit and its properties."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select, update

from inventory import audit as stock_audit
from inventory import ledger
from inventory import warehouse as warehouse_events
from models.db import SessionFactory, make_engine, migrate, session_factory, transaction
from models.enums import ShortagePolicy
from models.tables import (
    AppliedOp,
    Backorder,
    Reservation,
    StockLevel,
    StockMovement,
    Transfer,
)
from tests.harness.ledger import (
    T0,
    allocate,
    assert_audit_clean,
    backorders,
    held,
    levels,
    movements,
    release,
    restock,
    seed,
    served,
    to_shipment,
)

# ------------------------------------------------------------ warehouse


def test_consume_shipment_takes_the_units_off_on_hand(factory):
    seed(factory, {("TEE", "HZ"): 10, ("MUG", "HZ"): 5})
    allocate(factory, "A", ("TEE", 3), ("MUG", 1))
    to_shipment(factory, "A", "A-1")
    with transaction(factory) as session:
        shipped = warehouse_events.consume_shipment(session, order_id="A", shipment_id="A-1", ref="ship:1")
    assert shipped == [(1, 3), (2, 1)]
    assert levels(factory) == {("TEE", "HZ"): (7, 0), ("MUG", "HZ"): (4, 0)}
    assert held(factory, "A") == []
    assert sorted(movements(factory, kind="ship")) == [
        ("ship", "MUG", "HZ", -1, -1),
        ("ship", "TEE", "HZ", -3, -3),
    ]
    with transaction(factory) as session:  # shipping again finds nothing held
        assert warehouse_events.consume_shipment(session, order_id="A", shipment_id="A-1", ref="ship:2") == []
    assert_audit_clean(factory)


def test_pick_exception_takes_damaged_units_out_and_refuses_more_than_held(factory):
    seed(factory, {("TEE", "HZ"): 10})
    allocate(factory, "A", ("TEE", 3))
    to_shipment(factory, "A", "A-1")
    with transaction(factory) as session:
        taken = warehouse_events.pick_exception(
            session, order_id="A", shipment_id="A-1", sku="TEE", qty=1, reason="damaged", ref="px:1"
        )
    assert taken == [(1, 1)]
    assert levels(factory)[("TEE", "HZ")] == (9, 2)
    assert held(factory, "A") == [(1, "HZ", 2)]
    assert movements(factory, ref="px:1:damaged") == [("adjust", "TEE", "HZ", -1, -1)]
    before = (levels(factory), movements(factory))
    with pytest.raises(ledger.LedgerError, match="fewer than 3"), transaction(factory) as session:
        warehouse_events.pick_exception(
            session, order_id="A", shipment_id="A-1", sku="TEE", qty=3, reason="missing", ref="px:2"
        )
    assert (levels(factory), movements(factory)) == before
    with transaction(factory) as session:
        taken = warehouse_events.pick_exception(
            session, order_id="A", shipment_id="A-1", sku="TEE", qty=2, reason="missing", ref="px:3"
        )
    assert taken == [(1, 2)]
    assert held(factory, "A") == []
    assert levels(factory)[("TEE", "HZ")] == (7, 0)
    assert_audit_clean(factory)


# -------------------------------------------------------------------- FIFO


def test_restock_serves_backorders_in_order_time_order_whatever_the_arrival_order(factory):
    seed(factory, {("TEE", "HZ"): 0})
    # Inserted B, A, C; placed A (10:00), C (10:01), B (10:02).
    allocate(factory, "B", ("TEE", 2), at=T0 + timedelta(minutes=2))
    allocate(factory, "A", ("TEE", 2), at=T0)
    allocate(factory, "C", ("TEE", 2), at=T0 + timedelta(minutes=1))
    assert served(restock(factory, "TEE", "HZ", 1, ref="r1")) == [("A", 1)]
    assert backorders(factory, "A") == [(1, "HZ", 2, 1, "waiting")]
    assert served(restock(factory, "TEE", "HZ", 4, ref="r2")) == [("A", 1), ("C", 2), ("B", 1)]
    assert served(restock(factory, "TEE", "HZ", 10, ref="r3")) == [("B", 1)]
    assert [b[4] for o in "ABC" for b in backorders(factory, o)] == ["filled"] * 3
    assert levels(factory)[("TEE", "HZ")] == (15, 6)
    assert_audit_clean(factory)


def test_timezones_do_not_confuse_the_queue(factory):
    seed(factory, {("TEE", "HZ"): 0})
    beijing = T0.astimezone(ZoneInfo("Asia/Shanghai"))
    allocate(factory, "LATE", ("TEE", 1), at=T0 + timedelta(seconds=1))
    allocate(factory, "EARLY", ("TEE", 1), at=beijing)  # same instant as T0, written +08:00
    assert served(restock(factory, "TEE", "HZ", 1, ref="r")) == [("EARLY", 1)]
    assert_audit_clean(factory)


# ------------------------------------------------------------------- audit


def test_audit_detects_a_corrupted_stock_level(factory):
    seed(factory, {("TEE", "HZ"): 10})
    allocate(factory, "A", ("TEE", 3))
    assert_audit_clean(factory)
    with transaction(factory) as session:
        session.execute(
            update(StockLevel).where(StockLevel.sku == "TEE").values(on_hand=12, reserved=2)
        )
    with transaction(factory) as session:
        problems = stock_audit.audit(session)
    assert any("TEE@HZ: on_hand 12 but movements sum to 10" in p for p in problems)
    assert any("TEE@HZ: reserved 2 but held reservations sum to 3" in p for p in problems)


def test_audit_detects_reserved_above_on_hand(factory):
    seed(factory, {("TEE", "HZ"): 10})
    with transaction(factory) as session:
        session.execute(update(StockLevel).values(reserved=11))
    with transaction(factory) as session:
        assert any("outside 0..on_hand" in p for p in stock_audit.audit(session))


# -------------------------------------------------------- property: invariants


@pytest.fixture(scope="module")
def shared_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SessionFactory]:
    url = f"sqlite:///{Path(tmp_path_factory.mktemp('ledger')) / 'prop.db'}"
    migrate(url)
    engine = make_engine(url)
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()


def reset(factory: SessionFactory) -> None:
    with transaction(factory) as session:
        for table in (AppliedOp, Backorder, Reservation, StockMovement, StockLevel, Transfer):
            session.execute(delete(table))
    seed(factory, {("TEE", "HZ"): 2, ("TEE", "SH"): 1, ("MUG", "GZ"): 1})


SKUS = st.sampled_from(["TEE", "MUG"])
WHS = st.sampled_from(["HZ", "SH", "GZ"])
ORDER = st.integers(min_value=0, max_value=5)
OPS = st.one_of(
    st.tuples(st.just("restock"), SKUS, WHS, st.integers(1, 4)),
    st.tuples(
        st.just("allocate"),
        ORDER,
        st.lists(st.tuples(SKUS, st.integers(1, 4)), min_size=1, max_size=2),
        st.sampled_from(list(ShortagePolicy)),
        st.booleans(),
        st.sampled_from(["浙江省", "上海市", "广东省", None]),
    ),
    st.tuples(st.just("release"), ORDER),
    st.tuples(st.just("ship"), ORDER),
    st.tuples(st.just("arrive"), ORDER),
)


def check_invariants(factory: SessionFactory) -> None:
    with transaction(factory) as session:
        assert stock_audit.audit(session) == []
        for b in session.execute(select(Backorder)).scalars():
            assert 0 <= b.qty_filled <= b.qty_wanted
            assert (b.status == "filled") == (
                b.qty_filled == b.qty_wanted
            ) or b.status == "cancelled"


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=st.lists(OPS, min_size=1, max_size=14))
def test_random_operations_keep_the_ledger_invariants(shared_sqlite, ops):
    factory = shared_sqlite
    reset(factory)
    for step, op in enumerate(ops):
        kind = op[0]
        if kind == "restock":
            _, sku, wh, qty = op
            restock(factory, sku, wh, qty, ref=f"r{step}")
        elif kind == "allocate":
            _, n, lines, policy, split, province = op
            allocate(
                factory,
                f"O{n}",
                *lines,
                policy=policy,
                split=split,
                province=province,
                at=T0 + timedelta(minutes=step),
                key=f"O{n}:{step}",
            )
        elif kind == "release":
            release(factory, f"O{op[1]}")
        elif kind == "ship":
            to_shipment(factory, f"O{op[1]}", f"O{op[1]}-{step}")
            with transaction(factory) as session:
                warehouse_events.consume_shipment(
                    session, order_id=f"O{op[1]}", shipment_id=f"O{op[1]}-{step}", ref=f"s{step}"
                )
        else:
            with transaction(factory) as session:
                ids = (
                    session.execute(
                        select(Transfer.id).where(
                            Transfer.order_id == f"O{op[1]}", Transfer.status == "in_transit"
                        )
                    )
                    .scalars()
                    .all()
                )
            for transfer_id in ids:
                with transaction(factory) as session:
                    warehouse_events.transfer_arrival(session, transfer_id=transfer_id, ref=f"a{step}")
        check_invariants(factory)
