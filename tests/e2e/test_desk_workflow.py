"""The desk inside the order workflow (real worker, dev server): carrier and waybill at
release, recorded in the timeline; a cancel voids the waybill; no carrier flags the order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from models.db import transaction
from shipping.tables import ParcelRow, WaybillRow
from tests.harness.desk import seed_desk
from tests.harness.service import running_service

pytestmark = pytest.mark.e2e
STOCK = {("TSHIRT-RED-M", "HZ"): 50, ("MUG-WHITE", "HZ"): 50}


def tag(name: str) -> str:
    """Order ids unique on the session's shared dev server."""
    import uuid

    return f"{name}-{uuid.uuid4().hex[:6]}"


async def released(stack: Any, order_id: str, lines: list[tuple[str, int]], **kw: Any) -> dict:
    [answer] = await stack.submit(stack.doc(order_id, lines, **kw))
    assert answer["result"] == "started", answer
    if kw.get("payment") == "cod":  # cash on delivery: the buyer confirms first
        await stack.wait_stage(order_id, "awaiting_buyer")
        r = await stack.post(f"/v1/orders/{order_id}/actions/confirm",
                             json={"note": "buyer confirmed COD by phone"})
        assert r.status_code == 200, r.text
    await stack.wait_stage(order_id, "released")
    return await stack.order(order_id)


async def parcel_event(stack: Any, order_id: str) -> dict[str, Any]:
    import asyncio

    for _ in range(100):
        order = await stack.order(order_id)
        found = [e for e in order["events"] if e["type"] in ("parcel", "parcel_failed")]
        if found:
            return found[0] | {"_order": order}
        await asyncio.sleep(0.2)
    raise AssertionError(f"{order_id}: no parcel in the timeline")


async def test_the_release_chooses_the_carrier_issues_the_waybill_and_a_cancel_voids_it(
        dev_env, tmp_path: Path, db_url: str) -> None:
    async with running_service(dev_env, tmp_path / "svc", db_url, stock=STOCK) as stack:
        seed_desk(stack.factory)
        wf1 = tag("WF-1")
        await released(stack, wf1, [("TSHIRT-RED-M", 1)])
        event = await parcel_event(stack, wf1)
        assert event["carrier"] == "ZTO" and event["waybill"].startswith("7310")
        assert event["reason"].startswith("the cheapest: 中通快递")
        assert event["parcel"] == f"pcl-{wf1}-1"
        waybill = event["waybill"]
        status = await stack.order(wf1)
        assert status["parcels"] == [{
            "parcel_id": f"pcl-{wf1}-1", "carrier": "ZTO", "waybill": waybill, "orders": [wf1],
            "state": "allocated", "weight_g": None,
            "lines": [{"order_id": wf1, "sku": "TSHIRT-RED-M", "qty": 1}]}]
        assert status["shipments"][0]["waybill"] == waybill
        assert status["shipments"][0]["carrier"] == "ZTO"
        r = await stack.get(f"/v1/orders/{wf1}/labels.pdf", "warehouse")
        assert r.headers["x-oms-waybills"] == waybill  # the label reuses the release's waybill

        cancel = await stack.post(f"/v1/orders/{wf1}/actions/cancel", json={"reason": "buyer asked"})
        assert cancel.status_code == 200, cancel.text
        order = await stack.wait_stage(wf1, "cancelled")
        voided = [e for e in order["events"] if e["type"] == "waybills_voided"]
        assert voided and voided[0]["waybills"] == [waybill]
        with transaction(stack.factory) as session:
            assert session.get(WaybillRow, waybill).status == "void"
            parcel = session.get(ParcelRow, f"pcl-{wf1}-1")
            assert parcel.state == "void" and parcel.waybill is None
        r = await stack.post(f"/v1/parcels/{waybill}/scan", "warehouse", json={"barcode": "x"})
        assert r.status_code == 409 and f"waybill {waybill} is void" in r.json()["reason"]


