"""Allocation: which warehouses ship which lines, and what is short."""

from __future__ import annotations

from collections import defaultdict
from itertools import combinations
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inventory import allocation
from inventory.allocation import plan_allocation, rank_warehouses, same_province, transfer_sources
from models.types import (
    AllocationPlan,
    LineNeed,
    PlannedLine,
    PlannedShipment,
    Shortfall,
    StockAvailability,
    WarehouseInfo,
)

HZ = WarehouseInfo(code="HZ", province="浙江省", priority=50)
SH = WarehouseInfo(code="SH", province="上海市", priority=10)
GZ = WarehouseInfo(code="GZ", province="广东省", priority=20)
WAREHOUSES = [HZ, SH, GZ]


def needs(*items: tuple[str, int]) -> list[LineNeed]:
    return [LineNeed(line_no=i, sku=sku, qty=qty) for i, (sku, qty) in enumerate(items, start=1)]


def stock(**per_warehouse: dict[str, int]) -> list[StockAvailability]:
    return [
        StockAvailability(sku=sku, warehouse=code, available=qty)
        for code, skus in per_warehouse.items()
        for sku, qty in skus.items()
    ]


def shape(plan: AllocationPlan) -> dict[str, list[tuple[int, str, int]]]:
    return {s.warehouse: [(pl.line_no, pl.sku, pl.qty) for pl in s.lines] for s in plan.shipments}


def short(plan: AllocationPlan) -> list[tuple[int, str, int, str]]:
    return [(s.line_no, s.sku, s.qty, s.warehouse) for s in plan.shortfalls]


# ------------------------------------------------------------------ ranking


def test_same_province_first_puts_the_buyers_province_ahead_of_priority():
    ranked = rank_warehouses(WAREHOUSES, buyer_province="浙江省")
    assert [w.code for w in ranked] == ["HZ", "SH", "GZ"]


def test_priority_rule_ignores_the_buyers_province():
    ranked = rank_warehouses(WAREHOUSES, buyer_province="浙江省", rule="priority")
    assert [w.code for w in ranked] == ["SH", "GZ", "HZ"]


def test_equal_priorities_are_ranked_by_code():
    a = WarehouseInfo(code="B", province="x", priority=1)
    b = WarehouseInfo(code="A", province="y", priority=1)
    assert [w.code for w in rank_warehouses([a, b], buyer_province=None)] == ["A", "B"]


def test_an_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="nearest"):
        rank_warehouses(WAREHOUSES, buyer_province=None, rule="nearest")


def test_province_short_forms_match_their_full_names():
    assert same_province("浙江", "浙江省")
    assert same_province("广西壮族自治区", "广西")
    assert not same_province("广东省", "广西壮族自治区")
    assert not same_province(None, "浙江省")


# ------------------------------------------------------------------ one warehouse


def test_one_warehouse_that_has_everything_ships_the_whole_order():
    plan = plan_allocation(
        needs(("A", 2), ("B", 1)),
        stock(HZ={"A": 5, "B": 5}, SH={"A": 5, "B": 5}),
        WAREHOUSES,
        buyer_province="浙江省",
        split_allowed=True,
    )
    assert shape(plan) == {"HZ": [(1, "A", 2), (2, "B", 1)]}
    assert plan.complete


def test_same_province_warehouse_is_preferred_over_a_higher_priority_one():
    plan = plan_allocation(
        needs(("A", 1)),
        stock(HZ={"A": 1}, SH={"A": 9}),
        WAREHOUSES,
        buyer_province="浙江",
        split_allowed=True,
    )
    assert list(shape(plan)) == ["HZ"]


def test_priority_decides_when_no_warehouse_is_in_the_buyers_province():
    plan = plan_allocation(
        needs(("A", 1)),
        stock(HZ={"A": 1}, SH={"A": 1}, GZ={"A": 1}),
        WAREHOUSES,
        buyer_province="四川省",
        split_allowed=True,
    )
    assert list(shape(plan)) == ["SH"]


