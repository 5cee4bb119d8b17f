"""The desk from the shell against a running worker: two orders to one buyer merge into one
parcel, a clerk splits it, labels print and decode, and `oms verify` ships an order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import SAMPLE
from tests.harness.desk import barcode, pdf_pages_decoded, pdf_text, pool_numbers
from tests.harness.documents import order_doc
from tests.harness.stack import OmsStack, submit_lines, write_orders


@pytest.fixture
async def stack(dev_env: Any, tmp_path: Path) -> AsyncIterator[OmsStack]:
    oms = OmsStack.for_env(dev_env, tmp_path / "oms")
    await oms.start_worker()
    try:
        yield oms
    finally:
        oms.close()


async def test_merge_split_print_and_verify_from_the_shell(stack: OmsStack, tmp_path: Path) -> None:
    await stack.load_sample()  # the catalog's barcodes and the warehouses' senders too
    await stack.ok("load", "carriers", str(SAMPLE / "carriers.json"))
    numbers = tmp_path / "zto.txt"
    numbers.write_text("\n".join(pool_numbers("ZTO", 30)) + "\n", encoding="utf-8")
    await stack.ok("waybills", "load", "ZTO", str(numbers))

    a, b = order_doc("desk-a"), order_doc("desk-b")  # one buyer, one address
    answer = await stack.ok("submit", str(write_orders(tmp_path / "o.json", [a, b])))
    assert set(submit_lines(answer.out).values()) == {"started"}
    for doc in (a, b):
        await stack.wait_for_stage(doc["order_id"], "released")
    ids = [a["order_id"], b["order_id"]]

    [merged] = (await stack.ok("parcels", ids[1], "--json")).json()
    assert sorted(merged["orders"]) == sorted(ids) and merged["carrier"] == "ZTO"
    split = await stack.ok("split-parcel", merged["waybill"])
    assert split.out.count("orders ") == 2
    pa = (await stack.ok("parcels", ids[0], "--json")).json()[0]
    pb = (await stack.ok("parcels", ids[1], "--json")).json()[0]
    assert pa["orders"] == [ids[0]] and pb["orders"] == [ids[1]]
    assert len({pa["waybill"], pb["waybill"]}) == 2

    out = tmp_path / "labels.pdf"
    printed = await stack.ok("labels", *ids, "--out", str(out))
    assert "2 label(s) written" in printed.out
    pages = tmp_path / "pages"
    pages.mkdir()
    decoded = pdf_pages_decoded(out, pages)
    assert decoded == [pa["waybill"], pb["waybill"]]
    assert "张*" in pdf_text(out)[0] and "13812345678" not in pdf_text(out)[0]

    red = barcode("TSHIRT-RED-M")
    refused = await stack.cli("verify", pa["waybill"], "--scan", red, red, red, "--json")
    assert refused.code == 1
    report = refused.json()
    assert [s["accepted"] for s in report["scans"]] == [True, True, False]
    assert report["complete"] is True and report["state"] == "verified"
    shipped = await stack.cli("verify", pa["waybill"], "--weight-g", "510", "--json")
    assert shipped.code == 0, shipped
    result = shipped.json()
    assert result["weight"] == {"accepted": True, "reason": None, "expected_g": [450, 550]}
    assert result["state"] == "shipped"
    status = await stack.wait_for_stage(ids[0], "completed")
    assert status["shipments"][0]["tracking_no"] == pa["waybill"]
    assert status["shipments"][0]["waybill"] == pa["waybill"]
    assert status["parcels"][0]["state"] == "shipped"
