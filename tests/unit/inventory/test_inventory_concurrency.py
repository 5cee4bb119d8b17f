"""Many workers at once on the stock ledger, on SQLite and PostgreSQL: never oversell, never twice."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from activities.inventory import InventoryActivities
from inventory.audit import audit
from models.db import SessionFactory, transaction
from models.enums import ShortagePolicy
from models.payloads import (
    AllocateInput,
    AllocateResult,
    ReleaseStockInput,
    RestockInput,
)
from models.tables import AppliedOp, Backorder, Reservation, StockMovement
from reads.queries import load_reference, stock_rows

THREADS = 16
T0 = datetime(2026, 11, 11, 0, 0, tzinfo=UTC)


def seed(factory: SessionFactory, on_hand: int) -> None:
    with transaction(factory) as session:
        load_reference(
            session,
            "warehouses",
            [{"code": "HZ", "name": "杭州仓", "province": "浙江省", "priority": 1}],
        )
        load_reference(session, "catalog", [{"sku": "HOT", "name": "爆款", "price": "9.90"}])
        load_reference(session, "stock", [{"sku": "HOT", "warehouse": "HZ", "on_hand": on_hand}])


def order(n: int, qty: int = 1, attempt: int = 1) -> AllocateInput:
    return AllocateInput(
        order_id=f"O{n:04d}",
        op_key=f"order-O{n:04d}:allocate:{attempt}",
        needs=[{"line_no": 1, "sku": "HOT", "qty": qty}],
        buyer_province="浙江省",
        order_time=T0 + timedelta(seconds=n),
        policy=ShortagePolicy.WAIT,
        split_allowed=True,
        rule="same_province_first",
    )


def run_all(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls on THREADS threads, all released together; re-raise any failure."""
    start = threading.Barrier(min(THREADS, len(calls)))

    def runner(call: Callable[[], Any], first_wave: bool) -> Any:
        if first_wave:
            start.wait(timeout=30)
        return call()

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        futures = [pool.submit(runner, c, i < THREADS) for i, c in enumerate(calls)]
        return [f.result(timeout=240) for f in futures]


def hot_level(factory: SessionFactory) -> tuple[int, int]:
    with transaction(factory) as session:
        (row,) = stock_rows(session, "HOT")
        return row["on_hand"], row["reserved"]


def assert_audit_clean(factory: SessionFactory) -> None:
    with transaction(factory) as session:
        assert audit(session) == []


def waiting_queue(factory: SessionFactory) -> list[tuple[str, int]]:
    with transaction(factory) as session:
        rows = session.execute(
            select(Backorder).where(Backorder.status == "waiting").order_by(Backorder.order_time)
        ).scalars()
        return [(b.order_id, b.qty_wanted - b.qty_filled) for b in rows]


def test_a_flash_sale_reserves_exactly_the_stock_and_backorders_the_rest(factory):
    seed(factory, on_hand=50)
    acts = InventoryActivities(factory)
    results: list[AllocateResult] = run_all(
        [lambda n=n: acts.allocate(order(n)) for n in range(200)]
    )

    reserved = sum(q for r in results for _, _, q in r.reserved)
    backordered = sum(q for r in results for _, _, q in r.backordered)
    assert (reserved, backordered) == (50, 150)
    assert all(len(r.reserved) + len(r.backordered) == 1 for r in results)
    assert hot_level(factory) == (50, 50)  # not one unit oversold
    assert len(waiting_queue(factory)) == 150
    assert_audit_clean(factory)

    # The restock then serves the 150 waiting orders strictly by order time.
    got = acts.restock(RestockInput(sku="HOT", warehouse="HZ", qty=150, op_key="restock:1"))
    # Order ids sort like order times; results come back in submission order.
    waiting_ids = sorted(order(n).order_id for n, r in enumerate(results) if r.backordered)
    assert [s["order_id"] for s in got.served] == waiting_ids
    assert hot_level(factory) == (200, 200)
    assert waiting_queue(factory) == []
    assert_audit_clean(factory)


def test_restocks_and_releases_interleaved_with_allocations_keep_the_invariants(factory):
    seed(factory, on_hand=20)
    acts = InventoryActivities(factory)
    rng = random.Random(7)
    wanted = {n: rng.randint(1, 3) for n in range(120)}
    released = {n for n in wanted if n % 3 == 0}

    def shopper(n: int) -> None:
        acts.allocate(order(n, qty=wanted[n]))
        if n in released:  # the buyer cancels at once
            acts.release_stock(ReleaseStockInput(order_id=f"O{n:04d}", op_key=f"O{n:04d}:release"))

    def supplier(k: int) -> None:
        acts.restock(RestockInput(sku="HOT", warehouse="HZ", qty=7, op_key=f"restock:{k}"))

    calls: list[Callable[[], Any]] = []
    for n in wanted:
        calls.append(lambda n=n: shopper(n))
        if n % 8 == 4:
            calls.append(lambda k=n: supplier(k))
    rng.shuffle(calls)
    run_all(calls)

    restocked = 7 * sum(1 for n in wanted if n % 8 == 4)
    on_hand, reserved = hot_level(factory)
    assert on_hand == 20 + restocked
    assert 0 <= reserved <= on_hand
    assert_audit_clean(factory)

    with transaction(factory) as session:
        holds: dict[str, int] = dict(
            session.execute(
                select(Reservation.order_id, func.sum(Reservation.qty))
                .where(Reservation.status == "held")
                .group_by(Reservation.order_id)
            ).all()
        )
    owed = dict(waiting_queue(factory))
    for n, qty in wanted.items():
        oid = f"O{n:04d}"
        if n in released:
            assert (holds.get(oid, 0), owed.get(oid, 0)) == (0, 0), oid
        else:
            assert holds.get(oid, 0) + owed.get(oid, 0) == qty, oid
    # Stock never sits idle while someone waits for it.
    assert owed == {} or on_hand == reserved
    assert reserved == sum(holds.values())


def test_concurrent_duplicate_retries_of_one_operation_have_one_effect(factory):
    seed(factory, on_hand=10)
    acts = InventoryActivities(factory)

    results = run_all([lambda: acts.allocate(order(1, qty=3))] * THREADS)
    assert all(r == results[0] for r in results)
    assert results[0].reserved == [(1, "HZ", 3)]
    assert hot_level(factory) == (10, 3)

    restocks = run_all(
        [lambda: acts.restock(RestockInput(sku="HOT", warehouse="HZ", qty=5, op_key="rs:1"))]
        * THREADS
    )
    assert all(r == restocks[0] for r in restocks)
    assert hot_level(factory) == (15, 3)

    releases = run_all(
        [lambda: acts.release_stock(ReleaseStockInput(order_id="O0001", op_key="rel:1"))] * THREADS
    )
    assert {r.released_units for r in releases} == {3}
    assert hot_level(factory) == (15, 0)

    with transaction(factory) as session:
        kinds = dict(
            session.execute(
                select(StockMovement.kind, func.count()).group_by(StockMovement.kind)
            ).all()
        )
        assert kinds == {"adjust": 1, "reserve": 1, "restock": 1, "release": 1}
        assert session.execute(select(func.count()).select_from(AppliedOp)).scalar_one() == 3
    assert_audit_clean(factory)
