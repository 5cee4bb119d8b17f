"""OrderWorkflow on the time-skipping server when things do not fit: signals for the wrong stage
or with bad payloads, cancels from every stage and during a step, and the replay of a whole run.

Real workflows, real activities, a real SQLite database per test; time is skipped.
"""

from __future__ import annotations

import asyncio
import threading
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from temporalio import activity
from temporalio.worker import Replayer

from activities.orders import OrderActivities
from models.db import transaction
from models.payloads import CheckOrderInput, CheckOutcome
from models.tables import Backorder, Reservation
from tests.harness.codec_keys import converter
from tests.harness.documents import order_doc, short_policy
from tests.harness.orders import (
    PHONE,
    PRECISE,
    VAGUE,
    shanghai_phone_order,
    ship_everything,
    split_order,
    tea_order,
)
from tests.harness.shop import PATIENCE, H, Shop, running_shop
from workflows.order import OrderWorkflow

# ------------------------------------------------------------------ 8. signals that do not fit


async def refuse(shop: Shop, handle: Any, oid: str, name: str, payload: Any, reason: str) -> None:
    """The refusal query names the reason first; the signal is then recorded as rejected with it."""
    assert await shop.refusal(handle, name, payload) == reason
    before = len(shop.timeline(oid, "signal_rejected"))
    await handle.signal(name, payload)
    status = await shop.status_when(
        oid,
        lambda s: len([e for e in s["events"] if e["type"] == "signal_rejected"]) > before,
        f"{name} rejected",
    )
    last = [e for e in status["events"] if e["type"] == "signal_rejected"][-1]
    assert (last["signal"], last["reason"]) == (name, reason)


def same(a: Any, b: Any) -> bool:
    keep = {
        "stage",
        "waiting_for",
        "stage_since",
        "flags",
        "findings",
        "document",
        "lines",
        "shipments",
        "refund_amount",
        "cancel_reason",
        "held_from",
        "decision",
    }
    return a.model_dump(include=keep) == b.model_dump(include=keep)


async def test_signals_that_do_not_fit_are_recorded_and_change_nothing(ts_env, sqlite_url):
    async with running_shop(ts_env, sqlite_url) as shop:
        doc = order_doc("bad-signals", address={"detail": VAGUE})
        oid = doc["order_id"]
        handle = await shop.start(doc)
        await shop.at_stage(handle, "awaiting_buyer", "buyer")
        await shop.status_when(oid, lambda s: len(s["contacts"]) == 1, "the first message")
        before = await shop.state(handle)

        await refuse(
            shop,
            handle,
            oid,
            "approve",
            {},
            "the order is awaiting_buyer, not waiting for approval",
        )
        await refuse(
            shop,
            handle,
            oid,
            "pick_exception",
            {"sku": "TSHIRT-RED-M", "qty": "abc", "reason": "damaged"},
            "qty: Input should be a valid integer",
        )
        await refuse(
            shop,
            handle,
            oid,
            "buyer_confirmed",
            {"detail": PRECISE, "colour": "red"},
            "colour: Extra inputs are not permitted",
        )
        await refuse(shop, handle, oid, "teleport", {"to": "moon"}, "unknown signal 'teleport'")
        await refuse(
            shop,
            handle,
            oid,
            "shipped",
            {"carrier": "SF", "tracking_no": "SF1"},
            "the order is awaiting_buyer: nothing is released to the warehouse",
        )
        await refuse(shop, handle, oid, "cancel", {}, "reason: Field required")

        after = await shop.state(handle)
        assert same(before, after)
        assert len(shop.contacts(oid)) == 1
        assert shop.timeline(oid, "correction") == []

        await handle.signal("buyer_confirmed", {"detail": PRECISE})
        await shop.at_stage(handle, "released", "warehouse")
        await ship_everything(shop, handle)
        assert (await handle.result()).stage == "completed"


