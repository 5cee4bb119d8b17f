"""Every shortage path end to end on the real dev server: two warehouses, one hot SKU.

Each test loads the sample reference data with its own stock of the hot SKU
(MUG-WHITE, 35.00) into a fresh database, runs real workers on its own task
queue, plays the operator and the warehouse through signals, and ends with the
ledger audited and every order line accounted for.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.harness.documents import HOT, fast_policy, make_order
from tests.harness.flow import Flow, running_flow
from tests.harness.reference import load_sample

pytestmark = pytest.mark.e2e

SHIRT = "TSHIRT-RED-M"  # 59.00; the sample holds 100 at HZ and none at SH


@pytest.fixture(params=["sqlite"])
def db(request: pytest.FixtureRequest) -> str:
    """The test's database: SQLite unless a test asks for PostgreSQL (indirect parametrize)."""
    name = "pg_url" if request.param == "postgres" else "sqlite_url"
    return request.getfixturevalue(name)


@pytest.fixture
async def flow(dev_env: WorkflowEnvironment, db: str) -> AsyncIterator[Flow]:
    async with running_flow(dev_env.client, db) as flow:
        yield flow


def line(status: dict, no: int) -> dict:
    return next(li for li in status["lines"] if li["line_no"] == no)


# ------------------------------------------------------------------- partial


async def test_partial_ships_what_is_there_and_a_restock_sends_the_rest_in_a_second_shipment(
    flow: Flow,
) -> None:
    oid = flow.oid("P-1")
    load_sample(flow.factory, {(HOT, "HZ"): 2, (HOT, "SH"): 1})
    await flow.start(make_order(oid, [(HOT, 5)], shortage_policy="partial"))

    state = await flow.until(
        oid, lambda s: s.stage == "released" and len(s.shipments) == 2, "released twice"
    )
    assert {s.warehouse for s in state.shipments} == {"HZ", "SH"}
    assert (state.lines[0].reserved, state.lines[0].backordered) == (3, 2)
    assert "partial_shipment" in state.flags
    assert [(b.warehouse, b.qty_wanted) for b in flow.waiting_backorders(oid)] == [("HZ", 2)]

    await flow.ship_all(oid)
    await flow.until(
        oid, lambda s: s.stage == "backordered" and s.waiting_for == "stock", "backordered"
    )

    restocked = await flow.restock(HOT, "HZ", 2)
    assert [(s["order_id"], s["qty"]) for s in restocked.served] == [(oid, 2)]
    state = await flow.until(oid, lambda s: len(s.shipments) == 3, "released again")
    assert [(item["sku"], item["qty"]) for item in state.shipments[2].lines] == [(HOT, 2)]
    await flow.ship_all(oid)

    assert (await flow.finish(oid)).stage == "completed"
    status = flow.assert_settled(oid)
    assert line(status, 1)["shipped"] == 5
    assert [s["status"] for s in status["shipments"]] == ["shipped"] * 3
    assert status["refund"] is None
    assert {w: r["on_hand"] for w, r in flow.stock(HOT).items()} == {"HZ": 0, "SH": 0}


async def test_partial_with_refund_remainder_cancels_the_rest_and_refunds_its_paid_share(
    flow: Flow,
) -> None:
    oid = flow.oid("PR-1")
    load_sample(flow.factory, {(HOT, "HZ"): 2, (HOT, "SH"): 1})
    # 5 x 35.00 = 175.00, SAVE10 takes 17.50: the buyer paid 157.50, i.e. 31.50 a mug.
    order = make_order(oid, [(HOT, 5)], coupon="SAVE10", shortage_policy="partial")
    assert order.total == Decimal("157.50")
    await flow.start(order, fast_policy(partial_remainder="refund"))

    state = await flow.until(
        oid, lambda s: s.stage == "released" and len(s.shipments) == 2, "released"
    )
    assert (state.lines[0].reserved, state.lines[0].backordered, state.lines[0].cancelled) == (
        3,
        0,
        2,
    )
    assert flow.waiting_backorders(oid) == []
    await flow.ship_all(oid)

    assert (await flow.finish(oid)).stage == "completed"
    status = flow.assert_settled(oid)
    assert (line(status, 1)["shipped"], line(status, 1)["cancelled"]) == (3, 2)
    assert flow.refunds(oid) == [Decimal("63.00")]
    assert status["refund"] == {"amount": "63.00", "status": "requested"}
    assert "refund_request" in flow.event_types(oid)


