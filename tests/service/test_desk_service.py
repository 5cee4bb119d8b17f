"""The desk over HTTP on the real service, worker and dev server: label, scan, weigh, shipped."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.harness.desk import barcode, seed_desk
from tests.harness.service import running_service

pytestmark = pytest.mark.e2e
STOCK = {("TSHIRT-RED-M", "HZ"): 50, ("MUG-WHITE", "HZ"): 50, ("TSHIRT-BLUE-L", "HZ"): 50}


async def released(stack: Any, order_id: str, lines: list[tuple[str, int]]) -> None:
    [answer] = await stack.submit(stack.doc(order_id, lines))
    assert answer["result"] == "started", answer
    await stack.wait_stage(order_id, "released")


def decode(pdf: bytes, tmp: Path) -> list[str]:
    path = tmp / "labels.pdf"
    path.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "200", "-png", str(path), str(tmp / "pg")], check=True)
    return [subprocess.run(["zbarimg", "-q", "--raw", str(p)], capture_output=True,
                           text=True).stdout.strip() for p in sorted(tmp.glob("pg-*.png"))]


async def test_label_scan_weigh_ships_the_order_through_its_workflow(dev_env, tmp_path: Path) -> None:
    async with running_service(dev_env, tmp_path / "svc", stock=STOCK) as stack:
        seed_desk(stack.factory)
        await released(stack, "DESK-1", [("TSHIRT-RED-M", 2), ("MUG-WHITE", 1)])
        r = await stack.get("/v1/orders/DESK-1/labels.pdf", "warehouse")
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/pdf"
        waybill = r.headers["x-oms-waybills"]
        assert decode(r.content, tmp_path) == [waybill]

        parcel = (await stack.get(f"/v1/parcels/{waybill}", "warehouse")).json()
        assert parcel["state"] == "printed" and parcel["orders"] == ["DESK-1"]
        assert parcel["carrier"] == "ZTO"
        assert (await stack.get(f"/v1/parcels/{waybill}", "platform")).status_code == 403

        wrong = await stack.post(f"/v1/parcels/{waybill}/scan", "warehouse",
                                 json={"barcode": barcode("TEA-LONGJING-250G")})
        assert wrong.status_code == 409
        assert wrong.json()["reason"] == "TEA-LONGJING-250G is not in this parcel: take it out"
        unknown = await stack.post(f"/v1/parcels/{waybill}/scan", "warehouse",
                                   json={"barcode": "123"})
        assert unknown.status_code == 409 and unknown.json()["reason"].startswith("unknown barcode")
        for sku in ("TSHIRT-RED-M", "MUG-WHITE", "TSHIRT-RED-M"):
            ok = await stack.post(f"/v1/parcels/{waybill}/scan", "warehouse",
                                  json={"barcode": barcode(sku)})
            assert ok.status_code == 200, ok.text
        assert ok.json()["complete"] is True and ok.json()["state"] == "verified"
        assert {(ln["sku"], ln["scanned"], ln["qty"]) for ln in ok.json()["lines"]} == {
            ("TSHIRT-RED-M", 2, 2), ("MUG-WHITE", 1, 1)}

        for bad, message in ((0, "must be more than 0 g"), (-20, "must be more than 0 g"),
                             ("heavy", "is not a number of grams"), (None, "is required")):
            r = await stack.post(f"/v1/parcels/{waybill}/weigh", "warehouse",
                                 json={"weight_g": bad})
            assert r.status_code == 422, (bad, r.text)
            assert r.json()["field"] == "weight_g" and message in r.json()["error"]
        r = await stack.post(f"/v1/parcels/{waybill}/weigh", "warehouse", json={})
        assert r.status_code == 422 and r.json()["field"] == "weight_g"
        r = await stack.post(f"/v1/parcels/{waybill}/weigh", "warehouse", content=b"{not json")
        assert r.status_code == 422

        heavy = await stack.post(f"/v1/parcels/{waybill}/weigh", "warehouse",
                                 json={"weight_g": 2000})
        assert heavy.status_code == 409 and heavy.json()["expected_g"] == [810, 990]
        weighed = await stack.post(f"/v1/parcels/{waybill}/weigh", "warehouse",
                                   json={"weight_g": "912"})
        assert weighed.status_code == 200, weighed.text
        body = weighed.json()
        assert body["shipped"] == [{"order_id": "DESK-1", "accepted": True, "reason": None}]
        assert body["state"] == "shipped"

        order = await stack.wait_stage("DESK-1", "shipped", "completed")
        [shipment] = order["shipments"]
        assert shipment["carrier"] == "ZTO" and shipment["tracking_no"] == waybill
        again = (await stack.get(f"/v1/parcels/{waybill}", "warehouse")).json()
        assert again["state"] == "shipped" and again["weight_g"] == 912


async def test_a_cancelled_orders_parcel_is_refused_at_the_desk_with_why(dev_env, tmp_path: Path) -> None:
    async with running_service(dev_env, tmp_path / "svc", stock=STOCK) as stack:
        seed_desk(stack.factory)
        await released(stack, "DESK-2", [("MUG-WHITE", 1)])
        r = await stack.post("/v1/labels", "warehouse", json={"order_ids": ["DESK-2"]})
        assert r.status_code == 200, r.text
        waybill = r.headers["x-oms-waybills"]
        cancel = await stack.post("/v1/orders/DESK-2/actions/cancel", "clerk",
                                  json={"reason": "buyer asked"})
        assert cancel.status_code == 200, cancel.text
        await stack.wait_stage("DESK-2", "cancelled")
        refused = await stack.post(f"/v1/parcels/{waybill}/scan", "warehouse",
                                   json={"barcode": barcode("MUG-WHITE")})
        assert refused.status_code == 409
        # The cancel's compensation voided the waybill: the desk says so, and why.
        assert refused.json()["reason"] == (f"waybill {waybill} is void (order DESK-2 cancelled: "
                                            "buyer asked): do not pack or ship under it")
        labels = await stack.post("/v1/labels", "warehouse", json={"order_ids": ["DESK-2"]})
        assert labels.status_code == 409 and "cancelled" in labels.json()["error"]
        for body in ({"order_ids": []}, {"order_ids": "DESK-2"}, {"order_ids": ["X"], "size": "A4"}):
            r = await stack.post("/v1/labels", "warehouse", json=body)
            assert r.status_code == 422, r.text
        assert (await stack.post("/v1/labels", "warehouse",
                                 json={"order_ids": ["NOPE"]})).status_code == 404
        assert (await stack.get("/v1/parcels/NOPE999", "warehouse")).status_code == 404
        r = await stack.post("/v1/parcels/NOPE999/scan", "warehouse", json={"barcode": "1"})
        assert r.status_code == 404 and r.json()["accepted"] is False
        await asyncio.sleep(0)


@pytest.mark.parametrize("ship_on", ["print", "verify"])
async def test_the_merchants_ship_on_point_ships_the_order(dev_env, tmp_path: Path,
                                                          ship_on: str) -> None:
    from tests.harness.service import service_policy

    policy = service_policy()
    policy.shipping.ship_on = ship_on
    async with running_service(dev_env, tmp_path / "svc", stock=STOCK, policy=policy) as stack:
        seed_desk(stack.factory)
        order_id = f"SHIP-ON-{ship_on}-{tmp_path.name[-6:]}"
        await released(stack, order_id, [("MUG-WHITE", 1)])
        r = await stack.post("/v1/labels", "warehouse", json={"order_ids": [order_id]})
        waybill = r.headers["x-oms-waybills"]
        if ship_on == "verify":
            assert (await stack.order(order_id))["stage"] == "released"  # printing is not it
            scanned = await stack.post(f"/v1/parcels/{waybill}/scan", "warehouse",
                                       json={"barcode": barcode("MUG-WHITE")})
            assert scanned.json()["state"] == "shipped", scanned.text
        order = await stack.wait_stage(order_id, "shipped", "completed")
        assert order["shipments"][0]["tracking_no"] == waybill
        assert order["parcels"][0]["state"] == "shipped"