def test_a_whole_order_warehouse_beats_a_preferred_one_that_would_need_a_split():
    plan = plan_allocation(
        needs(("A", 1), ("B", 1)),
        stock(HZ={"A": 1}, GZ={"A": 1, "B": 1}),
        WAREHOUSES,
        buyer_province="浙江省",
        split_allowed=True,
    )
    assert shape(plan) == {"GZ": [(1, "A", 1), (2, "B", 1)]}


def test_lines_of_the_same_sku_draw_on_the_same_stock():
    plan = plan_allocation(
        needs(("A", 3), ("A", 3)),
        stock(HZ={"A": 5}, SH={"A": 6}),
        WAREHOUSES,
        buyer_province="浙江省",
        split_allowed=True,
    )
    # HZ has 5 of the 6 needed, so SH (which has all 6) ships the order.
    assert shape(plan) == {"SH": [(1, "A", 3), (2, "A", 3)]}


def test_stock_at_a_warehouse_not_in_the_list_is_not_used():
    plan = plan_allocation(
        needs(("A", 1)),
        stock(XX={"A": 10}),
        WAREHOUSES,
        buyer_province="浙江省",
        split_allowed=True,
    )
    assert plan.shipments == []
    assert short(plan) == [(1, "A", 1, "HZ")]


def test_an_order_without_lines_plans_nothing():
    plan = plan_allocation(
        [], stock(HZ={"A": 1}), WAREHOUSES, buyer_province=None, split_allowed=True
    )
    assert plan.shipments == [] and plan.shortfalls == []


def test_a_negative_quantity_is_refused():
    with pytest.raises(ValueError, match="negative"):
        plan_allocation(
            [LineNeed(line_no=1, sku="A", qty=-1)],
            [],
            WAREHOUSES,
            buyer_province=None,
            split_allowed=True,
        )


# ------------------------------------------------------------------ split


def test_split_ships_from_two_warehouses_when_none_has_everything():
    plan = plan_allocation(
        needs(("A", 2), ("B", 1)),
        stock(HZ={"A": 2}, GZ={"B": 1}),
        WAREHOUSES,
        buyer_province="浙江省",
        split_allowed=True,
    )
    assert shape(plan) == {"HZ": [(1, "A", 2)], "GZ": [(2, "B", 1)]}
    assert plan.complete


def test_split_finds_the_fewest_shipments_not_the_rank_order():
    # Taking warehouses in rank order would need HZ, SH and GZ; GZ + SH suffice.
    plan = plan_allocation(
        needs(("A", 1), ("B", 1), ("C", 1)),
        stock(HZ={"A": 1}, SH={"B": 1}, GZ={"A": 1, "C": 1}),
        WAREHOUSES,
        buyer_province="浙江省",
        split_allowed=True,
    )
    assert len(plan.shipments) == 2
    assert set(shape(plan)) == {"SH", "GZ"}
    assert plan.complete


def test_a_line_can_be_split_across_warehouses():
    plan = plan_allocation(
        needs(("A", 5)),
        stock(HZ={"A": 3}, SH={"A": 4}),
        WAREHOUSES,
        buyer_province="浙江省",
        split_allowed=True,
    )
    assert shape(plan) == {"HZ": [(1, "A", 3)], "SH": [(1, "A", 2)]}


def test_split_ships_what_exists_and_the_rest_is_short_at_the_primary_warehouse():
    plan = plan_allocation(
        needs(("A", 4), ("B", 2)),
        stock(SH={"A": 1}, GZ={"B": 2}),
        WAREHOUSES,
        buyer_province="浙江省",
        split_allowed=True,
    )
    assert shape(plan) == {"SH": [(1, "A", 1)], "GZ": [(2, "B", 2)]}
    assert short(plan) == [(1, "A", 3, "SH")]
    assert not plan.complete


