"""Every action of `POST /v1/orders/{id}/actions/{action}` on the real service and dev server.

Each is accepted (200 with the order's new state, as the workflow answered it) and refused
(409 with the workflow's reason, and not one event added to the workflow's history). The
warehouse reports its events with a warehouse key, end to end: picked, packed, shipped with
tracking (which reaches the outbox for the platform), a pick exception, a transfer's arrival,
a delivery; the clerk restocks and the waiting order is served.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from tests.harness.documents import HOT, service_policy
from tests.harness.service import ServiceStack, running_service

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def svc(dev_env: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServiceStack]:
    async with running_service(dev_env, tmp_path_factory.mktemp("svc-actions")) as stack:
        yield stack


@pytest.fixture(scope="module")
async def slow(dev_env: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServiceStack]:
    """Orders that go on hold when the buyer is silent for 2 s, transfer rather than split,
    and complete on delivery."""
    policy = service_policy()
    policy.confirmation.timeout = timedelta(seconds=2)
    policy.confirmation.timeout_action = "hold"  # type: ignore[assignment]
    policy.shortage.split_allowed = False
    policy.pick.complete_on = "delivered"
    async with running_service(dev_env, tmp_path_factory.mktemp("svc-slow"), policy=policy,
                               stock={(HOT, "HZ"): 1, (HOT, "SH"): 5}) as stack:
        yield stack


def tag() -> str:
    return uuid.uuid4().hex[:8]


async def act(svc: ServiceStack, order_id: str, action: str, body: dict[str, Any] | None = None,
              role: str = "clerk") -> Any:
    return await svc.post(f"/v1/orders/{order_id}/actions/{action}", role, json=body or {})


async def refused(svc: ServiceStack, order_id: str, action: str, body: dict[str, Any] | None = None,
                  role: str = "clerk") -> str:
    """The action is refused with a reason, and the workflow's history does not grow."""
    before = await svc.settled_history(order_id)
    r = await act(svc, order_id, action, body, role)
    assert r.status_code == 409, (action, r.status_code, r.text)
    body_ = r.json()
    assert body_["accepted"] is False and body_["reason"], body_
    assert await svc.history_length(order_id) == before, f"a refused {action} wrote history"
    return body_["reason"]


async def accepted(svc: ServiceStack, order_id: str, action: str, body: dict[str, Any] | None = None,
                   role: str = "clerk") -> dict[str, Any]:
    r = await act(svc, order_id, action, body, role)
    assert r.status_code == 200, (action, r.status_code, r.text)
    assert r.json()["accepted"] is True
    order = r.json()["order"]
    assert order["order_id"] == order_id and isinstance(order["stage"], str)
    return order


async def released(svc: ServiceStack, label: str, lines: list[tuple[str, int]] | None = None) -> str:
    order_id = f"{label}-{tag()}"
    await svc.submit(svc.doc(order_id, lines))
    await svc.wait_stage(order_id, "released")
    return order_id


async def test_confirm_is_refused_out_of_its_stage_and_accepted_in_it(svc: ServiceStack) -> None:
    order_id = f"ACT-CONF-{tag()}"
    doc = svc.doc(order_id)
    doc["address"]["detail"] = "文三路"
    await svc.submit(doc)
    await svc.wait_stage(order_id, "awaiting_buyer")
    assert "approval" in await refused(svc, order_id, "approve", {"note": "not yet"})

    order = await accepted(svc, order_id, "confirm", {
        "detail": "文三路100号3幢501室", "delivery_window": "工作日 9-18", "parcel_locker": True,
        "note": "电话确认", "channel": "phone"})
    assert order["stage"] != "awaiting_buyer"
    status = await svc.wait_stage(order_id, "released")
    assert "快递柜" in status["remarks"] and "9-18" in status["remarks"]
    await refused(svc, order_id, "confirm", {"detail": "again"})


