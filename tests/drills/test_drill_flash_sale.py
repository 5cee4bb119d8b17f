"""Drill: the worker SIGKILLed twice during a flash sale of 80 units to 200 buyers.

200 paid orders of one unit each for one SKU with 80 on hand, shortage policy
`cancel`, run by `python worker.py` in a subprocess on the real dev server. The
worker is SIGKILLed (no shutdown) once the first orders have been decided and
again when about half are, a fresh worker taking over each time, so the killed
ones leave allocations, cancellations and refunds half done. Afterwards exactly
80 orders are served (released, one reservation of one unit each) and 120
cancelled (nothing reserved, one refund each); nothing is oversold, the ledger
audit is clean, and every workflow agrees with the database.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.documents import numbered_doc
from tests.harness.drills import (
    assert_books_balance,
    db_stages,
    drill_stack,
    stage_counts,
    wait_until,
)
from tests.harness.invariants import effects_by_order, order_workflow_problems
from tests.harness.stack import SAMPLE, OmsStack, write_orders

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

SKU, WAREHOUSE, UNITS, BUYERS = "TSHIRT-RED-M", "HZ", 80, 200
ORDERS = [f"FLASH-{i:03d}" for i in range(BUYERS)]
DECIDED = ("released", "cancelled")


@pytest.fixture
async def stack(dev_env: Any, tmp_path: Path) -> AsyncIterator[OmsStack]:
    async with drill_stack(dev_env, tmp_path / "oms", OMS_POLICY__SHORTAGE__DEFAULT="cancel") as oms:
        yield oms


def decided(stack: OmsStack) -> int:
    counts = stack.read(stage_counts)
    return sum(counts[s] for s in DECIDED)


async def kill_when_decided(stack: OmsStack, at_least: int) -> int:
    """SIGKILL the worker as soon as `at_least` orders are decided; start a fresh one."""
    seen = await wait_until(
        lambda: (n := decided(stack)) >= at_least and n,
        timeout=90,
        what=f"{at_least} flash-sale orders decided",
        interval=0.05,
        describe=lambda: str(stack.read(stage_counts)),
    )
    stack.kill_worker()
    await stack.start_worker()
    return seen


async def test_a_flash_sale_survives_two_worker_kills_serving_exactly_the_stock(
    stack: OmsStack, dev_env: Any, tmp_path: Path
) -> None:
    for kind in ("catalog", "warehouses"):
        await stack.ok("load", kind, str(SAMPLE / f"{kind}.json"))
    stock = tmp_path / "stock.json"
    stock.write_text(json.dumps([{"sku": SKU, "warehouse": WAREHOUSE, "on_hand": UNITS}]))
    await stack.ok("load", "stock", str(stock))
    docs = [numbered_doc(o, n=i, sku=SKU, qty=1, shipping_fee="10.00") for i, o in enumerate(ORDERS)]
    await stack.ok("submit", str(write_orders(tmp_path / "sale.json", docs)))

    first = await kill_when_decided(stack, 10)
    second = await kill_when_decided(stack, BUYERS // 2)
    assert first < BUYERS and second < BUYERS, "the kills came after the sale had ended"

    def all_decided() -> Any:
        counts = stack.read(stage_counts)
        return counts if sum(counts[s] for s in DECIDED) == BUYERS else None

    counts = await wait_until(
        all_decided,
        timeout=120,
        what="every flash-sale order decided",
        interval=0.3,
        describe=lambda: f"{stack.read(stage_counts)}\n{stack.worker_log()[-3000:]}",
    )
    assert counts == {"released": UNITS, "cancelled": BUYERS - UNITS}, counts

    stages = stack.read(db_stages)
    served = sorted(o for o in ORDERS if stages[o] == "released")
    expected = {o: stages[o] for o in ORDERS}
    assert (
        await order_workflow_problems(dev_env.client, stack.task_queue, expected, stages) == []
    )

    effects = stack.read(effects_by_order)
    for order_id in ORDERS:
        won = order_id in served
        want = {
            "reserve": 1 if won else 0,
            "reservation": 1 if won else 0,
            "release": 0,
            "ship": 0,
            "pick_list": 1 if won else 0,
            "refund": 0 if won else 1,
            "refund_request": 0 if won else 1,
        }
        assert {kind: effects[(order_id, kind)] for kind in want} == want, order_id

    rows = (await stack.ok("stock", SKU, "--json")).json()
    assert [(r["warehouse"], r["on_hand"], r["reserved"], r["available"]) for r in rows] == [
        (WAREHOUSE, UNITS, UNITS, 0)
    ], rows
    await assert_books_balance(stack)
    assert stack.worker_starts == 3
