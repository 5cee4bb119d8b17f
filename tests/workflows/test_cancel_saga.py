"""Cancel from every stage an order can reach, end to end on the real dev server.

Each cancel must undo what was done (reservations, backorders, transfers, pick
lists), refund exactly what was paid and not shipped, tell the buyer, and close
the workflow Completed with the order `cancelled`. A cancel after shipping is
refused with a reason; a cancel sent while an activity runs is never lost.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from temporalio.testing import WorkflowEnvironment

from models.settings import Policy
from tests.harness.documents import HOT, fast_policy, make_order
from tests.harness.flow import Flow, running_flow
from tests.harness.reference import load_sample

pytestmark = pytest.mark.e2e

SHIRT = "TSHIRT-RED-M"


@pytest.fixture(params=["sqlite"])
def db(request: pytest.FixtureRequest) -> str:
    """The test's database: SQLite unless a test asks for PostgreSQL (indirect parametrize)."""
    name = "pg_url" if request.param == "postgres" else "sqlite_url"
    return request.getfixturevalue(name)


@pytest.fixture
async def flow(dev_env: WorkflowEnvironment, db: str) -> AsyncIterator[Flow]:
    async with running_flow(dev_env.client, db) as flow:
        load_sample(flow.factory, {(HOT, "HZ"): 5, (HOT, "SH"): 5})
        yield flow


async def cancel(
    flow: Flow, order_id: str, refund: Decimal | None, refunds: list[Decimal] | None = None
) -> dict:
    """Cancel as an operator would; check the saga's outcome and return the order's status."""
    reason = f"buyer asked to cancel {order_id}"
    await flow.signal(order_id, "cancel", {"reason": reason})
    outcome = await flow.finish(order_id)
    assert (outcome.stage, outcome.reason) == ("cancelled", reason)
    status = flow.assert_settled(order_id)
    assert status["stage"] == "cancelled" and status["cancel_reason"] == reason
    assert all(li["cancelled"] == li["qty"] - li["shipped"] for li in status["lines"])
    assert flow.refunds(order_id) == (
        refunds if refunds is not None else [] if refund is None else [refund]
    )
    notices = [e for e in flow.events(order_id) if e["type"] == "buyer_cancel_notice"]
    assert [n["payload"]["reason"] for n in notices] == [reason]
    return status


def hot_stock(flow: Flow) -> dict[str, tuple[int, int]]:
    return {wh: (row["on_hand"], row["reserved"]) for wh, row in flow.stock(HOT).items()}


# --------------------------------------------------------- before allocation


async def test_cancel_while_awaiting_the_buyer_refunds_nothing_of_a_cash_on_delivery_order(
    flow: Flow,
) -> None:
    oid = flow.oid("CB-1")
    await flow.start(make_order(oid, [(HOT, 2)], payment="cod"))
    assert (await flow.stage(oid, "awaiting_buyer")).waiting_for == "buyer"
    await cancel(flow, oid, refund=None)
    assert hot_stock(flow) == {"HZ": (5, 0), "SH": (5, 0)}


async def test_cancel_while_awaiting_payment_refunds_nothing(flow: Flow) -> None:
    oid = flow.oid("CP-1")
    await flow.start(make_order(oid, [(HOT, 2)], payment="pending"))
    assert (await flow.stage(oid, "awaiting_payment")).waiting_for == "payment"
    status = await cancel(flow, oid, refund=None)
    assert status["refund"] is None


# --------------------------------------------------------- short of stock


async def test_cancel_while_backordered_leaves_the_queue_and_refunds_in_full(flow: Flow) -> None:
    oid = flow.oid("CK-1")
    load_sample(flow.factory, {(HOT, "HZ"): 1, (HOT, "SH"): 0})
    await flow.start(make_order(oid, [(HOT, 3)]))
    state = await flow.stage(oid, "backordered")
    assert (state.lines[0].reserved, state.lines[0].backordered) == (1, 2)

    await cancel(flow, oid, refund=Decimal("105.00"))
    assert hot_stock(flow) == {"HZ": (1, 0), "SH": (0, 0)}
    # The released mug goes to the next order, not back to a cancelled queue entry.
    assert (await flow.restock(HOT, "HZ", 2)).served == []