def test_nothing_available_anywhere_is_short_at_the_best_ranked_warehouse():
    plan = plan_allocation(
        needs(("A", 2)), [], WAREHOUSES, buyer_province="广东省", split_allowed=True
    )
    assert plan.shipments == []
    assert short(plan) == [(1, "A", 2, "GZ")]


def test_greedy_search_with_many_warehouses_still_covers_the_order():
    many = [WarehouseInfo(code=f"W{i:02d}", province="p", priority=i) for i in range(20)]
    rows = [StockAvailability(sku=f"S{i}", warehouse=f"W{i:02d}", available=1) for i in range(20)]
    rows.append(StockAvailability(sku="S0", warehouse="W19", available=1))
    rows.append(StockAvailability(sku="S1", warehouse="W19", available=1))
    plan = plan_allocation(
        needs(("S0", 1), ("S1", 1), ("S5", 1)),
        rows,
        many,
        buyer_province=None,
        split_allowed=True,
    )
    # W19 covers two of the three units, so greedy takes it first, then W05.
    assert set(shape(plan)) == {"W19", "W05"}
    assert plan.complete


# ------------------------------------------------------------------ no split


def test_without_split_the_warehouse_covering_most_units_ships_and_the_rest_is_short():
    plan = plan_allocation(
        needs(("A", 2), ("B", 3)),
        stock(HZ={"A": 2}, GZ={"A": 1, "B": 3}),
        WAREHOUSES,
        buyer_province="浙江省",
        split_allowed=False,
    )
    assert shape(plan) == {"GZ": [(1, "A", 1), (2, "B", 3)]}
    assert short(plan) == [(1, "A", 1, "GZ")]


def test_without_split_equal_coverage_goes_to_the_better_ranked_warehouse():
    plan = plan_allocation(
        needs(("A", 2), ("B", 2)),
        stock(SH={"A": 2}, HZ={"B": 2}),
        WAREHOUSES,
        buyer_province="浙江省",
        split_allowed=False,
    )
    assert shape(plan) == {"HZ": [(2, "B", 2)]}
    assert short(plan) == [(1, "A", 2, "HZ")]


# ------------------------------------------------------------------ transfer sources


def test_transfer_source_is_another_warehouse_that_has_the_missing_stock():
    rows = stock(HZ={"A": 1}, SH={"A": 5})
    plan = plan_allocation(
        needs(("A", 3)), rows, [HZ], buyer_province="浙江省", split_allowed=False
    )
    assert short(plan) == [(1, "A", 2, "HZ")]
    assert transfer_sources(plan.shortfalls, rows, exclude_reserved_in_plan=plan) == [
        (plan.shortfalls[0], "SH")
    ]


def test_transfer_sources_do_not_count_stock_the_plan_already_takes():
    rows = stock(HZ={"A": 0}, SH={"A": 3}, GZ={"A": 2})
    plan = AllocationPlan(
        shipments=[PlannedShipment(warehouse="SH", lines=[PlannedLine(line_no=1, sku="A", qty=2)])],
        shortfalls=[Shortfall(line_no=2, sku="A", qty=2, warehouse="SH")],
    )
    # SH has only 1 left after the plan; GZ has 2.
    assert transfer_sources(plan.shortfalls, rows, exclude_reserved_in_plan=plan) == [
        (plan.shortfalls[0], "GZ")
    ]


def test_transfer_sources_do_not_promise_the_same_stock_twice():
    rows = stock(HZ={}, GZ={"A": 3})
    shortfalls = [
        Shortfall(line_no=1, sku="A", qty=2, warehouse="HZ"),
        Shortfall(line_no=2, sku="A", qty=2, warehouse="HZ"),
    ]
    result = transfer_sources(shortfalls, rows, exclude_reserved_in_plan=AllocationPlan())
    assert result == [(shortfalls[0], "GZ")]