# -------------------------------------------------------------------- cancel


async def test_cancel_policy_cancels_a_short_order_and_refunds_it_in_full(flow: Flow) -> None:
    oid = flow.oid("C-1")
    load_sample(flow.factory, {(HOT, "HZ"): 2})
    await flow.start(make_order(oid, [(HOT, 5)], shortage_policy="cancel"))

    outcome = await flow.finish(oid)
    assert outcome.stage == "cancelled" and "out of stock" in (outcome.reason or "")
    status = flow.assert_settled(oid)
    assert line(status, 1)["cancelled"] == 5
    assert flow.refunds(oid) == [Decimal("175.00")]
    assert "buyer_cancel_notice" in flow.event_types(oid)
    assert flow.stock(HOT)["HZ"]["reserved"] == 0


# ---------------------------------------------------------------------- wait


@pytest.mark.parametrize("db", ["postgres"], indirect=True)
async def test_wait_backorders_and_a_restock_serves_the_oldest_order_first(flow: Flow) -> None:
    w_new = flow.oid("W-NEW")
    w_old = flow.oid("W-OLD")
    load_sample(flow.factory, {(HOT, "HZ"): 0})
    # The newer order is submitted first: order time decides, not arrival.
    await flow.start(make_order(w_new, [(HOT, 2)], minutes=10, phone="13912345678"))
    await flow.stage(w_new, "backordered")
    await flow.start(make_order(w_old, [(HOT, 2)], minutes=0, phone="13712345678"))
    state = await flow.stage(w_old, "backordered")
    assert state.waiting_for == "stock" and state.lines[0].backordered == 2

    first = await flow.restock(HOT, "HZ", 2)
    assert [(s["order_id"], s["qty"]) for s in first.served] == [(w_old, 2)]
    await flow.stage(w_old, "released")
    assert (await flow.state(w_new)).stage == "backordered"

    second = await flow.restock(HOT, "HZ", 2)
    assert [(s["order_id"], s["qty"]) for s in second.served] == [(w_new, 2)]
    await flow.stage(w_new, "released")

    for order_id in (w_old, w_new):
        await flow.ship_all(order_id)
        assert (await flow.finish(order_id)).stage == "completed"
        assert line(flow.assert_settled(order_id), 1)["shipped"] == 2


async def test_wait_past_the_deadline_cancels_and_refunds(flow: Flow) -> None:
    oid = flow.oid("WD-1")
    load_sample(flow.factory, {(HOT, "HZ"): 0})
    await flow.start(
        make_order(oid, [(HOT, 2)]), fast_policy(backorder_deadline=timedelta(seconds=2))
    )

    outcome = await flow.finish(oid)
    assert outcome.stage == "cancelled" and "backorder_timeout" in (outcome.reason or "")
    status = flow.assert_settled(oid)
    assert "backorder_timeout" in status["flags"]
    assert line(status, 1)["cancelled"] == 2
    assert flow.refunds(oid) == [Decimal("80.00")]  # 2 x 35.00 + 10.00 shipping