async def test_bad_warehouse_signals_are_refused_per_shipment(ts_env, sqlite_url):
    async with running_shop(ts_env, sqlite_url) as shop:
        doc = split_order("bad-shipped")
        oid = doc["order_id"]
        handle = await shop.start(doc)
        released = await shop.at_stage(handle, "released", "warehouse")
        assert [(s.shipment_no, s.warehouse) for s in released.shipments] == [(1, "HZ"), (2, "SH")]

        await refuse(
            shop,
            handle,
            oid,
            "shipped",
            {"shipment": 1},
            "a shipped event needs a carrier and a tracking number",
        )
        await refuse(
            shop,
            handle,
            oid,
            "shipped",
            {"shipment": 1, "carrier": "PIGEON", "tracking_no": "P1"},
            "carrier 'PIGEON' is not one of SF, ZTO, YTO, STO, YUNDA, JD, EMS, DEMO",
        )
        await refuse(
            shop,
            handle,
            oid,
            "shipped",
            {"carrier": "SF", "tracking_no": "SF1"},
            "2 shipments are open: name one with --shipment",
        )
        await refuse(
            shop,
            handle,
            oid,
            "shipped",
            {"shipment": 1, "carrier": "SF", "tracking_no": "SF 1"},
            "tracking_no: Value error, must be letters and digits",
        )
        assert same(released, await shop.state(handle))

        await handle.signal("shipped", {"shipment": 1, "carrier": "SF", "tracking_no": "SF111"})
        half = await shop.until(
            handle, lambda s: s.shipments[0].status == "shipped", "shipment 1 shipped"
        )
        assert half.stage == "released" and [li.shipped for li in half.lines] == [1, 0]
        await refuse(
            shop,
            handle,
            oid,
            "shipped",
            {"shipment": 1, "carrier": "SF", "tracking_no": "SF222"},
            "shipment 1 is already shipped",
        )
        await refuse(shop, handle, oid, "picked", {"shipment": 3}, "no open shipment 3")
        assert same(half, await shop.state(handle))
        assert len(shop.outbox(oid, "tracking_to_platform")) == 1

        await handle.signal("shipped", {"shipment": 2, "carrier": "JD", "tracking_no": "JD222"})
        assert (await handle.result()).stage == "completed"
        shipments = shop.status(oid)["shipments"]
        assert [(s["status"], s["tracking_no"]) for s in shipments] == [
            ("shipped", "SF111"),
            ("shipped", "JD222"),
        ]
        shop.assert_invariants(oid)


# ------------------------------------------------------------------ 9. cancel and compensation


def held_reservations(shop: Shop, order_id: str) -> list[Reservation]:
    with transaction(shop.factory) as session:
        stmt = select(Reservation).where(
            Reservation.order_id == order_id, Reservation.status == "held"
        )
        return list(session.execute(stmt).scalars())


async def test_cancel_from_every_waiting_stage_releases_stock_and_refunds_what_was_paid(
    ts_env, sqlite_url
):
    async with running_shop(ts_env, sqlite_url) as shop:
        cases = {
            "awaiting_buyer": order_doc(
                "c-buyer", address={"detail": VAGUE}, buyer={"phone": "13812345671"}
            ),
            "backordered": tea_order("c-short", "2026-11-26T10:00:00+08:00", "13812345672"),
            "awaiting_approval": shanghai_phone_order("c-approval"),
            "released": order_doc("c-released", buyer={"phone": "13812345674"}),
        }
        handles = {stage: await shop.start(doc) for stage, doc in cases.items()}
        for stage, handle in handles.items():
            await shop.at_stage(handle, stage)
        assert shop.stock("TSHIRT-RED-M") == (100, 2) and shop.stock(PHONE, "SH") == (5, 1)

        for stage, handle in handles.items():
            doc = cases[stage]
            oid = doc["order_id"]
            assert (
                await shop.refusal(handle, "cancel", {"reason": "buyer changed their mind"}) is None
            )
            await handle.signal("cancel", {"reason": "buyer changed their mind", "by": "clerk"})
            final = await shop.ended(handle)
            assert (final.stage, final.cancel_reason) == ("cancelled", "buyer changed their mind")
            status = shop.status(oid)
            paid = doc["payment"]["amount"]
            assert status["refund"] == {"amount": paid, "status": "requested"}, stage
            assert [r.amount for r in shop.refunds(oid)] == [Decimal(paid)]
            assert held_reservations(shop, oid) == []
            assert all(
                li["cancelled"] == li["qty"] and li["reserved"] == 0 for li in status["lines"]
            )
            assert len(shop.outbox(oid, "buyer_cancel_notice")) == 1
            withdrawn = shop.outbox(oid, "pick_list_withdrawn")
            assert len(withdrawn) == (1 if stage == "released" else 0), stage
            if stage == "released":
                assert status["shipments"][0]["status"] == "cancelled"
            shop.assert_invariants(oid)
        assert shop.stock("TSHIRT-RED-M") == (100, 0) and shop.stock(PHONE, "SH") == (5, 0)
        with transaction(shop.factory) as session:
            queue = session.execute(
                select(Backorder).where(Backorder.order_id == cases["backordered"]["order_id"])
            )
            assert [b.status for b in queue.scalars()] == ["cancelled"]


