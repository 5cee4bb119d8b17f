"""A refund asked for on the platform holds the order before it ships (SPEC §3.9 拦截, §8.10).

On the real dev server, with a real worker and a real database (SQLite, and PostgreSQL for
the interception after the release): held from where it stood, its pick lists withdrawn with
the stock kept, `shipped` and `resume` refused; the refund closed, it goes on where it stopped
(released again with a new pick list); refunded on the platform, cancelled with no second
refund; the same change twice changes nothing the second time.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.harness.documents import HOT, fast_policy, make_order
from tests.harness.flow import Flow, running_flow
from tests.harness.reference import load_sample

pytestmark = pytest.mark.e2e
SHIRT = "TSHIRT-RED-M"
REQUESTED = {"status": "requested", "platform": "taobao"}
CLOSED = {"status": "closed", "platform": "taobao"}


@pytest.fixture
async def flow(dev_env: WorkflowEnvironment, sqlite_url: str) -> AsyncIterator[Flow]:
    async with running_flow(dev_env.client, sqlite_url) as flow:
        yield flow


@pytest.fixture
async def any_db_flow(dev_env: WorkflowEnvironment, db_url: str) -> AsyncIterator[Flow]:
    async with running_flow(dev_env.client, db_url) as flow:
        yield flow


async def _released(flow: Flow, oid: str) -> None:
    """Released with its pick list written (the stage is set just before the step writes it)."""
    await flow.until(oid, lambda s: s.stage == "released" and bool(s.shipments), "released")


def _held_for_refund(stage: str) -> Any:
    return lambda s: s.stage == "on_hold" and s.held_from == stage and "refund_requested" in s.flags


def _refund_rejections(status: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        e for e in status["events"]
        if e["type"] == "signal_rejected" and e["signal"] == "platform_refund"
    ]


def _timeline(flow: Flow, oid: str, type_: str) -> list[dict[str, Any]]:
    status = flow.status(oid)
    assert status is not None
    return [e for e in status["events"] if e["type"] == type_]


async def test_a_refund_before_the_release_holds_the_order_then_it_goes_on(flow: Flow) -> None:
    load_sample(flow.factory, {(HOT, "HZ"): 200})
    oid = flow.oid("RF-EARLY")
    await flow.start(make_order(oid, [(HOT, 150)]))  # over the approval threshold
    await flow.stage(oid, "awaiting_approval")
    await flow.signal(oid, "platform_refund", REQUESTED)
    state = await flow.until(oid, _held_for_refund("awaiting_approval"), "held for the refund")
    assert state.waiting_for == "operator" and state.shipments == []
    # the operator cannot lift it: the refund decides (or a cancel)
    assert "refund" in str(await flow.refusal(oid, "resume", {}))
    assert await flow.refusal(oid, "approve", {"note": "ok"}) is not None
    # the same change again: refused, recorded, nothing changes
    assert "already" in str(await flow.refusal(oid, "platform_refund", REQUESTED))
    await flow.handle(oid).signal("platform_refund", REQUESTED)
    status = await flow.persisted(oid, lambda st: st["stage"] == "on_hold")
    assert status["waiting_for"] == "operator"
    held_events = [e for e in flow.events(oid) if e["type"] == "on_hold"]
    assert [e["payload"] for e in held_events] == [
        {"held_from": "awaiting_approval", "reason": "refund_requested"}
    ]
    assert "pick_list" not in flow.event_types(oid)
    # the buyer withdraws it: back where it stood, and it goes on to the end
    await flow.signal(oid, "platform_refund", CLOSED)
    state = await flow.until(oid, lambda s: s.stage == "awaiting_approval", "back to approval")
    assert "refund_requested" not in state.flags and state.held_from is None
    assert "no refund" in str(await flow.refusal(oid, "platform_refund", CLOSED))
    await flow.signal(oid, "approve", {"note": "called the buyer"})
    await _released(flow, oid)
    await flow.ship_all(oid)
    outcome = await flow.finish(oid)  # its history replays on today's code
    assert outcome.stage == "completed"
    assert flow.event_types(oid).count("pick_list") == 1
    assert "pick_list_withdrawn" not in flow.event_types(oid)
    rejected = [e for e in _timeline(flow, oid, "signal_rejected") if e["signal"] == "platform_refund"]
    assert len(rejected) == 1 and "already" in rejected[0]["reason"]
    assert len(_timeline(flow, oid, "refund_hold")) == 1
    flow.assert_settled(oid)


async def test_a_refund_after_the_release_withdraws_the_pick_list_then_it_is_released_again(
    any_db_flow: Flow,
) -> None:
    flow = any_db_flow
    load_sample(flow.factory)
    oid = flow.oid("RF-LATE")
    await flow.start(make_order(oid, [(SHIRT, 2)]))
    await _released(flow, oid)
    await flow.signal(oid, "picked", {"shipment": 1})
    await flow.stage(oid, "picking")
    before = flow.stock(SHIRT)
    await flow.signal(oid, "platform_refund", REQUESTED)
    state = await flow.until(oid, _held_for_refund("picking"), "held for the refund")
    assert [(sh.shipment_no, sh.status) for sh in state.shipments] == [(1, "cancelled")]
    # the warehouse is told to intercept the parcel (拦截); the stock stays the order's
    withdrawn = [e for e in flow.events(oid) if e["type"] == "pick_list_withdrawn"]
    assert [(e["payload"]["shipment_id"], e["payload"]["reason"]) for e in withdrawn] == [
        (f"{oid}-1", "refund_requested")
    ]
    held = flow.held(oid)
    assert sum(r.qty for r in held) == 2 and all(r.shipment_id is None for r in held)
    assert flow.stock(SHIRT) == before
    shipped = {"shipment": 1, "carrier": "SF", "tracking_no": "SF77001"}
    assert await flow.refusal(oid, "shipped", shipped) is not None
    status = await flow.persisted(oid, lambda st: st["stage"] == "on_hold")
    assert [s["status"] for s in status["shipments"]] == ["cancelled"]
    # the refund closed: released again, a new pick list for the same stock, and it ships
    await flow.signal(oid, "platform_refund", CLOSED)
    state = await flow.until(
        oid, lambda s: s.stage == "released" and len(s.shipments) == 2, "released again"
    )
    assert [(sh.shipment_no, sh.status) for sh in state.shipments] == [
        (1, "cancelled"), (2, "released")
    ]
    assert "refund_requested" not in state.flags
    pick_lists = [e for e in flow.events(oid) if e["type"] == "pick_list"]
    assert [e["payload"]["shipment_id"] for e in pick_lists] == [f"{oid}-1", f"{oid}-2"]
    assert [li["qty"] for li in pick_lists[1]["payload"]["lines"]] == [2]
    assert [r.shipment_id for r in flow.held(oid)] == [f"{oid}-2"] * len(flow.held(oid))
    await flow.ship_all(oid)
    outcome = await flow.finish(oid)
    assert outcome.stage == "completed"
    status = flow.assert_settled(oid)
    assert [(s["shipment_no"], s["status"]) for s in status["shipments"]] == [
        (1, "cancelled"), (2, "shipped")
    ]
    assert [li["shipped"] for li in status["lines"]] == [2]
    assert flow.refunds(oid) == []
    _no_invariant_broken(flow)


def _no_invariant_broken(flow: Flow) -> None:
    from models.db import transaction
    from tests.harness.invariants import check_invariants

    with transaction(flow.factory) as session:
        assert check_invariants(session) == []


async def test_a_refund_asked_for_before_the_first_step_stops_the_release(flow: Flow) -> None:
    """The refund comes with the order's start: no wait comes before the release of a clean
    order, so the step before the release holds it; no pick list goes out meanwhile."""
    from datetime import UTC, datetime

    from models.documents import workflow_id_for
    from models.payloads import OrderInput
    from workflows.order import OrderWorkflow

    load_sample(flow.factory)
    oid = flow.oid("RF-FIRST")
    await flow.client.start_workflow(
        OrderWorkflow.run,
        OrderInput(order=make_order(oid, [(SHIRT, 1)]), policy=fast_policy(),
                   submitted_at=datetime.now(UTC)),
        id=workflow_id_for(oid),
        task_queue=flow.task_queue,
        start_signal="platform_refund",
        start_signal_args=[REQUESTED],
    )
    state = await flow.until(oid, lambda s: s.stage == "on_hold", "held for the refund")
    assert state.held_from not in (None, "released") and state.shipments == []
    assert sum(r.qty for r in flow.held(oid)) == 1  # its stock reserved meanwhile
    await flow.persisted(oid, lambda st: st["stage"] == "on_hold")
    assert "pick_list" not in flow.event_types(oid)
    await flow.signal(oid, "platform_refund", CLOSED)
    state = await flow.until(oid, lambda s: bool(s.shipments), "released")
    assert state.stage == "released" and [sh.shipment_no for sh in state.shipments] == [1]
    await flow.ship_all(oid)
    assert (await flow.finish(oid)).stage == "completed"
    flow.assert_settled(oid)


async def test_a_refund_after_one_of_two_shipments_left_withdraws_only_the_other(
    flow: Flow,
) -> None:
    load_sample(flow.factory, {(HOT, "HZ"): 2, (HOT, "SH"): 3})
    oid = flow.oid("RF-SPLIT")
    await flow.start(make_order(oid, [(HOT, 5)]))
    state = await flow.until(oid, lambda s: len(s.shipments) == 2, "released twice")
    first = state.shipments[0].shipment_no
    await flow.signal(oid, "shipped", {"shipment": first, "carrier": "SF", "tracking_no": "SF9001"})
    await flow.until(oid, lambda s: s.shipments[0].status == "shipped", "first shipped")
    await flow.signal(oid, "platform_refund", REQUESTED)
    state = await flow.until(oid, lambda s: s.stage == "on_hold", "held for the refund")
    assert [sh.status for sh in state.shipments] == ["shipped", "cancelled"]
    await flow.signal(oid, "platform_refund", CLOSED)
    state = await flow.until(oid, lambda s: len(s.shipments) == 3, "the rest released again")
    assert [sh.status for sh in state.shipments] == ["shipped", "cancelled", "released"]
    assert state.shipments[2].lines[0]["qty"] == state.shipments[1].lines[0]["qty"]
    await flow.ship_all(oid)
    assert (await flow.finish(oid)).stage == "completed"
    status = flow.assert_settled(oid)
    assert [li["shipped"] for li in status["lines"]] == [5]
    _no_invariant_broken(flow)


async def test_refunded_on_the_platform_while_held_cancels_with_no_second_refund(
    flow: Flow,
) -> None:
    load_sample(flow.factory)
    oid = flow.oid("RF-DONE")
    before = flow.stock(SHIRT)
    await flow.start(make_order(oid, [(SHIRT, 1)]))
    await _released(flow, oid)
    await flow.signal(oid, "platform_refund", REQUESTED)
    await flow.until(oid, _held_for_refund("released"), "held for the refund")
    # the platform refunded every line: the sync cancels the order
    await flow.signal(oid, "cancel", {"reason": "refunded on taobao", "refunded_on": "taobao"})
    outcome = await flow.finish(oid)
    assert outcome.stage == "cancelled" and outcome.reason == "refunded on taobao"
    assert flow.refunds(oid) == []  # the platform paid it: never twice
    assert len(_timeline(flow, oid, "refunded_elsewhere")) == 1
    types = flow.event_types(oid)
    assert types.count("pick_list_withdrawn") == 1  # withdrawn once, at the hold
    assert "refund" not in types
    flow.assert_settled(oid)
    assert flow.stock(SHIRT) == before


async def test_the_same_change_twice_changes_nothing_the_second_time(flow: Flow) -> None:
    load_sample(flow.factory)
    oid = flow.oid("RF-TWICE")
    await flow.start(make_order(oid, [(SHIRT, 1)]), fast_policy())
    await _released(flow, oid)
    for _ in range(2):
        await flow.handle(oid).signal("platform_refund", REQUESTED)
    await flow.until(oid, _held_for_refund("released"), "held for the refund")
    for _ in range(2):
        await flow.handle(oid).signal("platform_refund", CLOSED)
    state = await flow.until(
        oid, lambda s: s.stage == "released" and len(s.shipments) == 2, "released again"
    )
    assert "refund_requested" not in state.flags
    status = await flow.persisted(
        oid, lambda st: len(st["shipments"]) == 2 and len(_refund_rejections(st)) == 2
    )
    assert [r["reason"].split()[0] for r in _refund_rejections(status)] == ["already", "no"]
    types = flow.event_types(oid)
    assert types.count("pick_list_withdrawn") == 1 and types.count("pick_list") == 2
    assert types.count("on_hold") == 1
    assert len(_timeline(flow, oid, "refund_hold")) == 1
    await flow.ship_all(oid)
    assert (await flow.finish(oid)).stage == "completed"
    flow.assert_settled(oid)


async def test_at_the_shipping_desk_the_intercepted_parcel_s_waybill_is_voided(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    from models.db import transaction
    from shipping.tables import ParcelRow, WaybillRow
    from tests.harness.desk import seed_desk
    from tests.harness.service import running_service

    async with running_service(dev_env, tmp_path / "svc", stock={(SHIRT, "HZ"): 20}) as stack:
        seed_desk(stack.factory)
        oid = f"RF-DESK-{uuid.uuid4().hex[:6]}"
        [answer] = await stack.submit(stack.doc(oid, [(SHIRT, 1)]))
        assert answer["result"] == "started", answer
        await stack.wait_stage(oid, "released")
        first = await _parcel(stack, oid, f"pcl-{oid}-1")
        handle = stack.client.get_workflow_handle(f"order-{oid}")
        await handle.signal("platform_refund", REQUESTED)
        held = await stack.wait_stage(oid, "on_hold")
        voided = [e for e in held["events"] if e["type"] == "waybills_voided"]
        assert voided and voided[0]["waybills"] == [first["waybill"]]
        with transaction(stack.factory) as session:
            assert session.get(WaybillRow, first["waybill"]).status == "void"
            assert session.get(ParcelRow, f"pcl-{oid}-1").state == "void"
        await handle.signal("platform_refund", CLOSED)
        second = await _parcel(stack, oid, f"pcl-{oid}-2")
        assert second["waybill"] and second["waybill"] != first["waybill"]
        order = await stack.order(oid)
        assert [(s["shipment_no"], s["status"]) for s in order["shipments"]] == [
            (1, "cancelled"), (2, "released")
        ]
        assert order["shipments"][1]["waybill"] == second["waybill"]


async def _parcel(stack: Any, oid: str, parcel_id: str) -> dict[str, Any]:
    """The `parcel` timeline entry of one parcel of the order, once the database has it."""
    for _ in range(150):
        order = await stack.order(oid)
        found = [e for e in order["events"] if e["type"] == "parcel" and e["parcel"] == parcel_id]
        if found:
            return found[0]
        await asyncio.sleep(0.2)
    raise AssertionError(f"{oid}: no parcel {parcel_id} in the timeline")