async def test_wait_past_the_deadline_with_hold_parks_the_order_for_an_operator(flow: Flow) -> None:
    oid = flow.oid("WH-1")
    load_sample(flow.factory, {(HOT, "HZ"): 0})
    policy = fast_policy(backorder_deadline=timedelta(seconds=2), timeout_action="hold")
    await flow.start(make_order(oid, [(HOT, 2)]), policy)

    state = await flow.stage(oid, "on_hold")
    assert (state.waiting_for, state.held_from) == ("operator", "backordered")
    assert "backorder_timeout" in state.flags
    assert "on_hold" in flow.event_types(oid)
    assert flow.waiting_backorders(oid) != []  # still in the queue while the operator decides

    await flow.signal(oid, "cancel", {"reason": "operator gave up on the restock"})
    assert (await flow.finish(oid)).stage == "cancelled"
    flow.assert_settled(oid)
    assert flow.refunds(oid) == [Decimal("80.00")]


async def test_a_restock_while_on_hold_takes_the_order_off_hold(flow: Flow) -> None:
    oid = flow.oid("WH-2")
    load_sample(flow.factory)
    policy = fast_policy(backorder_deadline=timedelta(seconds=1), timeout_action="hold")
    await flow.start(make_order(oid, [(HOT, 2)]), policy)
    await flow.stage(oid, "on_hold")

    assert [s["order_id"] for s in (await flow.restock(HOT, "HZ", 2)).served] == [oid]
    state = await flow.stage(oid, "released")
    assert state.held_from is None and "backorder_timeout" not in state.flags
    await flow.ship_all(oid)
    assert (await flow.finish(oid)).stage == "completed"
    assert line(flow.assert_settled(oid), 1)["shipped"] == 2


# ------------------------------------------------------------------ transfer


async def _transfer_arrives_and_ships(flow: Flow, order_id: str) -> None:
    state = await flow.stage(order_id, "awaiting_transfer")
    assert state.waiting_for == "transfer"
    (transfer,) = flow.transfers(order_id)
    assert (transfer.sku, transfer.from_warehouse, transfer.to_warehouse, transfer.qty) == (
        HOT,
        "SH",
        "HZ",
        2,
    )
    assert transfer.status == "in_transit"
    requests = [e for e in flow.events(order_id) if e["type"] == "transfer_request"]
    assert [e["payload"]["id"] for e in requests] == [transfer.id]
    # In transit, the two mugs are in neither warehouse: SH gave them up, HZ has not got them.
    stock = flow.stock(HOT)
    assert (stock["SH"]["on_hand"], stock["HZ"]["on_hand"], stock["HZ"]["reserved"]) == (3, 1, 1)
    assert flow.audit() == []

    await flow.signal(order_id, "transfer_arrived", {"transfer_id": transfer.id})
    state = await flow.stage(order_id, "released")
    assert state.lines[1].reserved == 3 and state.lines[1].backordered == 0
    assert [s.warehouse for s in state.shipments] == ["HZ"]
    stock = flow.stock(HOT)
    assert (stock["HZ"]["on_hand"], stock["HZ"]["reserved"]) == (3, 3)
    assert flow.transfers(order_id)[0].status == "arrived"

    await flow.ship_all(order_id)
    assert (await flow.finish(order_id)).stage == "completed"
    status = flow.assert_settled(order_id)
    assert [li["shipped"] for li in status["lines"]] == [2, 3]


async def test_transfer_policy_moves_stock_from_the_other_warehouse(flow: Flow) -> None:
    oid = flow.oid("T-1")
    load_sample(flow.factory, {(HOT, "HZ"): 1, (HOT, "SH"): 5})
    order = make_order(oid, [(SHIRT, 2), (HOT, 3)], shortage_policy="transfer")
    await flow.start(order, fast_policy(split_allowed=False))
    await _transfer_arrives_and_ships(flow, oid)


async def test_a_transfer_past_its_deadline_is_cancelled_and_the_goods_go_back(flow: Flow) -> None:
    oid = flow.oid("TX-1")
    load_sample(flow.factory, {(HOT, "HZ"): 1, (HOT, "SH"): 5})
    order = make_order(oid, [(SHIRT, 2), (HOT, 3)], shortage_policy="transfer")
    await flow.start(
        order, fast_policy(split_allowed=False, transfer_deadline=timedelta(seconds=1))
    )

    outcome = await flow.finish(oid)
    assert outcome.stage == "cancelled" and "transfer_timeout" in (outcome.reason or "")
    flow.assert_settled(oid)
    assert [t.status for t in flow.transfers(oid)] == ["cancelled"]
    assert {w: (r["on_hand"], r["reserved"]) for w, r in flow.stock(HOT).items()} == {
        "HZ": (1, 0),
        "SH": (5, 0),
    }
    assert flow.refunds(oid) == [order.total]