@pytest.mark.parametrize("db", ["postgres"], indirect=True)
async def test_cancel_while_awaiting_transfer_returns_the_goods_to_the_source(flow: Flow) -> None:
    oid = flow.oid("CT-1")
    load_sample(flow.factory, {(HOT, "HZ"): 1, (HOT, "SH"): 5})
    order = make_order(oid, [(SHIRT, 2), (HOT, 3)], shortage_policy="transfer")
    await flow.start(order, fast_policy(split_allowed=False))
    await flow.stage(oid, "awaiting_transfer")
    assert hot_stock(flow) == {"HZ": (1, 1), "SH": (3, 0)}

    await cancel(flow, oid, refund=order.total)
    assert [t.status for t in flow.transfers(oid)] == ["cancelled"]
    assert hot_stock(flow) == {"HZ": (1, 0), "SH": (5, 0)}
    assert flow.stock(SHIRT)["HZ"]["reserved"] == 0


# -------------------------------------------------------------- approval


async def test_cancel_while_awaiting_approval_releases_the_reservation(flow: Flow) -> None:
    oid = flow.oid("CA-1")
    policy = fast_policy()
    policy.approval.threshold = Decimal("50.00")
    await flow.start(make_order(oid, [(HOT, 2)]), policy)
    state = await flow.stage(oid, "awaiting_approval")
    assert "needs_approval" in state.flags and state.lines[0].reserved == 2
    assert hot_stock(flow)["HZ"] == (5, 2)

    await cancel(flow, oid, refund=Decimal("80.00"))
    assert hot_stock(flow) == {"HZ": (5, 0), "SH": (5, 0)}


# ------------------------------------------------------------- warehouse


@pytest.mark.parametrize(
    ("order_id", "signals", "stage"),
    [
        ("CR-1", [], "released"),
        ("CR-2", ["picked"], "picking"),
        ("CR-3", ["picked", "packed"], "packed"),
    ],
)
async def test_cancel_at_the_warehouse_withdraws_the_pick_list(
    flow: Flow, order_id: str, signals: list[str], stage: str
) -> None:
    order_id = flow.oid(order_id)
    await flow.start(make_order(order_id, [(HOT, 2)]))
    await flow.stage(order_id, "released")
    for name in signals:
        await flow.signal(order_id, name, {})
    await flow.stage(order_id, stage)

    status = await cancel(flow, order_id, refund=Decimal("80.00"))
    assert [s["status"] for s in status["shipments"]] == ["cancelled"]
    withdrawn = [e for e in flow.events(order_id) if e["type"] == "pick_list_withdrawn"]
    assert [e["payload"]["shipment_id"] for e in withdrawn] == [f"{order_id}-1"]
    assert hot_stock(flow) == {"HZ": (5, 0), "SH": (5, 0)}


async def test_cancel_of_a_partly_shipped_order_refunds_only_the_unshipped_share(
    flow: Flow,
) -> None:
    oid = flow.oid("CS-1")
    load_sample(flow.factory, {(HOT, "HZ"): 2, (HOT, "SH"): 0})
    # 3 x 35.00 = 105.00, MINUS20 takes 20.00, shipping 10.00 + 2.00 for the second kg: 97.00 paid.
    order = make_order(oid, [(HOT, 3)], coupon="MINUS20", shortage_policy="partial")
    assert order.total == Decimal("97.00")
    await flow.start(order)
    await flow.stage(oid, "released")
    await flow.ship_all(oid)
    state = await flow.stage(oid, "backordered")
    assert (state.lines[0].shipped, state.lines[0].backordered) == (2, 1)

    # Two of three mugs shipped: they keep 97.00 * 2/3 = 64.67; the buyer gets 32.33 back.
    status = await cancel(flow, oid, refund=Decimal("32.33"))
    assert (status["lines"][0]["shipped"], status["lines"][0]["cancelled"]) == (2, 1)
    assert status["refund"] == {"amount": "32.33", "status": "requested"}
    assert hot_stock(flow)["HZ"] == (0, 0)