def test_the_shortfalls_own_warehouse_is_not_a_transfer_source():
    rows = stock(HZ={"A": 9})
    shortfalls = [Shortfall(line_no=1, sku="A", qty=2, warehouse="HZ")]
    assert transfer_sources(shortfalls, rows, exclude_reserved_in_plan=AllocationPlan()) == []


def test_the_source_with_most_stock_left_is_chosen():
    rows = stock(SH={"A": 3}, GZ={"A": 7})
    shortfalls = [Shortfall(line_no=1, sku="A", qty=2, warehouse="HZ")]
    assert transfer_sources(shortfalls, rows, exclude_reserved_in_plan=AllocationPlan()) == [
        (shortfalls[0], "GZ")
    ]


# ------------------------------------------------------------------ properties

SKUS = ["A", "B", "C"]
PROVINCES = ["浙江省", "上海市", "广东省"]


@st.composite
def scenarios(draw, max_warehouses: int = 5):
    n = draw(st.integers(min_value=1, max_value=max_warehouses))
    codes = [f"W{i}" for i in range(1, n + 1)]
    warehouses = [
        WarehouseInfo(
            code=code,
            province=draw(st.sampled_from(PROVINCES)),
            priority=draw(st.integers(min_value=0, max_value=3)),
        )
        for code in codes
    ]
    rows = draw(
        st.lists(
            st.builds(
                StockAvailability,
                sku=st.sampled_from(SKUS),
                warehouse=st.sampled_from(codes),
                available=st.integers(min_value=0, max_value=8),
            ),
            max_size=12,
        )
    )
    items = draw(
        st.lists(
            st.tuples(st.sampled_from(SKUS), st.integers(min_value=1, max_value=6)),
            min_size=1,
            max_size=5,
        )
    )
    return needs(*items), rows, warehouses, draw(st.sampled_from([*PROVINCES, None]))


def available_map(rows):
    avail = defaultdict(int)
    for r in rows:
        avail[(r.sku, r.warehouse)] += r.available
    return avail


def whole_order_warehouses(lines, rows, warehouses):
    avail = available_map(rows)
    demand = defaultdict(int)
    for n in lines:
        demand[n.sku] += n.qty
    return [
        w.code for w in warehouses if all(avail[(sku, w.code)] >= q for sku, q in demand.items())
    ]


def check_invariants(lines, rows, plan, *, warehouses, province, rule="same_province_first"):
    avail = available_map(rows)
    taken = defaultdict(int)
    per_line = defaultdict(int)
    for shipment in plan.shipments:
        assert shipment.lines, "no empty shipments"
        for pl in shipment.lines:
            assert pl.qty > 0
            taken[(pl.sku, shipment.warehouse)] += pl.qty
            per_line[pl.line_no] += pl.qty
    for key, qty in taken.items():
        assert qty <= avail[key], f"over-allocated {key}"
    short_per_line = defaultdict(int)
    for s in plan.shortfalls:
        assert s.qty > 0
        short_per_line[s.line_no] += s.qty
    for n in lines:
        assert per_line[n.line_no] <= n.qty
        assert per_line[n.line_no] + short_per_line[n.line_no] == n.qty
    if plan.shortfalls:
        if plan.shipments:
            primary = plan.shipments[0].warehouse
        else:
            primary = rank_warehouses(warehouses, buyer_province=province, rule=rule)[0].code
        assert {s.warehouse for s in plan.shortfalls} == {primary}


@given(scenarios(), st.booleans(), st.sampled_from(["same_province_first", "priority"]))
def test_plans_never_oversell_and_account_for_every_unit(scenario, split, rule):
    lines, rows, warehouses, province = scenario
    plan = plan_allocation(
        lines, rows, warehouses, buyer_province=province, split_allowed=split, rule=rule
    )
    check_invariants(lines, rows, plan, warehouses=warehouses, province=province, rule=rule)


