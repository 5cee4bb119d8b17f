"""The stock ledger on SQLite and PostgreSQL: every change a movement, every figure auditable."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select, update

from inventory import audit as stock_audit
from inventory import booking, ledger
from inventory import warehouse as warehouse_events
from models.db import SessionFactory, make_engine, migrate, session_factory, transaction
from models.enums import ReservationStatus, ShortagePolicy
from models.payloads import AllocateInput, AllocateResult
from models.tables import (
    AppliedOp,
    Backorder,
    CatalogRow,
    Reservation,
    StockLevel,
    StockMovement,
    Transfer,
    WarehouseRow,
)
from reads.queries import load_reference, stock_rows

WAREHOUSES = [
    {"code": "HZ", "name": "杭州仓", "province": "浙江省", "priority": 1},
    {"code": "SH", "name": "上海仓", "province": "上海市", "priority": 2},
    {"code": "GZ", "name": "广州仓", "province": "广东省", "priority": 3},
]
CATALOG = [
    {"sku": "TEE", "name": "红色T恤", "price": "59.00"},
    {"sku": "MUG", "name": "白色马克杯", "price": "35.00"},
]
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


# ------------------------------------------------------------------ helpers


def seed(factory: SessionFactory, stock: dict[tuple[str, str], int]) -> None:
    with transaction(factory) as session:
        assert load_reference(session, "warehouses", WAREHOUSES) == (3, [])
        assert load_reference(session, "catalog", CATALOG) == (2, [])
        items = [{"sku": s, "warehouse": w, "on_hand": q} for (s, w), q in stock.items()]
        assert load_reference(session, "stock", items) == (len(items), [])


def allocate(
    factory: SessionFactory,
    order_id: str,
    *lines: tuple[str, int],
    policy: ShortagePolicy = ShortagePolicy.WAIT,
    province: str | None = "浙江省",
    split: bool = False,
    at: datetime = T0,
    key: str | None = None,
    backorder_rest: bool = True,
) -> AllocateResult:
    inp = AllocateInput(
        order_id=order_id,
        op_key=key or f"order-{order_id}:allocate:1",
        needs=[{"line_no": i, "sku": sku, "qty": qty} for i, (sku, qty) in enumerate(lines, 1)],
        buyer_province=province,
        order_time=at,
        policy=policy,
        split_allowed=split,
        rule="same_province_first",
        backorder_rest=backorder_rest,
    )
    result = ledger.run_once(factory, inp.op_key, lambda s: booking.allocate(s, inp))
    return AllocateResult.model_validate(result)


def restock(factory: SessionFactory, sku: str, warehouse: str, qty: int, ref: str) -> list[dict]:
    with transaction(factory) as session:
        return ledger.restock(session, sku=sku, warehouse=warehouse, qty=qty, ref=ref)


def release(factory: SessionFactory, order_id: str) -> tuple[int, list[dict]]:
    with transaction(factory) as session:
        return ledger.release_order(
            session, order_id=order_id, line_nos=None, include_reserved=True, ref=f"{order_id}:rel"
        )


def to_shipment(factory: SessionFactory, order_id: str, shipment_id: str) -> None:
    """What releasing to the warehouse does to the holds: tie them to a shipment."""
    with transaction(factory) as session:
        session.execute(
            update(Reservation)
            .where(
                Reservation.order_id == order_id,
                Reservation.status == str(ReservationStatus.HELD),
                Reservation.shipment_id.is_(None),  # type: ignore[union-attr]
            )
            .values(shipment_id=shipment_id)
        )


def levels(factory: SessionFactory) -> dict[tuple[str, str], tuple[int, int]]:
    with transaction(factory) as session:
        return {
            (r["sku"], r["warehouse"]): (r["on_hand"], r["reserved"]) for r in stock_rows(session)
        }


def movements(factory: SessionFactory, **where: Any) -> list[tuple[str, str, str, int, int]]:
    stmt = select(StockMovement).order_by(StockMovement.id)
    for name, value in where.items():
        stmt = stmt.where(getattr(StockMovement, name) == value)
    with transaction(factory) as session:
        return [
            (m.kind, m.sku, m.warehouse, m.on_hand_delta, m.reserved_delta)
            for m in session.execute(stmt).scalars()
        ]


def held(factory: SessionFactory, order_id: str) -> list[tuple[int, str, int]]:
    with transaction(factory) as session:
        rows = session.execute(
            select(Reservation)
            .where(Reservation.order_id == order_id, Reservation.status == "held")
            .order_by(Reservation.line_no, Reservation.warehouse)
        ).scalars()
        return [(r.line_no, r.warehouse, r.qty) for r in rows]


def backorders(factory: SessionFactory, order_id: str) -> list[tuple[int, str, int, int, str]]:
    with transaction(factory) as session:
        rows = session.execute(
            select(Backorder).where(Backorder.order_id == order_id).order_by(Backorder.id)
        ).scalars()
        return [(b.line_no, b.warehouse, b.qty_wanted, b.qty_filled, b.status) for b in rows]


def served(entries: list[dict]) -> list[tuple[str, int]]:
    return [(e["order_id"], e["qty"]) for e in entries]


def assert_audit_clean(factory: SessionFactory) -> None:
    with transaction(factory) as session:
        assert stock_audit.audit(session) == []


# ------------------------------------------------------------ restock, load


def test_restock_adds_on_hand_and_records_a_movement(factory):
    seed(factory, {("TEE", "HZ"): 4})
    assert restock(factory, "TEE", "HZ", 6, ref="ops:1") == []
    assert levels(factory)[("TEE", "HZ")] == (10, 0)
    assert movements(factory, kind="restock") == [("restock", "TEE", "HZ", 6, 0)]
    assert movements(factory, ref="ops:1") == [("restock", "TEE", "HZ", 6, 0)]
    assert_audit_clean(factory)


def test_restock_of_a_sku_without_a_stock_row_creates_it(factory):
    seed(factory, {})
    restock(factory, "MUG", "GZ", 3, ref="ops:1")
    assert levels(factory) == {("MUG", "GZ"): (3, 0)}
    assert_audit_clean(factory)


@pytest.mark.parametrize(
    ("sku", "warehouse", "qty", "message"),
    [
        ("NOPE", "HZ", 5, "unknown SKU"),
        ("TEE", "XX", 5, "unknown warehouse"),
        ("TEE", "HZ", 0, "positive"),
        ("TEE", "HZ", -3, "positive"),
    ],
)
def test_a_bad_restock_is_refused_and_leaves_the_ledger_untouched(
    factory, sku, warehouse, qty, message
):
    seed(factory, {("TEE", "HZ"): 4})
    before = (levels(factory), movements(factory))

    def work(session):
        return {"served": ledger.restock(session, sku=sku, warehouse=warehouse, qty=qty, ref="r")}

    with pytest.raises(ledger.LedgerError, match=message):
        ledger.run_once(factory, "restock:bad", work)
    assert (levels(factory), movements(factory)) == before
    with transaction(factory) as session:
        assert session.get(AppliedOp, "restock:bad") is None
    assert_audit_clean(factory)


def test_loading_stock_twice_changes_nothing_and_loads_are_adjust_movements(factory):
    seed(factory, {("TEE", "HZ"): 100, ("MUG", "SH"): 40})
    first = movements(factory)
    assert first == [("adjust", "TEE", "HZ", 100, 0), ("adjust", "MUG", "SH", 40, 0)]
    seed(factory, {("TEE", "HZ"): 100, ("MUG", "SH"): 40})
    assert movements(factory) == first
    seed(factory, {("TEE", "HZ"): 60, ("MUG", "SH"): 40})
    assert movements(factory)[-1] == ("adjust", "TEE", "HZ", -40, 0)
    assert levels(factory) == {("TEE", "HZ"): (60, 0), ("MUG", "SH"): (40, 0)}
    with transaction(factory) as session:
        assert session.execute(select(func.count()).select_from(WarehouseRow)).scalar_one() == 3
        assert session.execute(select(func.count()).select_from(CatalogRow)).scalar_one() == 2
    assert_audit_clean(factory)


# ---------------------------------------------------------------- allocate


@pytest.mark.parametrize(
    ("province", "warehouse"), [("浙江省", "HZ"), ("上海市", "SH"), ("广东", "GZ")]
)
def test_allocate_reserves_from_one_warehouse_in_the_buyers_province(factory, province, warehouse):
    seed(factory, {("TEE", "HZ"): 10, ("TEE", "SH"): 10, ("TEE", "GZ"): 10})
    result = allocate(factory, "A", ("TEE", 3), province=province)
    assert result.reserved == [(1, warehouse, 3)]
    assert result.backordered == [] and result.transfers == []
    assert levels(factory)[("TEE", warehouse)] == (10, 3)
    assert held(factory, "A") == [(1, warehouse, 3)]
    assert movements(factory, kind="reserve") == [("reserve", "TEE", warehouse, 0, 3)]
    assert_audit_clean(factory)


def test_allocate_falls_back_to_priority_when_the_buyers_province_has_none(factory):
    seed(factory, {("TEE", "SH"): 10, ("TEE", "GZ"): 10})
    assert allocate(factory, "A", ("TEE", 3), province="浙江省").reserved == [(1, "SH", 3)]
    assert_audit_clean(factory)


def test_allocate_splits_across_warehouses_when_allowed(factory):
    seed(factory, {("TEE", "HZ"): 3, ("TEE", "SH"): 4})
    result = allocate(factory, "A", ("TEE", 6), split=True)
    assert result.reserved == [(1, "HZ", 3), (1, "SH", 3)]
    assert result.backordered == []
    assert levels(factory) == {("TEE", "HZ"): (3, 3), ("TEE", "SH"): (4, 3)}
    assert_audit_clean(factory)


def test_without_splitting_the_best_single_warehouse_ships_and_the_rest_is_backordered(factory):
    seed(factory, {("TEE", "HZ"): 3, ("TEE", "SH"): 4})
    result = allocate(factory, "A", ("TEE", 6), split=False)
    assert result.reserved == [(1, "SH", 4)]
    assert result.backordered == [(1, "SH", 2)]
    assert backorders(factory, "A") == [(1, "SH", 2, 0, "waiting")]
    assert levels(factory) == {("TEE", "HZ"): (3, 0), ("TEE", "SH"): (4, 4)}
    assert_audit_clean(factory)


def test_policy_wait_backorders_what_is_missing(factory):
    seed(factory, {("TEE", "HZ"): 3, ("MUG", "HZ"): 5})
    result = allocate(factory, "A", ("TEE", 5), ("MUG", 1))
    assert result.reserved == [(1, "HZ", 3), (2, "HZ", 1)]
    assert result.backordered == [(1, "HZ", 2)]
    assert [(s.line_no, s.sku, s.qty) for s in result.plan.shortfalls] == [(1, "TEE", 2)]
    assert backorders(factory, "A") == [(1, "HZ", 2, 0, "waiting")]
    assert_audit_clean(factory)


def test_policy_partial_without_backorder_leaves_the_rest_to_the_workflow(factory):
    seed(factory, {("TEE", "HZ"): 3})
    result = allocate(factory, "A", ("TEE", 5), policy=ShortagePolicy.PARTIAL, backorder_rest=False)
    assert result.reserved == [(1, "HZ", 3)]
    assert result.backordered == []
    assert backorders(factory, "A") == []
    assert_audit_clean(factory)


def test_policy_cancel_reserves_nothing_when_short(factory):
    seed(factory, {("TEE", "HZ"): 3, ("MUG", "HZ"): 5})
    before = (levels(factory), movements(factory))
    result = allocate(factory, "A", ("TEE", 5), ("MUG", 1), policy=ShortagePolicy.CANCEL)
    assert result.reserved == [] and result.backordered == [] and result.transfers == []
    assert [(s.sku, s.qty) for s in result.plan.shortfalls] == [("TEE", 2)]
    assert (levels(factory), movements(factory)) == before
    assert held(factory, "A") == [] and backorders(factory, "A") == []
    assert_audit_clean(factory)


def test_policy_cancel_reserves_normally_when_everything_is_there(factory):
    seed(factory, {("TEE", "HZ"): 5})
    result = allocate(factory, "A", ("TEE", 5), policy=ShortagePolicy.CANCEL)
    assert result.reserved == [(1, "HZ", 5)]
    assert_audit_clean(factory)


def transfer_case(factory: SessionFactory) -> AllocateResult:
    """HZ ships the order but lacks two tees; SH has plenty and sends them over."""
    seed(factory, {("TEE", "HZ"): 3, ("MUG", "HZ"): 2, ("TEE", "SH"): 10})
    return allocate(factory, "A", ("TEE", 5), ("MUG", 2), policy=ShortagePolicy.TRANSFER)


def test_policy_transfer_moves_stock_out_of_the_source_and_counts_it_nowhere(factory):
    result = transfer_case(factory)
    assert result.reserved == [(1, "HZ", 3), (2, "HZ", 2)]
    assert result.backordered == []
    assert result.transfers == [
        {
            "id": "TR-A-1-1",
            "line_no": 1,
            "sku": "TEE",
            "from_warehouse": "SH",
            "to_warehouse": "HZ",
            "qty": 2,
        }
    ]
    assert movements(factory, kind="transfer_out") == [("transfer_out", "TEE", "SH", -2, 0)]
    now = levels(factory)
    assert now[("TEE", "SH")] == (8, 0)
    assert now[("TEE", "HZ")] == (3, 3)
    assert now[("TEE", "SH")][0] + now[("TEE", "HZ")][0] == 11  # two in transit, in neither
    with transaction(factory) as session:
        assert session.get(Transfer, "TR-A-1-1").status == "in_transit"
    assert_audit_clean(factory)


def test_policy_transfer_backorders_what_no_warehouse_can_send(factory):
    seed(factory, {("TEE", "HZ"): 3, ("TEE", "SH"): 1})
    result = allocate(factory, "A", ("TEE", 5), policy=ShortagePolicy.TRANSFER)
    assert result.transfers == []
    assert result.reserved == [(1, "HZ", 3)]
    assert result.backordered == [(1, "HZ", 2)]
    assert_audit_clean(factory)


def test_transfer_arrival_stocks_in_and_reserves_and_a_second_arrival_is_refused(factory):
    transfer_case(factory)
    with transaction(factory) as session:
        got = warehouse_events.transfer_arrival(session, transfer_id="TR-A-1-1", ref="arr:1")
    assert got == {
        "order_id": "A",
        "line_no": 1,
        "sku": "TEE",
        "warehouse": "HZ",
        "qty": 2,
        "ref": "TR-A-1-1",
    }
    assert levels(factory)[("TEE", "HZ")] == (5, 5)
    assert held(factory, "A") == [(1, "HZ", 3), (1, "HZ", 2), (2, "HZ", 2)]
    with transaction(factory) as session:
        assert session.get(Transfer, "TR-A-1-1").status == "arrived"
    before = (levels(factory), movements(factory))
    with (
        pytest.raises(ledger.LedgerError, match="arrived, not in transit"),
        transaction(factory) as session,
    ):
        warehouse_events.transfer_arrival(session, transfer_id="TR-A-1-1", ref="arr:2")
    with (
        pytest.raises(ledger.LedgerError, match="unknown transfer"),
        transaction(factory) as session,
    ):
        warehouse_events.transfer_arrival(session, transfer_id="TR-NOPE", ref="arr:3")
    assert (levels(factory), movements(factory)) == before
    assert_audit_clean(factory)


# ------------------------------------------------------------- idempotency


def test_the_same_op_key_twice_reserves_once(factory):
    seed(factory, {("TEE", "HZ"): 10})
    first = allocate(factory, "A", ("TEE", 3), key="order-A:allocate:1")
    again = allocate(factory, "A", ("TEE", 3), key="order-A:allocate:1")
    assert again == first
    assert levels(factory)[("TEE", "HZ")] == (10, 3)
    assert held(factory, "A") == [(1, "HZ", 3)]
    assert len(movements(factory, kind="reserve")) == 1
    third = allocate(factory, "A", ("TEE", 3), key="order-A:allocate:2")  # a new attempt is new
    assert third.reserved == [(1, "HZ", 3)]
    assert levels(factory)[("TEE", "HZ")] == (10, 6)
    assert_audit_clean(factory)


def test_a_failed_operation_leaves_no_key_behind_so_a_retry_runs(factory):
    seed(factory, {("TEE", "HZ"): 10})
    calls = []

    def flaky(session):
        calls.append(1)
        ledger.restock(session, sku="TEE", warehouse="HZ", qty=1, ref="r")
        if len(calls) == 1:
            raise ledger.LedgerError("boom")
        return {"ok": True}

    with pytest.raises(ledger.LedgerError):
        ledger.run_once(factory, "op", flaky)
    assert levels(factory)[("TEE", "HZ")] == (10, 0)
    assert ledger.run_once(factory, "op", flaky) == {"ok": True}
    assert ledger.run_once(factory, "op", flaky) == {"ok": True}
    assert len(calls) == 2
    assert levels(factory)[("TEE", "HZ")] == (11, 0)
    assert_audit_clean(factory)


# ----------------------------------------------------------------- release


def test_release_order_frees_holds_cancels_backorders_and_returns_transfers(factory):
    seed(factory, {("TEE", "HZ"): 3, ("MUG", "HZ"): 2, ("TEE", "SH"): 10})
    result = allocate(factory, "A", ("TEE", 5), ("MUG", 4), policy=ShortagePolicy.TRANSFER)
    assert result.reserved == [(1, "HZ", 3), (2, "HZ", 2)]
    assert [(t["id"], t["from_warehouse"], t["qty"]) for t in result.transfers] == [
        ("TR-A-1-1", "SH", 2)
    ]
    assert result.backordered == [(2, "HZ", 2)]  # no warehouse can send two mugs
    allocate(factory, "B", ("MUG", 1), at=T0 + timedelta(minutes=5))
    assert levels(factory)[("TEE", "SH")] == (8, 0)

    units, handed = release(factory, "A")
    assert units == 5
    assert served(handed) == [("B", 1)]  # A's own backorder is cancelled, not served
    assert held(factory, "A") == []
    assert backorders(factory, "A") == [(2, "HZ", 2, 0, "cancelled")]
    assert levels(factory) == {("TEE", "HZ"): (3, 0), ("MUG", "HZ"): (2, 1), ("TEE", "SH"): (10, 0)}
    with transaction(factory) as session:
        assert session.get(Transfer, "TR-A-1-1").status == "cancelled"
    assert movements(factory, ref="TR-A-1-1:returned") == [("transfer_in", "TEE", "SH", 2, 0)]
    assert release(factory, "A") == (0, [])  # nothing left to release
    with pytest.raises(ledger.LedgerError), transaction(factory) as session:
        warehouse_events.transfer_arrival(session, transfer_id="TR-A-1-1", ref="late")
    assert_audit_clean(factory)


def test_released_stock_goes_to_the_next_waiting_order_first_come_first_served(factory):
    seed(factory, {("TEE", "HZ"): 3})
    allocate(factory, "A", ("TEE", 3), at=T0)
    allocate(factory, "C", ("TEE", 2), at=T0 + timedelta(minutes=2))
    allocate(factory, "B", ("TEE", 2), at=T0 + timedelta(minutes=1))
    units, handed = release(factory, "A")
    assert units == 3
    assert served(handed) == [("B", 2), ("C", 1)]
    assert held(factory, "B") == [(1, "HZ", 2)] and held(factory, "C") == [(1, "HZ", 1)]
    assert backorders(factory, "B") == [(1, "HZ", 2, 2, "filled")]
    assert backorders(factory, "C") == [(1, "HZ", 2, 1, "waiting")]
    assert levels(factory)[("TEE", "HZ")] == (3, 3)
    assert_audit_clean(factory)


def test_releasing_some_lines_leaves_the_others_held(factory):
    seed(factory, {("TEE", "HZ"): 3, ("MUG", "HZ"): 3})
    allocate(factory, "A", ("TEE", 1), ("MUG", 2))
    with transaction(factory) as session:
        units, _ = ledger.release_order(
            session, order_id="A", line_nos=[2], include_reserved=True, ref="r"
        )
    assert units == 2
    assert held(factory, "A") == [(1, "HZ", 1)]
    assert_audit_clean(factory)


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