@pytest.mark.parametrize("db", ["postgres"], indirect=True)
async def test_operator_decides_transfer_for_a_backordered_order(flow: Flow) -> None:
    oid = flow.oid("TD-1")
    load_sample(flow.factory, {(HOT, "HZ"): 1, (HOT, "SH"): 5})
    await flow.start(make_order(oid, [(SHIRT, 2), (HOT, 3)]), fast_policy(split_allowed=False))
    state = await flow.stage(oid, "backordered")
    assert state.lines[1].backordered == 2

    await flow.signal(oid, "shortage_decision", {"policy": "transfer", "note": "SH has plenty"})
    await _transfer_arrives_and_ships(flow, oid)
    assert flow.waiting_backorders(oid) == []


async def test_a_decision_for_an_order_that_is_not_short_is_refused_and_recorded(
    flow: Flow,
) -> None:
    oid = flow.oid("N-1")
    load_sample(flow.factory, {(HOT, "HZ"): 5})
    await flow.start(make_order(oid, [(HOT, 1)]))
    await flow.stage(oid, "released")

    refusal = await flow.refusal(oid, "shortage_decision", {"policy": "transfer"})
    assert refusal is not None and "not short of stock" in refusal
    await flow.handle(oid).signal(
        "shortage_decision", {"policy": "transfer"}
    )  # sent anyway, by hand
    status = await flow.persisted(
        oid, lambda st: any(e["type"] == "signal_rejected" for e in st["events"])
    )
    rejected = next(e for e in status["events"] if e["type"] == "signal_rejected")
    assert rejected["signal"] == "shortage_decision" and "not short of stock" in rejected["reason"]
    assert flow.transfers(oid) == []

    await flow.ship_all(oid)
    assert (await flow.finish(oid)).stage == "completed"
    flow.assert_settled(oid)


# ------------------------------------------------------------ pick exception


async def test_pick_exception_sends_the_line_back_to_allocation_and_a_new_shipment_takes_stock(
    flow: Flow,
) -> None:
    oid = flow.oid("X-1")
    load_sample(flow.factory, {(HOT, "HZ"): 4})
    await flow.start(make_order(oid, [(SHIRT, 2), (HOT, 2)]))
    await flow.stage(oid, "released")

    await flow.signal(oid, "pick_exception", {"sku": HOT, "qty": 1, "reason": "damaged"})
    state = await flow.until(oid, lambda s: len(s.shipments) == 2, "a second shipment")
    first, second = state.shipments
    assert sorted((i["sku"], i["qty"]) for i in first.lines) == [(HOT, 1), (SHIRT, 2)]
    assert [(i["sku"], i["qty"]) for i in second.lines] == [(HOT, 1)]
    assert state.lines[0].reserved == 2  # the other line is untouched
    stock = flow.stock(HOT)
    assert (stock["HZ"]["on_hand"], stock["HZ"]["reserved"]) == (
        3,
        2,
    )  # one damaged mug left the ledger
    assert flow.stock(SHIRT)["HZ"]["reserved"] == 2

    await flow.ship_all(oid)
    assert (await flow.finish(oid)).stage == "completed"
    status = flow.assert_settled(oid)
    assert [li["shipped"] for li in status["lines"]] == [2, 2]
    assert flow.stock(HOT)["HZ"]["on_hand"] == 1


