"""OrderWorkflow and RestockWorkflow down each path on the time-skipping server: the clean path,
the buyer asked, payment, shortage and restock, approval, the pick SLA.

Real workflows, real activities, a real SQLite database per test; the buyer,
the operator and the warehouse are played by signals; time is skipped.
Every order a test starts must end Completed (checked when its shop closes).
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from models.db import transaction
from models.enums import TimeoutAction
from models.tables import Backorder
from tests.harness.documents import order_doc, short_policy
from tests.harness.orders import (
    MARGIN,
    PHONE,
    PRECISE,
    STILL_VAGUE,
    TEA,
    VAGUE,
    replay,
    shanghai_phone_order,
    ship_everything,
    tea_order,
)
from tests.harness.shop import H, running_shop

# ------------------------------------------------------------------ 1. the clean path


async def test_clean_paid_order_is_released_then_shipped_and_completed(ts_env, sqlite_url):
    async with running_shop(ts_env, sqlite_url) as shop:
        doc = order_doc("clean")
        oid = doc["order_id"]
        handle = await shop.start(doc)

        released = await shop.at_stage(handle, "released", "warehouse")
        assert released.flags == [] and released.findings == []
        assert [(li.reserved, li.backordered) for li in released.lines] == [(2, 0)]
        assert [(s.warehouse, s.status) for s in released.shipments] == [("HZ", "released")]
        assert shop.stock("TSHIRT-RED-M") == (100, 2)

        await handle.signal("picked", {})
        await shop.at_stage(handle, "picking", "warehouse")
        await handle.signal("packed", {"parcels": 1, "weight_g": 600})
        await shop.at_stage(handle, "packed", "warehouse")
        await handle.signal("shipped", {"carrier": "SF", "tracking_no": "SF1234567890"})
        outcome = await handle.result()

        assert outcome.stage == "completed" and outcome.reason is None
        status = shop.status(oid)
        assert status["stage"] == "completed" and status["waiting_for"] is None
        assert status["lines"] == [
            {
                "line_no": 1,
                "sku": "TSHIRT-RED-M",
                "qty": 2,
                "reserved": 0,
                "shipped": 2,
                "backordered": 0,
                "cancelled": 0,
            }
        ]
        assert [(s["status"], s["carrier"], s["tracking_no"]) for s in status["shipments"]] == [
            ("shipped", "SF", "SF1234567890")
        ]
        stages = [e["stage"] for e in status["events"] if e["type"] == "stage"]
        assert stages == [
            "checking",
            "allocating",
            "reviewing",
            "released",
            "picking",
            "packed",
            "shipped",
            "completed",
        ]
        assert status["refund"] is None and status["contacts"] == []
        types = {e.type for e in shop.outbox(oid)}
        assert {
            "pick_list",
            "tracking_to_platform",
            "buyer_shipped_notice",
            "status_change",
        } <= types
        # the reservation was consumed: two fewer on hand, nothing held
        assert shop.stock("TSHIRT-RED-M") == (98, 0)
        shop.assert_invariants(oid)


# ------------------------------------------------------------------ 2. asking the buyer


async def test_vague_address_is_asked_until_the_buyer_gives_a_door_number(ts_env, sqlite_url):
    async with running_shop(ts_env, sqlite_url) as shop:
        doc = order_doc("vague", address={"detail": VAGUE})
        oid = doc["order_id"]
        handle = await shop.start(doc)

        waiting = await shop.at_stage(handle, "awaiting_buyer", "buyer")
        assert [f.code for f in waiting.findings] == ["address_vague"]
        assert "address_vague" in waiting.flags
        await shop.status_when(oid, lambda s: len(s["contacts"]) == 1, "the first message")
        contacts = shop.contacts(oid)
        assert len(contacts) == 1 and contacts[0].channel == "im" and contacts[0].reminder == 0
        assert "门牌号" in contacts[0].text  # it asks for exactly the missing door number
        assert len(shop.outbox(oid, "buyer_message")) == 1

        # The buyer answers, but still without a number: checked again and asked again.
        await handle.signal(
            "buyer_confirmed",
            {"detail": STILL_VAGUE, "note": "called, gave the side of the street"},
        )
        await shop.status_when(oid, lambda s: len(s["contacts"]) == 2, "a second contact")
        again = await shop.at_stage(handle, "awaiting_buyer", "buyer")
        assert again.document.address.detail == STILL_VAGUE
        assert [f.code for f in again.findings] == ["address_vague"]
        first_answer = await shop.status_when(
            oid, lambda s: s["contacts"][0]["outcome"] == "confirmed", "the answer"
        )
        assert first_answer["contacts"][0]["note"] == "called, gave the side of the street"

        await handle.signal(
            "buyer_confirmed",
            {"detail": PRECISE, "parcel_locker": True, "note": "door number given"},
        )
        released = await shop.at_stage(handle, "released", "warehouse")
        assert released.document.address.detail == PRECISE
        assert "address_vague" not in released.flags and released.findings == []

        status = await shop.status_when(oid, lambda s: s["stage"] == "released", "the release")
        corrections = [e for e in status["events"] if e["type"] == "correction"]
        details = [(c["old"], c["new"]) for c in corrections if c["field"] == "address.detail"]
        # old → new, the detail masked in the timeline
        assert details == [("文***段", "文*****侧"), ("文*****侧", "文三路*******01室")]
        signals = [e for e in status["events"] if e["type"] == "signal"]
        assert [e["detail"] for e in signals] == ["文*****侧", "文三路*******01室"]
        remarks = [c for c in corrections if c["field"] == "remarks"]
        assert remarks == [
            {
                "at": remarks[0]["at"],
                "type": "correction",
                "field": "remarks",
                "old": None,
                "new": "放快递柜 (parcel locker)",
            }
        ]
        outcomes = [
            (e["contact_no"], e["note"]) for e in status["events"] if e["type"] == "contact_outcome"
        ]
        assert outcomes == [(1, "called, gave the side of the street"), (2, "door number given")]
        # each answer is recorded against the message it answered
        assert [(c["outcome"], c["note"]) for c in status["contacts"]] == [
            ("confirmed", "called, gave the side of the street"),
            ("confirmed", "door number given"),
        ]
        assert len(shop.outbox(oid, "buyer_message")) == 2
        # the special request travels to the warehouse on the pick list
        assert status["remarks"] == "放快递柜 (parcel locker)"
        assert status["shipments"][0]["pick_list"]["remarks"] == ["放快递柜 (parcel locker)"]
        (pick_list,) = shop.outbox(oid, "pick_list")
        assert pick_list.payload["remarks"] == ["放快递柜 (parcel locker)"]

        await ship_everything(shop, handle)
        assert (await handle.result()).stage == "completed"
        shop.assert_invariants(oid)
        await replay(handle)


async def test_reminders_follow_the_schedule_then_the_timeout_cancels(ts_env, sqlite_url):
    async with running_shop(ts_env, sqlite_url) as shop:
        doc = order_doc("remind", address={"detail": VAGUE})
        oid = doc["order_id"]
        policy = short_policy(remind_every=H, max_reminders=2, buyer_timeout=4 * H)
        handle = await shop.start(doc, policy)
        await shop.at_stage(handle, "awaiting_buyer", "buyer")
        await shop.status_when(oid, lambda s: len(s["contacts"]) == 1, "the first message")

        await shop.skip(H + MARGIN)
        await shop.status_when(oid, lambda s: len(s["contacts"]) == 2, "the first reminder")
        await shop.skip(H + MARGIN)
        await shop.status_when(oid, lambda s: len(s["contacts"]) == 3, "the second reminder")
        # no third reminder: the next thing due is the deadline, 4 h after the first message
        await shop.skip(H + MARGIN)
        still = await shop.state(handle)
        assert (still.stage, still.waiting_for) == ("awaiting_buyer", "buyer")

        await shop.skip(H + MARGIN)
        final = await shop.ended(handle)
        assert final.stage == "cancelled" and "buyer_timeout" in (final.cancel_reason or "")
        status = shop.status(oid)
        assert status["stage"] == "cancelled" and "buyer_timeout" in status["flags"]
        assert [(c["no"], c["reminder"]) for c in status["contacts"]] == [(1, 0), (2, 1), (3, 2)]
        assert len(shop.outbox(oid, "buyer_message")) == 3
        timeouts = [e for e in status["events"] if e["type"] == "timeout"]
        assert [(t["waiting_for"], t["action"]) for t in timeouts] == [("buyer", "cancel")]
        # the money goes back: the order was paid
        assert status["refund"] == {"amount": "118.00", "status": "requested"}
        shop.assert_invariants(oid)
        await replay(handle)


async def test_buyer_timeout_under_hold_parks_the_order_for_an_operator(ts_env, sqlite_url):
    async with running_shop(ts_env, sqlite_url) as shop:
        policy = short_policy(
            max_reminders=0, buyer_timeout=2 * H, buyer_timeout_action=TimeoutAction.HOLD
        )
        resumed_doc = order_doc("hold-resume", address={"detail": VAGUE})
        answered_doc = order_doc(
            "hold-answer", address={"detail": VAGUE}, buyer={"phone": "13812345679"}
        )
        resumed = await shop.start(resumed_doc, policy)
        answered = await shop.start(answered_doc, policy)
        for handle in (resumed, answered):
            await shop.at_stage(handle, "awaiting_buyer", "buyer")

        await shop.skip(2 * H + MARGIN)
        for handle, doc in ((resumed, resumed_doc), (answered, answered_doc)):
            held = await shop.at_stage(handle, "on_hold", "operator")
            assert held.held_from == "awaiting_buyer" and "buyer_timeout" in held.flags
            (event,) = await shop.outbox_when(doc["order_id"], "on_hold", 1)
            assert event.payload == {"held_from": "awaiting_buyer", "reason": "buyer_timeout"}
            assert len(shop.contacts(doc["order_id"])) == 1  # holding is not asking

        # An operator resumes one: it asks the buyer again from the start of the schedule.
        assert await shop.refusal(resumed, "resume", {"note": "try once more"}) is None
        await resumed.signal("resume", {"note": "try once more"})
        back = await shop.at_stage(resumed, "awaiting_buyer", "buyer")
        assert back.held_from is None and "buyer_timeout" not in back.flags
        await shop.status_when(
            resumed_doc["order_id"], lambda s: len(s["contacts"]) == 2, "a new message"
        )
        await resumed.signal("buyer_confirmed", {"detail": PRECISE})
        await shop.at_stage(resumed, "released", "warehouse")

        # The other buyer answers while the order is held: that takes it on just as well.
        assert await shop.refusal(answered, "buyer_confirmed", {"detail": PRECISE}) is None
        await answered.signal("buyer_confirmed", {"detail": PRECISE, "note": "answered late"})
        ready = await shop.at_stage(answered, "released", "warehouse")
        assert ready.document.address.detail == PRECISE
        assert len(shop.contacts(answered_doc["order_id"])) == 1

        for handle in (resumed, answered):
            await ship_everything(shop, handle)
            assert (await handle.result()).stage == "completed"
        shop.assert_invariants(resumed_doc["order_id"], answered_doc["order_id"])


# ------------------------------------------------------------------ 4. payment


async def test_unpaid_order_waits_for_payment_and_is_cancelled_when_the_window_closes(
    ts_env, sqlite_url
):
    async with running_shop(ts_env, sqlite_url) as shop:
        unpaid = {"status": "pending", "amount": None, "transaction_id": None}
        paid_later_doc = order_doc("pay-later", payment=unpaid)
        never_doc = order_doc("pay-never", payment=unpaid, buyer={"phone": "13812345679"})
        policy = short_policy(unpaid_window=3 * H)
        paid_later = await shop.start(paid_later_doc, policy)
        never = await shop.start(never_doc, policy)
        for handle in (paid_later, never):
            waiting = await shop.at_stage(handle, "awaiting_payment", "payment")
            assert [f.code for f in waiting.findings] == ["unpaid"]
            assert all(
                li.reserved == 0 for li in waiting.lines
            )  # nothing reserved for unpaid orders

        await paid_later.signal("payment_received", {"amount": "118.00", "transaction_id": "TXN-1"})
        released = await shop.at_stage(paid_later, "released", "warehouse")
        assert released.document.payment.status == "paid"
        assert released.document.payment.transaction_id == "TXN-1"
        assert "unpaid" not in released.flags

        await shop.skip(3 * H + MARGIN)
        final = await shop.ended(never)
        assert final.stage == "cancelled" and final.cancel_reason == "unpaid after 3:00:00"
        status = shop.status(never_doc["order_id"])
        assert status["stage"] == "cancelled" and "payment_timeout" in status["flags"]
        assert status["refund"] is None and shop.refunds(never_doc["order_id"]) == []
        assert shop.outbox(never_doc["order_id"], "refund_request") == []
        assert len(shop.outbox(never_doc["order_id"], "buyer_cancel_notice")) == 1

        await ship_everything(shop, paid_later)
        assert (await paid_later.result()).stage == "completed"
        shop.assert_invariants(paid_later_doc["order_id"], never_doc["order_id"])


# ------------------------------------------------------------------ 5. shortage and restock


async def test_restock_serves_waiting_orders_first_come_first_served(ts_env, sqlite_url):
    async with running_shop(ts_env, sqlite_url) as shop:
        # started latest first: order time, not arrival at the worker, decides who is served
        third = tea_order("tea-3", "2026-11-26T10:30:00+08:00", "13812345673")
        second = tea_order("tea-2", "2026-11-26T10:20:00+08:00", "13812345672")
        first = tea_order("tea-1", "2026-11-26T10:10:00+08:00", "13812345671")
        handles = {}
        for doc in (third, second, first):
            handles[doc["order_id"]] = await shop.start(doc)
        for handle in handles.values():
            short = await shop.at_stage(handle, "backordered", "stock")
            assert [(li.reserved, li.backordered) for li in short.lines] == [(0, 1)]

        result = await shop.restock(TEA, 2)
        assert result.error is None
        assert [(s["order_id"], s["qty"]) for s in result.served] == [
            (first["order_id"], 1),
            (second["order_id"], 1),
        ]
        for doc in (first, second):
            ready = await shop.at_stage(handles[doc["order_id"]], "released", "warehouse")
            assert [(li.reserved, li.backordered) for li in ready.lines] == [(1, 0)]
        assert (await shop.state(handles[third["order_id"]])).stage == "backordered"
        assert shop.stock(TEA) == (2, 2)
        restocked = await shop.status_when(
            first["order_id"], lambda s: s["stage"] == "released", "the release"
        )
        signals = [e for e in restocked["events"] if e["type"] == "signal"]
        assert [(e["signal"], e["qty"], e["warehouse"]) for e in signals] == [
            ("restock_arrived", 1, "HZ")
        ]

        # one more unit: now the third in line gets it
        result = await shop.restock(TEA, 1)
        assert [s["order_id"] for s in result.served] == [third["order_id"]]
        await shop.at_stage(handles[third["order_id"]], "released", "warehouse")
        for handle in handles.values():
            await ship_everything(shop, handle)
            assert (await handle.result()).stage == "completed"
        assert shop.stock(TEA) == (0, 0)
        shop.assert_invariants(first["order_id"], second["order_id"], third["order_id"])


async def test_backorder_deadline_cancels_or_holds_by_policy(ts_env, sqlite_url):
    async with running_shop(ts_env, sqlite_url) as shop:
        cancel_doc = tea_order("tea-cancel", "2026-11-26T10:10:00+08:00", "13812345671")
        hold_doc = tea_order("tea-hold", "2026-11-26T10:20:00+08:00", "13812345672")
        cancelled = await shop.start(cancel_doc, short_policy(backorder_deadline=24 * H))
        held = await shop.start(
            hold_doc,
            short_policy(backorder_deadline=24 * H, stock_timeout_action=TimeoutAction.HOLD),
        )
        for handle in (cancelled, held):
            await shop.at_stage(handle, "backordered", "stock")

        await shop.skip(24 * H + MARGIN)
        final = await shop.ended(cancelled)
        assert final.stage == "cancelled" and "backorder_timeout" in (final.cancel_reason or "")
        status = shop.status(cancel_doc["order_id"])
        assert "backorder_timeout" in status["flags"]
        assert status["refund"] == {"amount": "268.00", "status": "requested"}
        with transaction(shop.factory) as session:
            queue = session.execute(
                select(Backorder).where(Backorder.order_id == cancel_doc["order_id"])
            )
            assert [b.status for b in queue.scalars()] == ["cancelled"]

        parked = await shop.at_stage(held, "on_hold", "operator")
        assert parked.held_from == "backordered" and "backorder_timeout" in parked.flags
        assert [(li.reserved, li.backordered) for li in parked.lines] == [(0, 1)]
        # stock arriving for a held order takes it on: it is still first in line
        result = await shop.restock(TEA, 1)
        assert [s["order_id"] for s in result.served] == [hold_doc["order_id"]]
        ready = await shop.at_stage(held, "released", "warehouse")
        assert "backorder_timeout" not in ready.flags and ready.held_from is None
        await ship_everything(shop, held)
        assert (await held.result()).stage == "completed"
        shop.assert_invariants(cancel_doc["order_id"], hold_doc["order_id"])


# ------------------------------------------------------------------ 6. approval


async def test_high_value_order_waits_for_approval_and_escalates_but_never_approves_itself(
    ts_env, sqlite_url
):
    async with running_shop(ts_env, sqlite_url) as shop:
        approved_doc = shanghai_phone_order("approve")
        rejected_doc = shanghai_phone_order("reject")
        rejected_doc["buyer"]["phone"] = "13812345679"
        policy = short_policy(escalate_approval_after=2 * H)
        approved = await shop.start(approved_doc, policy)
        rejected = await shop.start(rejected_doc, policy)
        for handle in (approved, rejected):
            waiting = await shop.at_stage(handle, "awaiting_approval", "approval")
            assert "needs_approval" in waiting.flags
            assert [li.reserved for li in waiting.lines] == [1]
        assert shop.stock(PHONE, "SH") == (5, 2)

        await shop.skip(2 * H + MARGIN)
        for doc, handle in ((approved_doc, approved), (rejected_doc, rejected)):
            overdue = await shop.until(
                handle, lambda s: "approval_overdue" in s.flags, "overdue for approval"
            )
            assert (overdue.stage, overdue.waiting_for) == ("awaiting_approval", "approval")
            await shop.status_when(
                doc["order_id"], lambda s: "approval_overdue" in s["flags"], "the flag"
            )
            (escalation,) = await shop.outbox_when(doc["order_id"], "approval_escalation", 1)
            assert escalation.payload["escalation"] == 1
            assert any("approval threshold" in r for r in escalation.payload["reasons"])
        # a whole day later it still waits: approval never happens by itself
        await shop.skip(24 * H)
        assert (await shop.state(approved)).stage == "awaiting_approval"
        await shop.status_when(
            approved_doc["order_id"],
            lambda s: len([e for e in s["events"] if e["type"] == "approval_escalation"]) >= 2,
            "more escalations",
        )
        escalations = shop.outbox(approved_doc["order_id"], "approval_escalation")
        assert [e.payload["escalation"] for e in escalations] == list(
            range(1, len(escalations) + 1)
        )

        await approved.signal("approve", {"note": "known customer", "by": "ops-lead"})
        released = await shop.at_stage(approved, "released", "warehouse")
        assert "approval_overdue" not in released.flags and "needs_approval" not in released.flags
        approval = await shop.status_when(
            approved_doc["order_id"], lambda s: s["stage"] == "released", "the release"
        )
        assert [(e["note"], e["by"]) for e in approval["events"] if e["type"] == "approved"] == [
            ("known customer", "ops-lead")
        ]

        await rejected.signal("reject", {"reason": "suspicious", "by": "ops-lead"})
        final = await shop.ended(rejected)
        assert (
            final.stage == "cancelled" and final.cancel_reason == "rejected in review: suspicious"
        )
        status = shop.status(rejected_doc["order_id"])
        assert status["refund"] == {"amount": "6999.00", "status": "requested"}
        assert [r.amount for r in shop.refunds(rejected_doc["order_id"])] == [Decimal("6999.00")]
        assert shop.stock(PHONE, "SH") == (5, 1)  # only the approved one holds a phone now

        await ship_everything(shop, approved)
        assert (await approved.result()).stage == "completed"
        shop.assert_invariants(approved_doc["order_id"], rejected_doc["order_id"])


# ------------------------------------------------------------------ 7. pick SLA


async def test_pick_sla_reminds_then_escalates_and_shipping_clears_the_flags(ts_env, sqlite_url):
    async with running_shop(ts_env, sqlite_url) as shop:
        doc = order_doc("sla")
        oid = doc["order_id"]
        handle = await shop.start(
            doc, short_policy(pick_remind_after=2 * H, pick_escalate_after=6 * H)
        )
        await shop.at_stage(handle, "released", "warehouse")

        await shop.skip(2 * H + MARGIN)
        overdue = await shop.until(handle, lambda s: "pick_overdue" in s.flags, "pick_overdue")
        assert overdue.stage == "released" and "pick_escalated" not in overdue.flags
        await shop.status_when(oid, lambda s: "pick_overdue" in s["flags"], "the overdue flag")
        (reminder,) = await shop.outbox_when(oid, "pick_reminder", 1)
        assert reminder.payload == {"shipments": [f"{oid}-1"]}
        assert shop.outbox(oid, "pick_escalation") == []

        await shop.skip(4 * H)
        escalated = await shop.until(
            handle, lambda s: "pick_escalated" in s.flags, "pick_escalated"
        )
        assert {"pick_overdue", "pick_escalated"} <= set(escalated.flags)
        await shop.status_when(oid, lambda s: "pick_escalated" in s["flags"], "the escalation flag")
        assert len(await shop.outbox_when(oid, "pick_escalation", 1)) == 1
        assert len(shop.outbox(oid, "pick_reminder")) == 1

        await handle.signal("shipped", {"carrier": "ZTO", "tracking_no": "ZT998877"})
        assert (await handle.result()).stage == "completed"
        status = shop.status(oid)
        assert status["flags"] == []
        assert status["shipments"][0]["tracking_no"] == "ZT998877"
        shop.assert_invariants(oid)


