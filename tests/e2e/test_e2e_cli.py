"""End to end, as a new user would: the real worker and the CLI on the real dev server.

The worker runs as `python worker.py` and every action is a `python
starter.py ...` subprocess; only the final visibility and invariant checks
look behind the CLI (Temporal's list API and the database).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.documents import numbered_doc
from tests.harness.invariants import check_invariants, workflow_problems
from tests.harness.stack import OmsStack, submit_lines, write_orders

SAMPLE_STOCK_TOTAL = 198  # sum of on_hand in sample/stock.json


@pytest.fixture
async def stack(dev_env: Any, tmp_path: Path) -> AsyncIterator[OmsStack]:
    oms = OmsStack.for_env(dev_env, tmp_path / "oms")
    await oms.start_worker()
    try:
        yield oms
    finally:
        oms.close()


@pytest.fixture
async def pg_stack(dev_env: Any, tmp_path: Path, pg_url: str) -> AsyncIterator[OmsStack]:
    oms = OmsStack.for_env(dev_env, tmp_path / "oms", db_url=pg_url)
    await oms.start_worker()
    try:
        yield oms
    finally:
        oms.close()


def assert_status_shape(status: dict[str, Any]) -> None:
    """The `status --json` contract of SPEC §5.3."""
    required = {
        "order_id",
        "stage",
        "waiting_for",
        "flags",
        "findings",
        "lines",
        "shipments",
        "refund",
        "events",
    }
    assert required <= set(status), f"missing keys: {required - set(status)}"
    assert isinstance(status["order_id"], str) and isinstance(status["stage"], str)
    assert status["waiting_for"] is None or isinstance(status["waiting_for"], str)
    assert isinstance(status["flags"], list) and all(isinstance(f, str) for f in status["flags"])
    for finding in status["findings"]:
        assert {"code", "field", "class"} <= set(finding), finding
    assert status["lines"], "an order has lines"
    for line in status["lines"]:
        assert {"sku", "qty", "reserved", "shipped", "backordered"} <= set(line), line
        assert all(isinstance(line[k], int) for k in ("qty", "reserved", "shipped", "backordered"))
    for shipment in status["shipments"]:
        assert {"id", "warehouse", "status", "carrier", "tracking_no"} <= set(shipment), shipment
    refund = status["refund"]
    assert refund is None or {"amount", "status"} <= set(refund), refund
    assert status["events"], "the timeline is never empty"
    for event in status["events"]:
        assert isinstance(event["at"], str) and isinstance(event["type"], str), event


async def visible(client: Any, query: str, expected: set[str], timeout: float = 20.0) -> set[str]:
    """Workflow ids matching a visibility query, polled until `expected` shows (visibility lags)."""
    deadline = time.monotonic() + timeout
    found: set[str] = set()
    while time.monotonic() < deadline:
        found = {wf.id async for wf in client.list_workflows(query)}
        if expected <= found:
            return found
        await asyncio.sleep(0.3)
    raise AssertionError(
        f"visibility query {query!r} shows {sorted(found)}, expected {sorted(expected)}"
    )


async def ship(oms: OmsStack, order_id: str, tracking: str) -> None:
    await oms.ok("picked", order_id)
    await oms.ok("packed", order_id)
    await oms.ok("shipped", order_id, "--carrier", "SF", "--tracking", tracking)


async def test_an_operator_runs_every_path_from_the_command_line(
    stack: OmsStack, dev_env: Any, tmp_path: Path
) -> None:
    await stack.load_sample()
    clean, vague, unpaid, short, big, doomed = (
        f"E2E-{name}" for name in ("CLEAN", "VAGUE", "UNPAID", "SHORT", "BIG", "CANCEL")
    )
    malformed = numbered_doc("E2E-BAD", n=7)
    malformed["lines"][0]["qty"] = "abc"
    orders = [
        numbered_doc(clean, n=1),
        numbered_doc(
            vague,
            n=2,
            sku="MUG-WHITE",
            qty=1,
            unit_price="35.00",
            shipping_fee="10.00",
            detail="文三路",
        ),
        numbered_doc(
            unpaid,
            n=3,
            sku="TSHIRT-BLUE-L",
            qty=1,
            shipping_fee="10.00",
            payment="pending",
            total="69.00",
        ),
        numbered_doc(short, n=4, sku="TEA-LONGJING-250G", qty=1, unit_price="268.00"),
        numbered_doc(
            big,
            n=5,
            sku="PHONE-X1",
            qty=1,
            unit_price="6999.00",
            province="上海市",
            city="上海市",
            district="徐汇区",
            detail="漕溪北路201号5楼",
            postal_code="200030",
        ),
        numbered_doc(doomed, n=6, qty=3),
        malformed,
        numbered_doc(clean, n=1),
    ]
    submitted = await stack.cli("submit", str(write_orders(tmp_path / "orders.json", orders)))

    assert submitted.code == 1, f"one order is malformed, so submit exits 1: {submitted}"
    results = submit_lines(submitted.out)
    assert results["E2E-BAD"].startswith("rejected: ") and "qty" in results["E2E-BAD"], submitted
    assert sorted(results[clean].split("|")) == ["duplicate", "started"], submitted
    assert all(results[o] == "started" for o in (vague, unpaid, short, big, doomed)), submitted

    await stack.wait_for_stages(
        {
            clean: "released",
            vague: "awaiting_buyer",
            unpaid: "awaiting_payment",
            short: "backordered",
            big: "awaiting_approval",
            doomed: "released",
        }
    )
    statuses = await asyncio.gather(*(stack.status(o) for o in (vague, unpaid, short, big)))
    for status in statuses:
        assert_status_shape(status)
    by_id = {s["order_id"]: s for s in statuses}
    assert by_id[vague]["waiting_for"] == "buyer"
    assert {"code": "address_vague", "field": "address.detail", "class": "buyer"}.items() <= next(
        f for f in by_id[vague]["findings"] if f["code"] == "address_vague"
    ).items()
    assert by_id[unpaid]["waiting_for"] == "payment" and "unpaid" in by_id[unpaid]["flags"]
    assert (by_id[short]["lines"][0]["backordered"], by_id[short]["waiting_for"]) == (1, "stock")
    assert by_id[big]["waiting_for"] == "approval"

    buyer_list, flagged, wrong_approve, unknown = await asyncio.gather(
        stack.ok("list", "--stage", "awaiting_buyer", "--json"),
        stack.ok("list", "--flag", "unpaid"),
        stack.cli("approve", clean),
        stack.cli("status", "NO-SUCH-ORDER"),
    )
    assert [row["order_id"] for row in buyer_list.json()] == [vague]
    assert set(buyer_list.json()[0]) >= {"order_id", "stage", "waiting_for", "flags", "created_at"}
    assert unpaid in flagged.out and clean not in flagged.out
    assert wrong_approve.code == 1 and "not waiting for approval" in wrong_approve.err, (
        wrong_approve
    )
    assert unknown.code == 1 and "unknown order" in unknown.err, unknown

    _, _, restocked, _, _ = await asyncio.gather(
        stack.ok(
            "confirm", vague, "--detail", "文三路188号2幢302室", "--note", "买家电话确认门牌号"
        ),
        stack.ok("pay", unpaid, "--amount", "69.00", "--txn", "ALI-E2E-3"),
        stack.ok("restock", "TEA-LONGJING-250G", "2", "--warehouse", "HZ"),
        stack.ok("approve", big, "--note", "buyer verified"),
        stack.ok("cancel", doomed, "--reason", "buyer changed their mind"),
    )
    assert short in restocked.out, restocked
    shipping = (clean, vague, unpaid, short, big)
    await stack.wait_for_stages({**dict.fromkeys(shipping, "released"), doomed: "cancelled"})

    await asyncio.gather(
        *(ship(stack, order_id, f"SF{n:010d}") for n, order_id in enumerate(shipping))
    )
    await stack.wait_for_stages(dict.fromkeys(shipping, "completed"))

    again, late_cancel, done = await asyncio.gather(
        stack.cli("shipped", clean, "--carrier", "SF", "--tracking", "SF0000000000"),
        stack.cli("cancel", big, "--reason", "too late"),
        stack.status(clean),
    )
    assert again.code == 1 and "completed" in again.err, again
    assert late_cancel.code == 1 and late_cancel.err.startswith("error:"), late_cancel
    assert_status_shape(done)
    assert done["shipments"][0]["status"] == "shipped"
    assert (done["shipments"][0]["carrier"], done["shipments"][0]["tracking_no"]) == (
        "SF",
        "SF0000000000",
    )
    assert done["lines"][0]["shipped"] == 2 and done["refund"] is None

    cancelled = await stack.status(doomed)
    assert cancelled["refund"] == {"amount": "177.00", "status": "requested"}
    assert cancelled["lines"][0]["reserved"] == 0
    assert any(e["type"] == "refund" for e in cancelled["events"])

    stock, audit, events, mine = await asyncio.gather(
        stack.ok("stock", "--json"),
        stack.cli("stock", "--audit"),
        stack.ok("events", "--json"),
        stack.ok("events", "--order", doomed),
    )
    shipped_units = 2 + 1 + 1 + 1 + 1
    rows = stock.json()
    assert sum(r["on_hand"] for r in rows) == SAMPLE_STOCK_TOTAL + 2 - shipped_units, rows
    assert all(r["reserved"] == 0 and r["available"] == r["on_hand"] for r in rows), rows
    assert audit.code == 0, audit
    types = {(e["order_id"], e["type"]) for e in events.json()}
    assert {
        (doomed, "refund_request"),
        (doomed, "buyer_cancel_notice"),
        (vague, "buyer_message"),
    } <= types, sorted(types)
    for order_id in shipping:
        assert {(order_id, "pick_list"), (order_id, "tracking_to_platform")} <= types, sorted(types)
    assert "refund_request" in mine.out and clean not in mine.out

    client = dev_env.client
    tq = f'TaskQueue = "{stack.task_queue}"'
    ids = {f"order-{o}" for o in shipping}
    await visible(client, f'OrderStage = "completed" AND {tq}', ids)
    await visible(client, f'OrderStage = "cancelled" AND {tq}', {f"order-{doomed}"})
    await visible(
        client, f'OrderSkus = "PHONE-X1" AND Platform = "taobao" AND {tq}', {f"order-{big}"}
    )

    assert stack.read(check_invariants) == []
    assert await workflow_problems(client, f'WorkflowType = "OrderWorkflow" AND {tq}') == []


async def test_a_short_flow_on_postgresql(pg_stack: OmsStack, dev_env: Any, tmp_path: Path) -> None:
    oms = pg_stack
    assert oms.db_url.startswith("postgresql")
    await oms.load_sample()
    paid, unpaid = "PG-PAID-1", "PG-UNPAID-2"
    orders = [
        numbered_doc(paid, n=11),
        numbered_doc(
            unpaid,
            n=12,
            sku="TSHIRT-BLUE-L",
            qty=1,
            shipping_fee="10.00",
            payment="pending",
            total="69.00",
        ),
    ]
    submitted = await oms.ok("submit", str(write_orders(tmp_path / "pg.jsonl.json", orders)))
    assert submit_lines(submitted.out) == {paid: "started", unpaid: "started"}

    await oms.wait_for_stage(unpaid, "awaiting_payment")
    await oms.ok("pay", unpaid, "--amount", "69.00", "--txn", "PG-TXN")
    await oms.wait_for_stages({paid: "released", unpaid: "released"})
    await asyncio.gather(ship(oms, paid, "SF-PG-1"), ship(oms, unpaid, "SF-PG-2"))
    await oms.wait_for_stages({paid: "completed", unpaid: "completed"})

    assert (await oms.cli("stock", "--audit")).code == 0
    assert oms.read(check_invariants) == []
    query = f'WorkflowType = "OrderWorkflow" AND TaskQueue = "{oms.task_queue}"'
    assert await workflow_problems(dev_env.client, query) == []
