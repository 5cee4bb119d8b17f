"""Every operator and warehouse action is a Temporal update that the workflow answers (SPEC §3.8).

On the real dev server, with real workers and a real database: each action accepted with
the order's new state; each refused in a stage where it does not apply, with the
workflow's reason and not one event more in the history; a cancel and an approve that
arrive together (in one workflow task) each get a definite answer and only one takes
effect; `temporal workflow cancel` compensates in every waiting stage and after release,
and is refused once everything has shipped; and a signal typed by hand with a bad
payload is still recorded as rejected.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import CancelledError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from commands import actions
from tests.conftest import binary
from tests.harness.codec_keys import converter
from tests.harness.documents import HOT, fast_policy, make_order
from tests.harness.flow import Flow, running_flow
from tests.harness.reference import load_sample
from workflows.order import OrderWorkflow

pytestmark = pytest.mark.e2e

SHIRT = "TSHIRT-RED-M"  # 59.00; 100 at HZ in the sample


@pytest.fixture
async def flow(dev_env: WorkflowEnvironment, sqlite_url: str) -> AsyncIterator[Flow]:
    async with running_flow(dev_env.client, sqlite_url) as flow:
        yield flow


async def act(flow: Flow, oid: str, action: str, body: dict[str, Any] | None = None) -> actions.Answer:
    return await actions.act(flow.client, oid, action, body or {}, by="clerk-1")


async def events(flow: Flow, oid: str) -> int:
    return len((await flow.handle(oid).fetch_history()).events)


def accepted(answer: actions.Answer, stage: str) -> dict[str, Any]:
    assert answer.accepted, answer.reason
    assert answer.order is not None and answer.order["stage"] == stage, answer.order
    return answer.order


def vague(order: Any) -> Any:
    """The order with a street but no door number: the buyer is asked."""
    return order.model_copy(update={"address": order.address.model_copy(update={"detail": "文三路"})})


# ------------------------------------------------------------------ accepted


async def test_buyer_confirmation_and_payment_are_answered_with_the_released_order(flow: Flow) -> None:
    load_sample(flow.factory)
    asked, unpaid = flow.oid("U-buyer"), flow.oid("U-unpaid")
    await flow.start(vague(make_order(asked, [(SHIRT, 1)])))
    order = make_order(unpaid, [(SHIRT, 1)], payment="pending")
    await flow.start(order)
    await flow.stage(asked, "awaiting_buyer")
    await flow.stage(unpaid, "awaiting_payment")

    answer = await act(flow, asked, "confirm", {"detail": "文三路100号3幢501室", "note": "旺旺确认", "parcel_locker": True})
    state = accepted(answer, "released")
    assert state["waiting_for"] == "warehouse" and state["lines"][0]["reserved"] == 1
    assert [s["status"] for s in state["shipments"]] == ["released"]

    state = accepted(await act(flow, unpaid, "pay", {"amount": str(order.total), "txn": "TX-U-1"}), "released")
    assert state["findings"] == []


async def test_warehouse_events_are_answered_stage_by_stage_until_completed(flow: Flow) -> None:
    load_sample(flow.factory)
    oid = flow.oid("U-ship")
    await flow.start(make_order(oid, [(SHIRT, 2)]))
    await flow.stage(oid, "released")

    assert accepted(await act(flow, oid, "picked"), "picking")["shipments"][0]["status"] == "picked"
    assert accepted(await act(flow, oid, "packed", {"parcels": 1, "weight_g": 600}), "packed")
    state = accepted(await act(flow, oid, "shipped", {"carrier": "SF", "tracking": "SF0001"}), "completed")
    assert state["shipments"][0]["tracking_no"] == "SF0001"
    assert state["lines"][0]["shipped"] == 2
    assert (await flow.finish(oid)).stage == "completed"
    flow.assert_settled(oid)


async def test_approve_and_reject_are_answered_with_the_decision_applied(flow: Flow) -> None:
    load_sample(flow.factory, {(HOT, "HZ"): 400})
    yes, no = flow.oid("U-yes"), flow.oid("U-no")
    await flow.start(make_order(yes, [(HOT, 150)]))  # over the approval threshold
    big = make_order(no, [(HOT, 150)])
    await flow.start(big)
    await flow.stage(yes, "awaiting_approval")
    await flow.stage(no, "awaiting_approval")

    state = accepted(await act(flow, yes, "approve", {"note": "called the buyer"}), "released")
    assert "needs_approval" not in state["flags"]
    state = accepted(await act(flow, no, "reject", {"reason": "looks like fraud"}), "cancelled")
    assert state["refund"] == {"amount": str(big.total), "status": "requested"}
    assert state["cancel_reason"] == "rejected in review: looks like fraud"
    assert (await flow.finish(no)).stage == "cancelled"
    flow.assert_settled(no)


async def test_shortage_decision_resume_and_pick_exception_are_answered(flow: Flow) -> None:
    load_sample(flow.factory, {(HOT, "HZ"): 1, (HOT, "SH"): 0})
    short, held = flow.oid("U-short"), flow.oid("U-held")
    await flow.start(make_order(short, [(HOT, 3)], shortage_policy="wait"))
    hold = fast_policy(backorder_deadline=timedelta(seconds=1), timeout_action="hold")
    await flow.start(make_order(held, [(SHIRT, 1), (HOT, 2)], shortage_policy="wait", minutes=1), hold)
    await flow.stage(short, "backordered")
    await flow.stage(held, "on_hold")

    state = accepted(await act(flow, short, "decide", {"decision": "cancel"}), "cancelled")
    assert state["lines"][0]["cancelled"] == 3

    state = accepted(await act(flow, held, "resume", {"note": "restock promised for Friday"}), "backordered")
    assert state["waiting_for"] == "stock" and state["held_from"] is None
    await flow.restock(HOT, "HZ", 3)
    await flow.stage(held, "released")
    state = accepted(
        await act(flow, held, "pick-exception", {"sku": SHIRT, "qty": 1, "reason": "damaged"}), "released"
    )
    assert len(state["shipments"]) == 2  # the damaged shirt replaced from stock, in a shipment of its own
    await flow.ship_all(held)
    assert (await flow.finish(held)).stage == "completed"
    flow.assert_settled(held)


async def test_transfer_arrival_and_delivery_are_answered(flow: Flow) -> None:
    load_sample(flow.factory, {(HOT, "HZ"): 1, (HOT, "SH"): 5})
    oid = flow.oid("U-transfer")
    policy = fast_policy(split_allowed=False)
    policy.pick.complete_on = "delivered"
    await flow.start(make_order(oid, [(SHIRT, 2), (HOT, 3)], shortage_policy="transfer"), policy)
    await flow.stage(oid, "awaiting_transfer")
    (transfer,) = flow.transfers(oid)

    state = accepted(await actions.transfer_arrived(flow.client, flow.factory, transfer.id), "released")
    assert [li["reserved"] for li in state["lines"]] == [2, 3]
    again = await actions.transfer_arrived(flow.client, flow.factory, transfer.id)
    assert not again.accepted and "arrived, not in transit" in (again.reason or "")
    await flow.ship_all(oid)
    await flow.stage(oid, "shipped")
    accepted(await act(flow, oid, "delivered"), "completed")
    assert (await flow.finish(oid)).stage == "completed"


# ------------------------------------------------------------------- refused


async def test_an_action_the_stage_does_not_allow_is_refused_and_writes_nothing(flow: Flow) -> None:
    load_sample(flow.factory, {(HOT, "HZ"): 400})
    oid = flow.oid("R-1")
    await flow.start(make_order(oid, [(HOT, 150)]))
    await flow.stage(oid, "awaiting_approval")
    await flow.persisted(oid, lambda s: s["stage"] == "awaiting_approval")
    before = await events(flow, oid)
    wrong = {
        "confirm": ({"detail": "文三路1号"}, "not waiting for the buyer"),
        "pay": ({"amount": "1.00", "txn": "T"}, "already paid"),
        "decide": ({"decision": "wait"}, "not short of stock"),
        "resume": ({}, "not on hold"),
        "picked": ({}, "nothing is released"),
        "packed": ({}, "nothing is released"),
        "shipped": ({"carrier": "SF", "tracking": "SF1"}, "nothing is released"),
        "pick-exception": ({"sku": HOT, "qty": 1, "reason": "damaged"}, "nothing is released"),
        "delivered": ({}, "not shipped yet"),
    }
    for action, (body, why) in wrong.items():
        answer = await act(flow, oid, action, body)
        assert not answer.accepted and why in (answer.reason or ""), (action, answer)
    assert await events(flow, oid) == before, "a refused update added events to the history"
    assert (await flow.state(oid)).stage == "awaiting_approval"

    accepted(await act(flow, oid, "approve"), "released")
    second = await act(flow, oid, "approve")
    assert not second.accepted and second.reason == "a decision was already recorded"


async def test_a_bad_body_names_the_field_and_an_unknown_order_is_not_found(flow: Flow) -> None:
    with pytest.raises(actions.BadBody) as bad:
        await act(flow, "NO-SUCH", "pay", {"amount": "lots", "transaction_id": "T"})
    assert {e["field"] for e in bad.value.errors} == {"amount", "transaction_id", "txn"}
    with pytest.raises(actions.BadBody) as bad:
        await act(flow, "NO-SUCH", "approve", {"note": "x" * 100_000})
    assert [e["field"] for e in bad.value.errors] == ["note"]
    with pytest.raises(actions.UnknownOrder):
        await act(flow, flow.oid("NO-SUCH"), "approve")


async def test_a_closed_order_refuses_with_its_end(flow: Flow) -> None:
    load_sample(flow.factory)
    oid = flow.oid("R-closed")
    await flow.start(make_order(oid, [(SHIRT, 1)]))
    await flow.stage(oid, "released")
    accepted(await act(flow, oid, "cancel", {"reason": "buyer changed their mind"}), "cancelled")
    await flow.finish(oid)
    answer = await act(flow, oid, "cancel", {"reason": "again"})
    assert not answer.accepted and "closed (completed)" in (answer.reason or "")


# ---------------------------------------------------------------------- race


async def test_a_cancel_and_an_approve_in_one_workflow_task_one_takes_effect(
    dev_env: WorkflowEnvironment, sqlite_url: str
) -> None:
    async with running_flow(dev_env.client, sqlite_url) as first:
        load_sample(first.factory, {(HOT, "HZ"): 1000})
        oids = [first.oid(f"RACE-{i}") for i in range(3)]
        for i, oid in enumerate(oids):
            await first.start(make_order(oid, [(HOT, 150)], minutes=i))
        for oid in oids:
            await first.persisted(oid, lambda s: s["stage"] == "awaiting_approval")
        task_queue = first.task_queue
    # No worker polls now: both actions reach the server and wait for the same workflow task.
    answers = [
        (
            asyncio.create_task(act(first, oid, "approve", {"note": "ok"})),
            asyncio.create_task(act(first, oid, "cancel", {"reason": "buyer called to cancel"})),
        )
        for oid in oids
    ]
    await asyncio.sleep(1.0)
    async with running_flow(dev_env.client, sqlite_url, task_queue=task_queue) as flow:
        for oid, (approve, cancel) in zip(oids, answers, strict=True):
            a, c = await approve, await cancel
            assert a.accepted != c.accepted, (oid, a, c)
            loser = c if a.accepted else a
            assert "being applied" in (loser.reason or ""), loser
            state = await flow.state(oid)
            if a.accepted:
                assert state.stage == "released" and state.cancel_reason is None
                await act(flow, oid, "cancel", {"reason": "test over"})
            else:
                assert state.stage == "cancelled" and state.cancel_reason == "buyer called to cancel"
            assert (await flow.finish(oid)).stage == "cancelled"
            flow.assert_settled(oid)


# ------------------------------------------------------- cancelled in Temporal


async def _temporal_cancel(env: WorkflowEnvironment, oid: str) -> None:
    """`temporal workflow cancel`, as an operator types it."""
    address = env.client.service_client.config.target_host
    done = await asyncio.to_thread(
        subprocess.run,
        [binary("temporal"), "workflow", "cancel", "--address", address, "--namespace",
         env.client.namespace, "--workflow-id", f"order-{oid}"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr


TEA = "TEA-LONGJING-250G"  # none in stock anywhere


async def _reach(flow: Flow, stage: str) -> tuple[str, Decimal]:
    """An order started and brought to `stage`; what it paid."""
    oid = flow.oid(f"TC-{stage}")
    lines: list[tuple[str, int]] = [(SHIRT, 2)]
    options: dict[str, Any] = {}
    policy = fast_policy()
    if stage == "awaiting_payment":
        options["payment"] = "pending"
    elif stage in ("backordered", "on_hold"):
        lines, options["shortage_policy"] = [(TEA, 1)], "wait"
    elif stage == "awaiting_transfer":
        lines, options["shortage_policy"] = [(SHIRT, 1), (HOT, 3)], "transfer"
        policy = fast_policy(split_allowed=False)
    elif stage == "awaiting_approval":
        lines = [(SHIRT, 90)]  # 5,310.00: over the approval threshold
    if stage == "on_hold":
        policy = fast_policy(backorder_deadline=timedelta(seconds=1), timeout_action="hold")
    # Eight orders of one buyer in a day would look like fraud, and wait for approval.
    policy.fraud.max_orders_per_phone = policy.fraud.max_orders_per_address = 100
    order = make_order(oid, lines, **options)
    if stage == "awaiting_buyer":
        order = vague(order)
    await flow.start(order, policy)
    await flow.stage(oid, "released" if stage == "picking" else stage)
    if stage == "picking":
        assert (await act(flow, oid, "picked")).accepted
    await flow.persisted(oid, lambda s: s["stage"] == stage)
    return oid, order.payment.amount or Decimal(0)


STAGES = ["awaiting_buyer", "awaiting_payment", "backordered", "awaiting_transfer",
          "awaiting_approval", "on_hold", "released", "picking"]


async def test_a_cancellation_requested_in_temporal_compensates_in_every_stage(
    dev_env: WorkflowEnvironment, sqlite_url: str, tmp_path: Path
) -> None:
    async with running_flow(dev_env.client, sqlite_url) as flow:
        load_sample(flow.factory, {(HOT, "HZ"): 1, (HOT, "SH"): 5})
        reached = {stage: await _reach(flow, stage) for stage in STAGES}
        await asyncio.gather(*(_temporal_cancel(dev_env, oid) for oid, _ in reached.values()))
        replayer = Replayer(workflows=[OrderWorkflow], data_converter=converter())
        for stage, (oid, paid) in reached.items():
            with pytest.raises(WorkflowFailureError) as ended:
                await asyncio.wait_for(flow.handle(oid).result(), 30)
            assert isinstance(ended.value.cause, CancelledError), (stage, ended.value.cause)
            assert (await flow.handle(oid).describe()).status == WorkflowExecutionStatus.CANCELED
            status = await flow.persisted(oid, lambda s: s["stage"] == "cancelled", timeout=20)
            assert status["cancel_reason"] == "cancelled in Temporal", stage
            assert status["refund"] == ({"amount": str(paid), "status": "requested"} if paid else None), stage
            assert all(s["status"] == "cancelled" for s in status["shipments"]), stage
            assert all(t.status == "cancelled" for t in flow.transfers(oid)), stage
            assert flow.held(oid) == [] and flow.waiting_backorders(oid) == [], stage
            flow.assert_settled(oid)
            await replayer.replay_workflow(await flow.handle(oid).fetch_history())
        assert {w: (r["on_hand"], r["reserved"]) for w, r in flow.stock(HOT).items()} == {
            "HZ": (1, 0),
            "SH": (5, 0),
        }
        assert flow.stock(SHIRT)["HZ"] == {**flow.stock(SHIRT)["HZ"], "on_hand": 100, "reserved": 0}


async def test_a_cancellation_in_temporal_after_everything_shipped_is_refused(
    dev_env: WorkflowEnvironment, flow: Flow
) -> None:
    load_sample(flow.factory)
    oid = flow.oid("TC-shipped")
    policy = fast_policy()
    policy.pick.complete_on = "delivered"
    await flow.start(make_order(oid, [(SHIRT, 1)]), policy)
    await flow.stage(oid, "released")
    await flow.ship_all(oid)
    await flow.stage(oid, "shipped")
    await _temporal_cancel(dev_env, oid)
    status = await flow.persisted(
        oid, lambda s: any(e["type"] == "signal_rejected" and e.get("via") == "temporal" for e in s["events"])
    )
    assert status["stage"] == "shipped"
    rejected = [e for e in status["events"] if e["type"] == "signal_rejected"]
    assert "a shipped order cannot be cancelled" in rejected[-1]["reason"]
    await flow.handle(oid).signal("delivered", {})
    assert (await flow.finish(oid)).stage == "completed"
    assert flow.refunds(oid) == []


# ------------------------------------------------------------------ signals


async def test_a_signal_typed_by_hand_with_a_bad_payload_is_recorded_as_rejected(flow: Flow) -> None:
    load_sample(flow.factory, {(HOT, "HZ"): 400})
    oid = flow.oid("S-bad")
    await flow.start(make_order(oid, [(HOT, 150)]))
    await flow.stage(oid, "awaiting_approval")
    handle = flow.handle(oid)
    await handle.signal("approve", {"note": 5})
    await handle.signal("approve", "yes please")
    await handle.signal("approve_now", {})
    status = await flow.persisted(
        oid, lambda s: sum(e["type"] == "signal_rejected" for e in s["events"]) == 3
    )
    reasons = [e["reason"] for e in status["events"] if e["type"] == "signal_rejected"]
    assert "note: Input should be a valid string" in reasons[0]
    assert reasons[1] == "payload must be a JSON object"
    assert reasons[2] == "unknown signal 'approve_now'"
    assert (await flow.state(oid)).stage == "awaiting_approval"
    accepted(await act(flow, oid, "approve"), "released")