async def test_no_carrier_flags_the_order_and_a_clerk_picks_one(dev_env, tmp_path: Path) -> None:
    async with running_service(dev_env, tmp_path / "svc", stock=STOCK) as stack:
        seed_desk(stack.factory)
        wf2, wf3 = tag("WF-2"), tag("WF-3")
        await released(stack, wf2, [("MUG-WHITE", 1)], payment="cod")
        event = await parcel_event(stack, wf2)
        assert event["hold"] is None and event["carrier"] == "SF"  # COD: SF or EMS; SF cheaper
        with transaction(stack.factory) as session:
            from sqlmodel import select

            from shipping.tables import CarrierRow

            for row in session.exec(select(CarrierRow)).all():
                row.cod = False
                session.add(row)
        await released(stack, wf3, [("MUG-WHITE", 1)], payment="cod")
        event = await parcel_event(stack, wf3)
        assert event["hold"] == "no_carrier" and event["carrier"] is None
        assert event["reason"].startswith("no carrier serves this shipment")
        import asyncio

        for _ in range(50):
            if "no_carrier" in (await stack.order(wf3))["flags"]:
                break
            await asyncio.sleep(0.2)
        assert "no_carrier" in (await stack.order(wf3))["flags"]
        refused = await stack.post(f"/v1/parcels/by-id/pcl-{wf3}-1/carrier", json={"carrier": "ZTO"})
        assert refused.status_code == 409
        assert refused.json()["error"] == "ZTO does not collect cash on delivery and the order is COD"
        assert (await stack.post(f"/v1/parcels/by-id/pcl-{wf3}-1/carrier", "warehouse",
                                 json={"carrier": "ZTO"})).status_code == 403


async def test_two_orders_released_together_share_one_parcel(dev_env, tmp_path: Path,
                                                             db_url: str) -> None:
    import asyncio

    async with running_service(dev_env, tmp_path / "svc", db_url, stock=STOCK) as stack:
        seed_desk(stack.factory)
        ids = [tag("TWO-A"), tag("TWO-B")]
        docs = [stack.doc(ids[0], [("TSHIRT-RED-M", 1)]), stack.doc(ids[1], [("MUG-WHITE", 1)])]
        for doc in docs:
            doc["buyer"]["id"] = "buyer-same"
        answers = await stack.submit(*docs)
        assert [a["result"] for a in answers] == ["started", "started"]
        await asyncio.gather(*(stack.wait_stage(i, "released") for i in ids))
        events = await asyncio.gather(*(parcel_event(stack, i) for i in ids))
        assert events[0]["parcel"] == events[1]["parcel"]
        assert events[0]["waybill"] == events[1]["waybill"]
        status = await stack.order(ids[1])
        assert sorted(status["parcels"][0]["orders"]) == sorted(ids)
        r = await stack.post("/v1/labels", "warehouse", json={"order_ids": ids})
        assert r.headers["x-oms-waybills"] == events[0]["waybill"]  # one label for both


async def test_an_address_changed_after_printing_voids_the_label_and_prints_the_new_one(
        dev_env, tmp_path: Path) -> None:
    """The buyer changes the address on the platform after the label was printed: the order
    is checked again, its warehouse gets an amended pick list, the printed number is voided
    (a packer scanning the old label is refused) and the new label carries the new address."""
    from tests.harness.desk import pdf_pages_decoded, pdf_text

    async with running_service(dev_env, tmp_path / "svc", stock=STOCK) as stack:
        seed_desk(stack.factory)
        oid = tag("RA-WF")
        await released(stack, oid, [("TSHIRT-RED-M", 1)])
        old = (await parcel_event(stack, oid))["waybill"]
        r = await stack.post("/v1/labels", "warehouse", json={"order_ids": [oid]})
        assert r.status_code == 200 and r.headers["x-oms-waybills"] == old
        new = {"platform": "taobao", "name": "李四", "phone": "13987654321",
               "province": "浙江省", "city": "杭州市", "district": "西湖区",
               "detail": "文三路88号2幢302室"}  # fmt: skip
        await stack.client.get_workflow_handle(f"order-{oid}").signal("platform_address", new)
        import asyncio

        for _ in range(150):
            order = await stack.order(oid)
            moved = [e for e in order["events"] if e["type"] == "parcel_readdressed"]
            if moved:
                break
            await asyncio.sleep(0.2)
        assert moved, [e["type"] for e in order["events"]]
        assert moved[0]["old_waybill"] == old and moved[0]["waybill"] not in (None, old)
        assert "pick_list_amended" in [e["type"] for e in order["events"]]
        assert order["parcels"][0]["waybill"] == moved[0]["waybill"]
        assert order["parcels"][0]["state"] == "allocated"  # to be printed again
        refused = await stack.post(f"/v1/parcels/{old}/scan", "warehouse",
                                   json={"barcode": "6901234567892"})
        assert refused.status_code == 409 and f"waybill {old} is void" in refused.json()["reason"]
        r = await stack.post("/v1/labels", "warehouse", json={"order_ids": [oid]})
        assert r.status_code == 200 and r.headers["x-oms-waybills"] == moved[0]["waybill"]
        pdf = tmp_path / "new.pdf"
        pdf.write_bytes(r.content)
        assert pdf_pages_decoded(pdf, tmp_path) == [moved[0]["waybill"]]
        [page] = pdf_text(pdf)
        assert "文三路88号2幢302室" in page.replace(" ", "") and "李*" in page
        assert "13987654321" not in page and "文三路100号" not in page.replace(" ", "")
