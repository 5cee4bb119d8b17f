"""Which warehouse ships what (SPEC §3.4): a pure plan, reserved later in the ledger.

The reserve activity reads availability, calls `plan_allocation`, and reserves
the plan atomically; if the ledger moved in between, it reads and plans again.
Keeping the plan pure makes the choice explainable and testable without a
database.

How the plan is chosen:

1. Warehouses are ranked. ``same_province_first``: the buyer's province first,
   then ``priority`` ascending (lower is preferred), then code. ``priority``:
   priority, then code. Stock held at a warehouse not in ``warehouses`` is not
   used (nothing is known about where it is).
2. If one warehouse can ship every line in full, the best-ranked such warehouse
   ships everything.
3. Else, with splitting allowed: the aim is to ship everything that is
   available anywhere (per SKU, up to what was ordered) in the fewest
   shipments. With at most `EXACT_SEARCH_LIMIT` warehouses holding stock of
   the order's SKUs, the smallest set of warehouses reaching that aim is found
   exactly (sizes 1, 2, ...; among sets of one size the one whose ranks are
   lexicographically best). With more, a greedy choice: repeatedly the
   warehouse covering the most remaining units, ties by rank. Within the chosen
   set, each line takes from the warehouses in rank order, so a line may be
   split across shipments. What cannot be covered is a shortfall.
4. Else (no split): the single warehouse that covers the most units (ties by
   rank) ships what it has; the rest is a shortfall.

A shortfall names the warehouse it would be served from: the first shipment's
(best-ranked) warehouse, or the best-ranked warehouse when nothing is available
anywhere. Lines with the same SKU are separate needs that draw on the same
availability, in line order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from itertools import combinations

from models.types import (
    AllocationPlan,
    LineNeed,
    PlannedLine,
    PlannedShipment,
    Shortfall,
    StockAvailability,
    WarehouseInfo,
)

RULES = ("same_province_first", "priority")
EXACT_SEARCH_LIMIT = 12

Stock = dict[tuple[str, str], int]


def same_province(a: str | None, b: str | None) -> bool:
    """Whether two province names denote the same province ("浙江" and "浙江省" do)."""
    if not a or not b:
        return False
    a, b = a.strip(), b.strip()
    if not a or not b:
        return False
    if a == b:
        return True
    shorter, longer = sorted((a, b), key=len)
    return len(shorter) >= 2 and longer.startswith(shorter)


def rank_warehouses(
    warehouses: Sequence[WarehouseInfo],
    *,
    buyer_province: str | None,
    rule: str = "same_province_first",
) -> list[WarehouseInfo]:
    """Warehouses best first, by the configured rule."""
    if rule not in RULES:
        raise ValueError(f"unknown warehouse rule {rule!r}; expected one of {RULES}")
    if rule == "same_province_first":
        return sorted(
            warehouses,
            key=lambda w: (not same_province(w.province, buyer_province), w.priority, w.code),
        )
    return sorted(warehouses, key=lambda w: (w.priority, w.code))


def _availability(stock: Sequence[StockAvailability]) -> Stock:
    available: Stock = defaultdict(int)
    for row in stock:
        available[(row.sku, row.warehouse)] += max(0, row.available)
    return available


def _demand(needs: Sequence[LineNeed]) -> dict[str, int]:
    demand: dict[str, int] = defaultdict(int)
    for need in needs:
        demand[need.sku] += need.qty
    return demand


def _covered_units(codes: Sequence[str], target: dict[str, int], available: Stock) -> int:
    """Units of `target` (per SKU) that the warehouses `codes` together can supply."""
    return sum(
        min(qty, sum(available.get((sku, code), 0) for code in codes))
        for sku, qty in target.items()
    )


def _fill(
    needs: Sequence[LineNeed], codes: Sequence[str], available: Stock
) -> tuple[list[PlannedShipment], list[tuple[LineNeed, int]]]:
    """Take each line from `codes` in order; return shipments and each line's missing qty."""
    left = dict(available)
    per_warehouse: dict[str, list[PlannedLine]] = {code: [] for code in codes}
    missing: list[tuple[LineNeed, int]] = []
    for need in needs:
        remaining = need.qty
        for code in codes:
            if remaining <= 0:
                break
            take = min(remaining, left.get((need.sku, code), 0))
            if take > 0:
                per_warehouse[code].append(
                    PlannedLine(line_no=need.line_no, sku=need.sku, qty=take)
                )
                left[(need.sku, code)] -= take
                remaining -= take
        if remaining > 0:
            missing.append((need, remaining))
    shipments = [
        PlannedShipment(warehouse=code, lines=lines)
        for code, lines in per_warehouse.items()
        if lines
    ]
    return shipments, missing