async def test_cancel_with_one_of_two_shipments_gone_withdraws_the_other_and_refunds_it(
    flow: Flow,
) -> None:
    oid = flow.oid("CS-2")
    load_sample(flow.factory, {(HOT, "HZ"): 2, (HOT, "SH"): 1})
    await flow.start(make_order(oid, [(HOT, 3)]))  # 105.00, split over HZ (2) and SH (1)
    state = await flow.until(oid, lambda s: len(s.shipments) == 2, "released twice")
    hz = next(s.shipment_no for s in state.shipments if s.warehouse == "HZ")
    await flow.signal(oid, "shipped", {"shipment": hz, "carrier": "SF", "tracking_no": "SF0001"})
    await flow.until(oid, lambda s: s.lines[0].shipped == 2, "half shipped")

    status = await cancel(flow, oid, refund=Decimal("35.00"))
    assert sorted((s["warehouse"], s["status"]) for s in status["shipments"]) == [
        ("HZ", "shipped"),
        ("SH", "cancelled"),
    ]
    assert (status["lines"][0]["shipped"], status["lines"][0]["cancelled"]) == (2, 1)
    assert "pick_list_withdrawn" in flow.event_types(oid)
    assert hot_stock(flow) == {"HZ": (0, 0), "SH": (1, 0)}


async def test_cancel_after_a_partial_refund_refunds_only_what_is_still_owed(flow: Flow) -> None:
    oid = flow.oid("CS-3")
    load_sample(flow.factory, {(HOT, "HZ"): 2, (HOT, "SH"): 1})
    # 5 mugs for 157.50 (31.50 each after SAVE10); 3 in stock over two warehouses, 2 refunded at once.
    await flow.start(
        make_order(oid, [(HOT, 5)], coupon="SAVE10", shortage_policy="partial"),
        fast_policy(partial_remainder="refund"),
    )
    state = await flow.until(oid, lambda s: len(s.shipments) == 2, "released twice")
    assert flow.refunds(oid) == [Decimal("63.00")]
    hz = next(s.shipment_no for s in state.shipments if s.warehouse == "HZ")
    await flow.signal(oid, "shipped", {"shipment": hz, "carrier": "SF", "tracking_no": "SF0002"})
    await flow.until(oid, lambda s: s.lines[0].shipped == 2, "half shipped")

    # Two mugs left, two were refunded already: the third (31.50) is what is still owed.
    await cancel(flow, oid, refund=None, refunds=[Decimal("63.00"), Decimal("31.50")])


async def test_cancel_after_shipping_is_refused_with_a_reason(flow: Flow) -> None:
    oid = flow.oid("CX-1")
    policy = fast_policy()
    policy.pick.complete_on = "delivered"
    await flow.start(make_order(oid, [(HOT, 2)]), policy)
    await flow.stage(oid, "released")
    await flow.ship_all(oid)
    await flow.stage(oid, "shipped")

    refusal = await flow.refusal(oid, "cancel", {"reason": "too late"})
    assert refusal is not None and "shipped order cannot be cancelled" in refusal
    await flow.handle(oid).signal("cancel", {"reason": "too late"})  # sent anyway, by hand
    status = await flow.persisted(
        oid, lambda st: any(e["type"] == "signal_rejected" for e in st["events"])
    )
    rejected = next(e for e in status["events"] if e["type"] == "signal_rejected")
    assert rejected["signal"] == "cancel" and "cannot be cancelled" in rejected["reason"]

    await flow.signal(oid, "delivered", {})
    assert (await flow.finish(oid)).stage == "completed"
    status = flow.assert_settled(oid)
    assert status["lines"][0]["shipped"] == 2 and flow.refunds(oid) == []
    assert "buyer_cancel_notice" not in flow.event_types(oid)


# ------------------------------------------------------------ in flight


@pytest.mark.parametrize("db", ["sqlite", "postgres"], indirect=True)
async def test_a_cancel_sent_right_after_start_is_handled_after_the_running_step(
    flow: Flow,
) -> None:
    oid = flow.oid("CF-1")
    order = make_order(oid, [(HOT, 2)])
    handle = await flow.start(order, Policy(search_attributes=True))
    await handle.signal("cancel", {"reason": "changed my mind"})  # before allocation can finish

    outcome = await flow.finish(oid)
    assert (outcome.stage, outcome.reason) == ("cancelled", "changed my mind")
    status = flow.assert_settled(oid)
    assert status["lines"][0]["cancelled"] == 2
    assert flow.refunds(oid) == [Decimal("80.00")]
    assert "buyer_cancel_notice" in flow.event_types(oid)
    assert hot_stock(flow) == {"HZ": (5, 0), "SH": (5, 0)}
    # Whatever reached the warehouse before the cancel was seen was withdrawn again.
    types = flow.event_types(oid)
    assert types.count("pick_list") == types.count("pick_list_withdrawn")
    assert all(s["status"] == "cancelled" for s in status["shipments"])
