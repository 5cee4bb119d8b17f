"""Drill: the database stopped for 15 s mid-flight, then started again.

A private PostgreSQL cluster (tests/harness/drills.py: its own initdb, port and
directory; never the server on 5432) is the OMS database of a real worker
(`python worker.py`) on the real dev server. Twenty orders are submitted; as soon
as the first have been written, PostgreSQL is stopped as by a crash
(`pg_ctl stop -m immediate`) and kept down for 15 s while the warehouse's events
and a cancel still arrive at Temporal. Every step that needed the database then
retries until it is back. Afterwards every order is where it should be, each
effect happened once, the ledger audit is clean, nothing is stuck or failed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.documents import numbered_doc
from tests.harness.drills import (
    PrivatePostgres,
    assert_books_balance,
    db_stages,
    drill_stack,
    signal_all,
    wait_until,
    warehouse_signals,
)
from tests.harness.invariants import effects_by_order, order_workflow_problems
from tests.harness.stack import OmsStack, write_orders

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

OUTAGE = 15.0
CLEAN = [f"PGD-C{i:02d}" for i in range(14)]
BUYER = [f"PGD-B{i}" for i in range(3)]
SHORT = [f"PGD-S{i}" for i in range(3)]
STREETS = ["文三路", "天目山路", "教工路"]
WAITING = {**dict.fromkeys(BUYER, "awaiting_buyer"), **dict.fromkeys(SHORT, "backordered")}


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres().init()
    try:
        yield pg
    finally:
        pg.close()


@pytest.fixture
async def stack(
    dev_env: Any, tmp_path: Path, private_pg: PrivatePostgres
) -> AsyncIterator[OmsStack]:
    async with drill_stack(dev_env, tmp_path / "oms", db_url=private_pg.url) as oms:
        yield oms


def orders() -> list[dict[str, Any]]:
    docs = [numbered_doc(o, n=400 + i) for i, o in enumerate(CLEAN)]
    docs += [
        numbered_doc(o, n=500 + i, sku="MUG-WHITE", qty=1, unit_price="35.00",
                  shipping_fee="10.00", detail=STREETS[i])
        for i, o in enumerate(BUYER)
    ]  # fmt: skip
    docs += [
        numbered_doc(o, n=600 + i, sku="TEA-LONGJING-250G", qty=1, unit_price="268.00")
        for i, o in enumerate(SHORT)
    ]
    return docs


async def test_orders_in_flight_survive_postgres_down_for_15_seconds(
    stack: OmsStack, dev_env: Any, private_pg: PrivatePostgres, tmp_path: Path
) -> None:
    client = dev_env.client
    await stack.load_sample()
    await stack.ok("submit", str(write_orders(tmp_path / "orders.json", orders())))

    # Down as soon as the first clean order is released: the others are mid-way.
    def released() -> list[str]:
        stages = stack.read(db_stages)
        return [o for o in CLEAN if stages.get(o) == "released"]

    ready = await wait_until(released, timeout=90, what="a clean order released", interval=0.05)
    private_pg.stop()
    assert not private_pg.accepting()
    down_at = time.monotonic()
    shipped = ready[:2]
    cancelled = [SHORT[0]]
    # The warehouse ships two orders and a buyer cancels while the database is down.
    await asyncio.gather(
        *(signal_all(client, warehouse_signals(o, n, ("picked", "packed", "shipped")))
          for n, o in enumerate(shipped)),
        signal_all(client, [(o, "cancel", {"reason": "buyer asked to cancel"}) for o in cancelled]),
    )  # fmt: skip
    await asyncio.sleep(max(0.0, OUTAGE - (time.monotonic() - down_at)))  # the outage itself
    assert not private_pg.accepting(), "the database came back by itself"
    private_pg.start()

    expected = {
        **dict.fromkeys(CLEAN, "released"),
        **WAITING,
        **dict.fromkeys(shipped, "completed"),
        **dict.fromkeys(cancelled, "cancelled"),
    }
    await wait_until(
        lambda: stack.read(db_stages) == expected,
        timeout=120,
        what="every order settled after the outage",
        interval=0.3,
        describe=lambda: (
            str({o: s for o, s in stack.read(db_stages).items() if expected.get(o) != s})
            + "\n" + stack.worker_log()[-3000:]
        ),
    )  # fmt: skip
    problems = await order_workflow_problems(
        client, stack.task_queue, expected, stack.read(db_stages)
    )
    assert problems == []

    effects = stack.read(effects_by_order)
    for order_id, stage in expected.items():
        reserves = 0 if order_id in BUYER + SHORT else 1
        want = {
            "reserve": reserves,
            "reservation": reserves,
            "ship": 1 if stage == "completed" else 0,
            "release": 0,
            "pick_list": reserves,
            "tracking_to_platform": 1 if stage == "completed" else 0,
            "buyer_message": 1 if order_id in BUYER else 0,
            "refund": 1 if stage == "cancelled" else 0,
            "refund_request": 1 if stage == "cancelled" else 0,
            "buyer_cancel_notice": 1 if stage == "cancelled" else 0,
        }
        assert {kind: effects[(order_id, kind)] for kind in want} == want, order_id
    await assert_books_balance(stack)
    assert stack.worker_starts == 1  # the same worker rode the outage out