async def test_pay_refused_then_accepted(svc: ServiceStack) -> None:
    order_id = f"ACT-PAY-{tag()}"
    doc = svc.doc(order_id, payment="pending")
    await svc.submit(doc)
    await svc.wait_stage(order_id, "awaiting_payment")
    r = await act(svc, order_id, "pay", {"amount": doc["total"]})  # the txn is missing
    assert r.status_code == 422 and r.json()["field"] == "txn", r.text
    order = await accepted(svc, order_id, "pay", {"amount": doc["total"], "txn": f"TXN-{order_id}"})
    assert order["stage"] != "awaiting_payment"
    await svc.wait_stage(order_id, "released")
    await refused(svc, order_id, "pay", {"amount": doc["total"], "txn": "TXN-twice"})


async def test_decide_refused_for_an_order_in_stock_and_accepted_for_a_short_one(
    svc: ServiceStack,
) -> None:
    fine = await released(svc, "ACT-DEC-OK")
    assert "short" in await refused(svc, fine, "decide", {"decision": "cancel"})
    short = f"ACT-DEC-{tag()}"
    await svc.submit(svc.doc(short, [(HOT, 2)]))
    await svc.wait_stage(short, "backordered")
    await accepted(svc, short, "decide", {"decision": "cancel", "note": "供应商断货"})
    status = await svc.wait_stage(short, "cancelled")
    assert status["refund"] is not None


async def test_approve_and_reject_of_flagged_orders(svc: ServiceStack) -> None:
    big, bigger = f"ACT-APP-{tag()}", f"ACT-REJ-{tag()}"
    await svc.submit(svc.doc(big, [("PHONE-X1", 1)]), svc.doc(bigger, [("PHONE-X1", 1)]))
    await svc.wait_stage(big, "awaiting_approval")
    await svc.wait_stage(bigger, "awaiting_approval")
    assert (await act(svc, big, "approve", {"note": "ok"}, role="warehouse")).status_code == 403
    await accepted(svc, big, "approve", {"note": "已核实"})
    await svc.wait_stage(big, "released")
    await refused(svc, big, "approve", {"note": "twice"})
    r = await act(svc, bigger, "reject", {})
    assert r.status_code == 422 and r.json()["field"] == "reason"
    await accepted(svc, bigger, "reject", {"reason": "疑似刷单"})
    assert (await svc.wait_stage(bigger, "cancelled"))["cancel_reason"]


async def test_warehouse_events_end_to_end_with_a_warehouse_key(svc: ServiceStack) -> None:
    order_id = await released(svc, "ACT-WH")
    assert (await act(svc, order_id, "picked", role="platform")).status_code == 403
    order = await accepted(svc, order_id, "picked", {"shipment": 1}, role="warehouse")
    assert order["stage"] == "picking"
    order = await accepted(svc, order_id, "packed", {"shipment": 1, "parcels": 1, "weight_g": 500},
                           role="warehouse")
    assert order["stage"] == "packed"
    tracking = f"SF{uuid.uuid4().int % 10**10:010d}"
    order = await accepted(svc, order_id, "shipped",
                           {"shipment": 1, "carrier": "SF", "tracking": tracking}, role="warehouse")
    assert order["shipments"][0]["tracking_no"] == tracking
    status = await svc.wait_stage(order_id, "completed")
    assert status["shipments"][0]["carrier"] == "SF" and status["lines"][0]["shipped"] == 1
    events = (await svc.get("/v1/events", params={"order_id": order_id, "limit": 1000})).json()
    assert any(tracking in str(e["payload"]) for e in events["events"]), "tracking reaches the outbox"
    reason = await refused(svc, order_id, "cancel", {"reason": "too late"})
    assert "closed" in reason or "shipped" in reason, reason
    await refused(svc, order_id, "shipped", {"carrier": "SF", "tracking": "SF000"}, role="warehouse")