def _exact_cover(candidates: list[str], target: dict[str, int], available: Stock) -> list[str]:
    goal = sum(target.values())
    for size in range(1, len(candidates) + 1):
        for subset in combinations(candidates, size):
            if _covered_units(subset, target, available) >= goal:
                return list(subset)
    return list(candidates)


def _greedy_cover(candidates: list[str], target: dict[str, int], available: Stock) -> list[str]:
    remaining = dict(target)
    chosen: list[str] = []
    pool = list(candidates)
    while any(remaining.values()) and pool:
        best, best_units = None, 0
        for code in pool:  # in rank order, so the first maximum wins ties
            units = sum(min(q, available.get((sku, code), 0)) for sku, q in remaining.items())
            if units > best_units:
                best, best_units = code, units
        if best is None:
            break
        chosen.append(best)
        pool.remove(best)
        for sku, qty in remaining.items():
            remaining[sku] = qty - min(qty, available.get((sku, best), 0))
    rank = {code: i for i, code in enumerate(candidates)}
    return sorted(chosen, key=rank.__getitem__)


def plan_allocation(
    needs: Sequence[LineNeed],
    stock: Sequence[StockAvailability],
    warehouses: Sequence[WarehouseInfo],
    *,
    buyer_province: str | None,
    split_allowed: bool,
    rule: str = "same_province_first",
) -> AllocationPlan:
    """Plan shipments and shortfalls for `needs` (see the module docstring for the rule)."""
    for need in needs:
        if need.qty < 0:
            raise ValueError(f"line {need.line_no}: negative quantity {need.qty}")
    ranked = [w.code for w in rank_warehouses(warehouses, buyer_province=buyer_province, rule=rule)]
    known = set(ranked)
    available: Stock = {k: v for k, v in _availability(stock).items() if k[1] in known}
    demand = _demand(needs)

    full = [
        code for code in ranked if _covered_units([code], demand, available) == sum(demand.values())
    ]
    if full:
        chosen = [full[0]]
    elif split_allowed:
        candidates = [c for c in ranked if _covered_units([c], demand, available) > 0]
        target = {
            sku: min(qty, sum(available.get((sku, c), 0) for c in candidates))
            for sku, qty in demand.items()
        }
        if len(candidates) <= EXACT_SEARCH_LIMIT:
            chosen = _exact_cover(candidates, target, available)
        else:
            chosen = _greedy_cover(candidates, target, available)
    else:
        best, best_units = None, 0
        for code in ranked:
            units = _covered_units([code], demand, available)
            if units > best_units:
                best, best_units = code, units
        chosen = [best] if best is not None else []

    shipments, missing = _fill(needs, chosen, available)
    primary = shipments[0].warehouse if shipments else (ranked[0] if ranked else "")
    shortfalls = [
        Shortfall(line_no=need.line_no, sku=need.sku, qty=qty, warehouse=primary)
        for need, qty in missing
    ]
    return AllocationPlan(shipments=shipments, shortfalls=shortfalls)


def transfer_sources(
    shortfalls: Sequence[Shortfall],
    stock: Sequence[StockAvailability],
    *,
    exclude_reserved_in_plan: AllocationPlan,
) -> list[tuple[Shortfall, str]]:
    """For each shortfall, another warehouse whose stock left after the plan covers it in full.

    Stock the plan already takes is not counted, and a source serving one
    shortfall is not counted again for the next. Among several sources the one
    with the most left wins, ties by code. Shortfalls no single other warehouse
    can cover are left out of the result.
    """
    left = dict(_availability(stock))
    for shipment in exclude_reserved_in_plan.shipments:
        for line in shipment.lines:
            key = (line.sku, shipment.warehouse)
            left[key] = left.get(key, 0) - line.qty
    sources: list[tuple[Shortfall, str]] = []
    for shortfall in shortfalls:
        options = [
            (qty, code)
            for (sku, code), qty in left.items()
            if sku == shortfall.sku and code != shortfall.warehouse and qty >= shortfall.qty
        ]
        if not options:
            continue
        _, source = min(options, key=lambda o: (-o[0], o[1]))
        left[(shortfall.sku, source)] -= shortfall.qty
        sources.append((shortfall, source))
    return sources