async def test_cancel_after_shipping_is_refused(ts_env, sqlite_url):
    async with running_shop(ts_env, sqlite_url) as shop:
        doc = order_doc("c-late")
        oid = doc["order_id"]
        policy = short_policy().model_copy(deep=True)
        policy.pick.complete_on = "delivered"
        handle = await shop.start(doc, policy)
        await shop.at_stage(handle, "released", "warehouse")
        await ship_everything(shop, handle)
        await shop.at_stage(handle, "shipped", None)

        await refuse(
            shop,
            handle,
            oid,
            "cancel",
            {"reason": "too late"},
            "the order is shipped: a shipped order cannot be cancelled",
        )
        assert shop.refunds(oid) == []
        await handle.signal("delivered", {})
        assert (await handle.result()).stage == "completed"
        status = shop.status(oid)
        assert status["refund"] is None and status["lines"][0]["shipped"] == 2
        shop.assert_invariants(oid)


async def test_a_cancel_during_a_running_step_still_compensates(ts_env, sqlite_url):
    """The cancel lands while the step that reserves (the check, for a clean order) holds the
    database: its reservation is undone afterwards."""
    started, go = threading.Event(), threading.Event()
    calls: list[str] = []

    def slow_allocate(factory: Any) -> list[Any]:
        real = OrderActivities(factory)

        @activity.defn(name="check_order")
        def check_order(inp: CheckOrderInput) -> CheckOutcome:
            assert inp.reserve is not None  # a clean order is reserved by its check
            calls.append(inp.reserve.op_key)
            started.set()
            assert go.wait(PATIENCE)
            return real.check_order(inp)

        return [check_order]

    async with running_shop(ts_env, sqlite_url, fakes=slow_allocate) as shop:
        doc = order_doc("c-inflight")
        oid = doc["order_id"]
        handle = await shop.start(doc)
        assert await asyncio.to_thread(started.wait, PATIENCE)
        await handle.signal("cancel", {"reason": "changed mind mid-way"})
        go.set()
        outcome = await asyncio.wait_for(handle.result(), PATIENCE)
        assert (outcome.stage, outcome.reason) == ("cancelled", "changed mind mid-way")
        assert len(calls) == 1
        assert held_reservations(shop, oid) == []
        assert shop.stock("TSHIRT-RED-M") == (100, 0)
        assert shop.status(oid)["refund"] == {"amount": "118.00", "status": "requested"}
        # whatever reached the warehouse before the cancel was seen has been withdrawn
        assert len(shop.outbox(oid, "pick_list")) == len(shop.outbox(oid, "pick_list_withdrawn"))
        assert all(s["status"] == "cancelled" for s in shop.status(oid)["shipments"])
        shop.assert_invariants(oid)


# ------------------------------------------------------------------ 10. replay


async def test_a_completed_history_replays_without_nondeterminism(ts_env, sqlite_url):
    async with running_shop(ts_env, sqlite_url) as shop:
        doc = order_doc("replay", address={"detail": VAGUE})
        handle = await shop.start(doc)
        await shop.at_stage(handle, "awaiting_buyer", "buyer")
        await handle.signal("approve", {})  # rejected: recorded, changes nothing
        await handle.signal("buyer_confirmed", {"detail": PRECISE, "delivery_window": "9-18"})
        await shop.at_stage(handle, "released", "warehouse")
        await shop.skip(3 * H)  # the pick reminder fires
        await shop.until(handle, lambda s: "pick_overdue" in s.flags, "pick_overdue")
        await ship_everything(shop, handle)
        assert (await handle.result()).stage == "completed"

        history = await handle.fetch_history()
        result = await Replayer(
            workflows=[OrderWorkflow], data_converter=converter()
        ).replay_workflow(history)
        assert result.replay_failure is None
        assert len(history.events) > 20