async def test_pick_exception_for_a_whole_shipment_withdraws_it_and_releases_a_new_one(
    flow: Flow,
) -> None:
    oid = flow.oid("X-3")
    load_sample(flow.factory, {(HOT, "HZ"): 4})
    await flow.start(make_order(oid, [(HOT, 2)]))
    await flow.stage(oid, "released")

    await flow.signal(oid, "pick_exception", {"sku": HOT, "qty": 2, "reason": "damaged"})
    state = await flow.until(oid, lambda s: len(s.shipments) == 2, "a second shipment")
    assert [s.status for s in state.shipments] == ["cancelled", "released"]
    assert "pick_list_withdrawn" in flow.event_types(oid)
    await flow.ship_all(oid)
    assert (await flow.finish(oid)).stage == "completed"
    assert line(flow.assert_settled(oid), 1)["shipped"] == 2
    assert flow.stock(HOT)["HZ"]["on_hand"] == 0  # two damaged, two shipped


async def test_pick_exception_with_no_stock_left_backorders_the_line_until_a_restock(
    flow: Flow,
) -> None:
    oid = flow.oid("X-2")
    load_sample(flow.factory, {(HOT, "HZ"): 2})
    await flow.start(make_order(oid, [(SHIRT, 2), (HOT, 2)]))
    await flow.stage(oid, "released")

    await flow.signal(oid, "pick_exception", {"sku": HOT, "qty": 1, "reason": "missing"})
    state = await flow.stage(oid, "backordered")
    assert (state.lines[0].reserved, state.lines[1].reserved, state.lines[1].backordered) == (
        2,
        1,
        1,
    )
    assert flow.stock(HOT)["HZ"]["on_hand"] == 1
    assert flow.audit() == []

    served = await flow.restock(HOT, "HZ", 1)
    assert [(s["order_id"], s["qty"]) for s in served.served] == [(oid, 1)]
    await flow.until(oid, lambda s: len(s.shipments) == 2, "a second shipment")
    await flow.ship_all(oid)
    assert (await flow.finish(oid)).stage == "completed"
    status = flow.assert_settled(oid)
    assert [li["shipped"] for li in status["lines"]] == [2, 2]


# ------------------------------------------------------- operator decisions


async def test_operator_decides_partial_for_a_backordered_order(flow: Flow) -> None:
    oid = flow.oid("DP-1")
    load_sample(flow.factory, {(HOT, "HZ"): 1})
    await flow.start(make_order(oid, [(HOT, 3)]))
    state = await flow.stage(oid, "backordered")
    assert (state.lines[0].reserved, state.lines[0].backordered) == (1, 2)

    await flow.signal(oid, "shortage_decision", {"policy": "partial"})
    state = await flow.stage(oid, "released")
    assert "partial_shipment" in state.flags
    assert [(i["sku"], i["qty"]) for i in state.shipments[0].lines] == [(HOT, 1)]
    await flow.ship_all(oid)
    await flow.stage(oid, "backordered")  # the other two are still on their way

    await flow.restock(HOT, "HZ", 2)
    await flow.until(oid, lambda s: len(s.shipments) == 2, "released again")
    await flow.ship_all(oid)
    assert (await flow.finish(oid)).stage == "completed"
    assert line(flow.assert_settled(oid), 1)["shipped"] == 3
    assert flow.refunds(oid) == []


async def test_operator_decides_cancel_for_a_backordered_order(flow: Flow) -> None:
    oid = flow.oid("DC-1")
    load_sample(flow.factory, {(HOT, "HZ"): 1})
    await flow.start(make_order(oid, [(HOT, 3)]))
    await flow.stage(oid, "backordered")

    await flow.signal(oid, "shortage_decision", {"policy": "cancel"})
    outcome = await flow.finish(oid)
    assert outcome.stage == "cancelled"
    assert line(flow.assert_settled(oid), 1)["cancelled"] == 3
    assert flow.refunds(oid) == [Decimal("105.00")]
    assert flow.stock(HOT)["HZ"] == {
        "sku": HOT,
        "warehouse": "HZ",
        "on_hand": 1,
        "reserved": 0,
        "available": 1,
    }
