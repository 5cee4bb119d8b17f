"""The stock ledger on SQLite and PostgreSQL: restock, allocation, idempotency, release; every
change a movement, every figure auditable."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from inventory import ledger
from inventory import warehouse as warehouse_events
from models.db import SessionFactory, transaction
from models.enums import ShortagePolicy
from models.payloads import AllocateResult
from models.tables import (
    AppliedOp,
    CatalogRow,
    Transfer,
    WarehouseRow,
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
)

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