async def test_a_pick_exception_and_a_cancel(svc: ServiceStack) -> None:
    order_id = await released(svc, "ACT-PX", [("TSHIRT-BLUE-L", 2)])
    await refused(svc, order_id, "resume", {"note": "nothing is on hold"})
    r = await act(svc, order_id, "pick-exception", {"sku": "TSHIRT-BLUE-L", "qty": 1, "reason": "lost"},
                  role="warehouse")
    assert r.status_code == 422 and r.json()["field"] == "reason"
    order = await accepted(svc, order_id, "pick-exception",
                           {"sku": "TSHIRT-BLUE-L", "qty": 1, "reason": "damaged"}, role="warehouse")
    assert order["order_id"] == order_id
    await accepted(svc, order_id, "cancel", {"reason": "买家申请取消"})
    status = await svc.wait_stage(order_id, "cancelled")
    assert all(li["reserved"] == 0 for li in status["lines"])
    await refused(svc, order_id, "cancel", {"reason": "again"})


async def test_unknown_orders_are_404_for_every_action(svc: ServiceStack) -> None:
    for action, body in (("approve", {}), ("cancel", {"reason": "x"}), ("picked", {})):
        r = await act(svc, f"NOPE-{tag()}", action, body)
        assert r.status_code == 404 and "unknown order" in r.json()["error"], r.text
    r = await svc.post(f"/v1/transfers/NOPE-{tag()}/arrived", "warehouse")
    assert r.status_code == 404


async def test_restock_serves_the_waiting_order_first_come_first_served(svc: ServiceStack) -> None:
    first, second = f"ACT-RS1-{tag()}", f"ACT-RS2-{tag()}"
    await svc.submit(svc.doc(first, [("TEA-LONGJING-250G", 1)], minutes=-30),
                     svc.doc(second, [("TEA-LONGJING-250G", 1)], minutes=-10))
    await svc.wait_stage(first, "backordered")
    await svc.wait_stage(second, "backordered")
    r = await svc.post("/v1/stock/restock", "warehouse",
                       json={"sku": "TEA-LONGJING-250G", "qty": 1, "warehouse": "HZ"})
    assert r.status_code == 200, r.text
    assert r.json()["served"] == [first]
    await svc.wait_stage(first, "released")
    r = await svc.post("/v1/stock/restock", "clerk", json={"sku": "NO-SUCH", "qty": 1})
    assert r.status_code == 422 and r.json()["field"] == "sku"
    r = await svc.post("/v1/stock/restock", "clerk", json={"sku": "TEA-LONGJING-250G", "qty": 1,
                                                           "warehouse": "MARS"})
    assert r.status_code == 422 and r.json()["field"] == "warehouse"
    assert (await svc.post("/v1/stock/restock", "platform", json={"sku": "X", "qty": 1})).status_code == 403


async def test_resume_a_held_order_transfer_arrival_and_delivery(slow: ServiceStack) -> None:
    held = f"ACT-HOLD-{tag()}"
    doc = slow.doc(held)
    doc["address"]["detail"] = "文三路"
    moving = f"ACT-TRF-{tag()}"
    await slow.submit(doc, slow.doc(moving, [("TSHIRT-RED-M", 1), (HOT, 3)],
                                    shortage_policy="transfer"))
    await slow.wait_stage(held, "on_hold")
    order = await accepted(slow, held, "resume", {"note": "买家来电，继续等待"})
    assert order["stage"] != "on_hold"

    status = await slow.wait_stage(moving, "awaiting_transfer")
    transfer = next(t for t in status["transfers"] if t["status"] == "in_transit")
    assert (await slow.post(f"/v1/transfers/{transfer['id']}/arrived", "platform")).status_code == 403
    r = await slow.post(f"/v1/transfers/{transfer['id']}/arrived", "warehouse")
    assert r.status_code == 200 and r.json()["accepted"] is True, r.text
    again = await slow.post(f"/v1/transfers/{transfer['id']}/arrived", "warehouse")
    assert again.status_code == 409
    await slow.wait_stage(moving, "released")
    for action, body in (("picked", {}), ("packed", {"parcels": 1}),
                         ("shipped", {"carrier": "ZTO", "tracking": "ZTO1234567"})):
        await accepted(slow, moving, action, body, role="warehouse")
    await slow.wait_stage(moving, "shipped")
    await accepted(slow, moving, "delivered", {}, role="warehouse")
    await slow.wait_stage(moving, "completed")
    await refused(slow, moving, "delivered", {}, role="warehouse")