@given(scenarios(), st.booleans())
def test_a_single_warehouse_solution_is_chosen_when_one_exists(scenario, split):
    lines, rows, warehouses, province = scenario
    candidates = whole_order_warehouses(lines, rows, warehouses)
    plan = plan_allocation(lines, rows, warehouses, buyer_province=province, split_allowed=split)
    if candidates:
        assert len(plan.shipments) == 1 and plan.complete
        best = rank_warehouses(
            [w for w in warehouses if w.code in candidates], buyer_province=province
        )[0]
        assert plan.shipments[0].warehouse == best.code


@given(scenarios())
def test_a_same_province_warehouse_is_preferred_when_it_can_ship_everything(scenario):
    lines, rows, warehouses, province = scenario
    candidates = whole_order_warehouses(lines, rows, warehouses)
    local = [w for w in warehouses if w.code in candidates and w.province == province]
    plan = plan_allocation(lines, rows, warehouses, buyer_province=province, split_allowed=True)
    if local:
        assert len(plan.shipments) == 1
        chosen = next(w for w in warehouses if w.code == plan.shipments[0].warehouse)
        assert chosen.province == province


@given(scenarios())
def test_without_split_there_is_at_most_one_shipment(scenario):
    lines, rows, warehouses, province = scenario
    plan = plan_allocation(lines, rows, warehouses, buyer_province=province, split_allowed=False)
    assert len(plan.shipments) <= 1
    shortfall_warehouses = {s.warehouse for s in plan.shortfalls}
    assert len(shortfall_warehouses) <= 1


@given(scenarios())
def test_split_ships_everything_available_in_the_fewest_shipments(scenario):
    lines, rows, warehouses, province = scenario
    plan = plan_allocation(lines, rows, warehouses, buyer_province=province, split_allowed=True)
    avail = available_map(rows)
    demand = defaultdict(int)
    for n in lines:
        demand[n.sku] += n.qty
    codes = [w.code for w in warehouses]

    def reachable(subset):
        return {sku: min(q, sum(avail[(sku, c)] for c in subset)) for sku, q in demand.items()}

    best = reachable(codes)
    shipped = defaultdict(int)
    for s in plan.shipments:
        for pl in s.lines:
            shipped[pl.sku] += pl.qty
    assert {sku: shipped[sku] for sku in demand} == best

    fewest = next(
        k for k in range(len(codes) + 1) for sub in combinations(codes, k) if reachable(sub) == best
    )
    assert len(plan.shipments) == fewest


@settings(max_examples=50)
@given(scenarios())
def test_greedy_split_keeps_the_invariants_and_ships_everything_available(scenario):
    lines, rows, warehouses, province = scenario
    with mock.patch.object(allocation, "EXACT_SEARCH_LIMIT", 0):
        plan = plan_allocation(lines, rows, warehouses, buyer_province=province, split_allowed=True)
    check_invariants(lines, rows, plan, warehouses=warehouses, province=province)
    avail = available_map(rows)
    demand = defaultdict(int)
    for n in lines:
        demand[n.sku] += n.qty
    shipped = sum(pl.qty for s in plan.shipments for pl in s.lines)
    assert shipped == sum(
        min(q, sum(avail[(sku, w.code)] for w in warehouses)) for sku, q in demand.items()
    )


@given(scenarios(), st.booleans())
def test_transfer_sources_never_promise_more_than_is_left(scenario, split):
    lines, rows, warehouses, province = scenario
    plan = plan_allocation(lines, rows, warehouses, buyer_province=province, split_allowed=split)
    sources = transfer_sources(plan.shortfalls, rows, exclude_reserved_in_plan=plan)
    left = available_map(rows)
    for s in plan.shipments:
        for pl in s.lines:
            left[(pl.sku, s.warehouse)] -= pl.qty
    for shortfall, source in sources:
        assert source != shortfall.warehouse
        left[(shortfall.sku, source)] -= shortfall.qty
        assert left[(shortfall.sku, source)] >= 0
