"""Durability: SIGKILL the worker with twenty orders in flight; nothing is lost or done twice.

The worker is `python worker.py` in a subprocess. It is killed (SIGKILL, no
shutdown) right after a submit, again while buyer confirmations, picks and a
restock hand-out are being processed, and a third time in the middle of a
burst of warehouse events and cancels; a fresh worker takes over each time. Every
order must still reach its stage, and the database must show each effect
exactly once: one reservation per order, one pick list, one shipment's
tracking, one refund per cancelled order.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from models.tables import Order, OutboxEvent, Refund, StockMovement
from tests.harness.documents import numbered_doc
from tests.harness.drills import QUIET_POLICY, signal_all, warehouse_signals
from tests.harness.invariants import check_invariants, workflow_problems
from tests.harness.stack import OmsStack, write_orders

CLEAN = [f"DUR-C{i}" for i in range(10)]
BUYER = [f"DUR-B{i}" for i in range(5)]
SHORT = [f"DUR-S{i}" for i in range(5)]
STREETS = ["文三路", "天目山路", "教工路", "莫干山路", "学院路"]
SAMPLE_STOCK_TOTAL = 198

# Reminders far away: the outbox counts below must not depend on how long a restart took.
@pytest.fixture
async def stack(dev_env: Any, tmp_path: Path) -> AsyncIterator[OmsStack]:
    oms = OmsStack.for_env(dev_env, tmp_path / "oms", policy_env=QUIET_POLICY)
    await oms.start_worker()
    try:
        yield oms
    finally:
        oms.close()


def orders() -> list[dict[str, Any]]:
    docs = [numbered_doc(o, n=100 + i) for i, o in enumerate(CLEAN)]
    docs += [
        numbered_doc(
            o,
            n=200 + i,
            sku="MUG-WHITE",
            qty=1,
            unit_price="35.00",
            shipping_fee="10.00",
            detail=STREETS[i],
        )
        for i, o in enumerate(BUYER)
    ]
    docs += [
        numbered_doc(o, n=300 + i, sku="TEA-LONGJING-250G", qty=1, unit_price="268.00")
        for i, o in enumerate(SHORT)
    ]
    return docs


async def first_progress(oms: OmsStack, moved: set[str], timeout: float = 30.0) -> None:
    """Return as soon as some order reached one of the `moved` stages: the worker is mid-way through its work.

    Read straight from the database (a CLI round trip takes longer than the work itself).
    """

    def stages(session: Any) -> set[str]:
        return set(session.execute(select(Order.stage)).scalars())

    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline and not stages_moved(
        oms.read(stages), moved
    ):
        await asyncio.sleep(0.02)


def stages_moved(seen: set[str], moved: set[str]) -> bool:
    return bool(seen & moved)


async def test_twenty_orders_survive_three_worker_kills_with_every_effect_once(
    stack: OmsStack, dev_env: Any, tmp_path: Path
) -> None:
    client = dev_env.client
    await stack.load_sample()

    # Kill 1: right after submit, while the first workflow tasks run.
    await stack.ok("submit", str(write_orders(tmp_path / "orders.json", orders())))
    stack.kill_worker()
    await stack.start_worker()
    await stack.wait_for_stages(
        {
            **dict.fromkeys(CLEAN, "released"),
            **dict.fromkeys(BUYER, "awaiting_buyer"),
            **dict.fromkeys(SHORT, "backordered"),
        }
    )

    # Kill 2: while buyer confirmations, picks and a restock hand-out are being processed.
    restock = asyncio.create_task(
        stack.cli("restock", "TEA-LONGJING-250G", "5", "--warehouse", "HZ")
    )
    confirmations = [
        (o, "buyer_confirmed", {"detail": f"{STREETS[i]}{10 + i}号1幢101室", "note": "电话确认"})
        for i, o in enumerate(BUYER)
    ]
    picks = [(o, "picked", {}) for o in CLEAN]
    await asyncio.gather(signal_all(client, confirmations), signal_all(client, picks))
    await first_progress(stack, {"picking", "checking", "allocating", "reviewing"})
    stack.kill_worker()
    await stack.start_worker()
    restocked = await restock
    assert restocked.code == 0 and all(o in restocked.out for o in SHORT), restocked
    await stack.wait_for_stages(
        {
            **dict.fromkeys(CLEAN, "picking"),
            **dict.fromkeys(BUYER, "released"),
            **dict.fromkeys(SHORT, "released"),
        }
    )

    # Kill 3: mid-way through a burst of warehouse events and cancels.
    cancelled = [CLEAN[0], BUYER[0], BUYER[1]]
    completed = [o for o in CLEAN + BUYER + SHORT if o not in cancelled]
    bursts = [[(o, "cancel", {"reason": "buyer asked to cancel"})] for o in cancelled]
    for n, order_id in enumerate(completed):
        steps = ("packed", "shipped") if order_id in CLEAN else ("picked", "packed", "shipped")
        bursts.append(warehouse_signals(order_id, n, steps))
    await asyncio.gather(*(signal_all(client, burst) for burst in bursts))
    await first_progress(stack, {"packed", "shipped", "cancelled", "completed"})
    stack.kill_worker()
    await stack.start_worker()
    await stack.wait_for_stages(
        {**dict.fromkeys(completed, "completed"), **dict.fromkeys(cancelled, "cancelled")}
    )

    def effects(
        session: Any,
    ) -> tuple[Counter[tuple[str, str]], Counter[str], Counter[tuple[str, str]]]:
        outbox = Counter(session.execute(select(OutboxEvent.order_id, OutboxEvent.type)).all())
        refunds = Counter(session.execute(select(Refund.order_id)).scalars())
        moves = Counter(session.execute(select(StockMovement.order_id, StockMovement.kind)).all())
        return outbox, refunds, moves

    outbox, refunds, moves = stack.read(effects)
    for order_id in CLEAN + BUYER + SHORT:
        done = order_id in completed
        expect_events = {
            "pick_list": 1,
            "tracking_to_platform": 1 if done else 0,
            "buyer_shipped_notice": 1 if done else 0,
            "refund_request": 0 if done else 1,
            "buyer_cancel_notice": 0 if done else 1,
            "pick_list_withdrawn": 0 if done else 1,
            "buyer_message": 1 if order_id in BUYER else 0,
        }
        got_events = {kind: outbox[(order_id, kind)] for kind in expect_events}
        assert got_events == expect_events, order_id
        assert refunds[order_id] == (0 if done else 1), order_id
        got_moves = {kind: moves[(order_id, kind)] for kind in ("reserve", "ship", "release")}
        assert got_moves == {"reserve": 1, "ship": 1 if done else 0, "release": 0 if done else 1}, (
            order_id
        )

    stock = (await stack.ok("stock", "--json")).json()
    shipped_units = sum(2 if o in CLEAN else 1 for o in completed)
    assert sum(r["on_hand"] for r in stock) == SAMPLE_STOCK_TOTAL + 5 - shipped_units
    assert all(r["reserved"] == 0 for r in stock), stock
    assert stack.read(check_invariants) == []
    query = f'WorkflowType = "OrderWorkflow" AND TaskQueue = "{stack.task_queue}"'
    assert await workflow_problems(dev_env.client, query) == []
    assert stack.worker_starts == 4
