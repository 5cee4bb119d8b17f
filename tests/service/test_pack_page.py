"""The packing page in Debian's Chromium: a scanner types into the focused input and presses Enter."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.harness.desk import barcode, seed_desk
from tests.harness.service import ServiceStack, running_service

pytestmark = pytest.mark.e2e
STOCK = {("TSHIRT-RED-M", "HZ"): 50, ("MUG-WHITE", "HZ"): 50}


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield b
        finally:
            await b.close()


async def scanner(page: Page, code: str) -> None:
    """What a USB scanner does: types into whatever has the focus, then Enter."""
    await page.keyboard.type(code, delay=5)
    await page.keyboard.press("Enter")


async def labelled(stack: ServiceStack, order_id: str, lines: list[tuple[str, int]]) -> str:
    [answer] = await stack.submit(stack.doc(order_id, lines))
    assert answer["result"] == "started", answer
    await stack.wait_stage(order_id, "released")
    r = await stack.post("/v1/labels", "warehouse", json={"order_ids": [order_id]})
    assert r.status_code == 200, r.text
    return r.headers["x-oms-waybills"]


async def test_a_packer_scans_a_label_the_items_a_wrong_one_weighs_and_ships(
        dev_env: Any, browser: Browser, tmp_path: Path) -> None:
    async with running_service(dev_env, tmp_path / "svc", stock=STOCK) as stack:
        seed_desk(stack.factory)
        first = await labelled(stack, "PACK-1", [("TSHIRT-RED-M", 2), ("MUG-WHITE", 1)])
        second = await labelled(stack, "PACK-2", [("MUG-WHITE", 1)])

        context = await browser.new_context(viewport={"width": 1366, "height": 768})
        page = await context.new_page()
        page.set_default_timeout(20_000)
        await page.goto(stack.url + "/pack")
        await expect(page).to_have_url(re.compile(r"/login"))
        await page.fill("input[name=key]", stack.keys["clerk"])
        await page.click("button[data-action=sign-in]")
        await expect(page).to_have_url(re.compile(r"/pack$"))
        scan = page.locator("input[name=scan]")
        await expect(scan).to_be_focused()

        await scanner(page, first)
        await expect(page.locator("[data-waybill]")).to_have_text(first)
        await expect(page.locator("[data-lines] tr")).to_have_count(2)
        await expect(page.locator("tr[data-sku=TSHIRT-RED-M] [data-qty]")).to_have_text("2")

        await scanner(page, barcode("TEA-LONGJING-250G"))
        refusal = page.locator("[data-refusal]")
        await expect(refusal).to_be_visible()
        await expect(refusal).to_contain_text("TEA-LONGJING-250G is not in this parcel")
        assert await refusal.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(204, 0, 0)"
        await expect(page.locator("#pack")).to_have_attribute("data-beeps", "1")
        await page.screenshot(path=str(tmp_path / "pack-refused.png"), full_page=True)

        await page.click("h1")  # the packer touches the screen: the scanner still types in
        await expect(scan).to_be_focused()
        await scanner(page, barcode("TSHIRT-RED-M"))
        await expect(page.locator("tr[data-sku=TSHIRT-RED-M] [data-scanned]")).to_have_text("1")
        await expect(refusal).to_be_hidden()
        await scanner(page, barcode("TSHIRT-RED-M"))
        await scanner(page, barcode("TSHIRT-RED-M"))  # one too many
        await expect(refusal).to_contain_text("one TSHIRT-RED-M too many")
        await expect(page.locator("#pack")).to_have_attribute("data-beeps", "2")
        await expect(page.locator("[data-weigh]")).to_be_hidden()
        await scanner(page, barcode("MUG-WHITE"))
        weight = page.locator("input[name=weight_g]")
        await expect(weight).to_be_visible()
        await expect(weight).to_be_focused()

        await scanner(page, "5000")  # a scale typing as a keyboard
        await expect(refusal).to_contain_text("5000 g is outside the expected 810-990 g")
        await scanner(page, "905")
        await expect(page.locator("[data-ok]")).to_contain_text("shipped")
        await expect(page.locator("#pack")).to_have_attribute("data-state", "shipped")
        await page.screenshot(path=str(tmp_path / "pack-shipped.png"), full_page=True)
        order = await stack.wait_stage("PACK-1", "shipped", "completed")
        assert order["shipments"][0]["tracking_no"] == first

        await expect(scan).to_be_focused()
        await scanner(page, second)  # the next label starts the next parcel
        await expect(page.locator("[data-waybill]")).to_have_text(second)
        await expect(page.locator("[data-lines] tr")).to_have_count(1)
        await expect(page.locator("#pack")).to_have_attribute("data-state", "printed")
        await context.close()


async def test_the_print_button_prints_the_selected_orders_labels(
        dev_env: Any, browser: Browser, tmp_path: Path) -> None:
    from tests.harness.desk import pdf_pages_decoded, pdf_text

    async with running_service(dev_env, tmp_path / "svc", stock=STOCK) as stack:
        seed_desk(stack.factory)
        ids = []
        for i, lines in enumerate(([("MUG-WHITE", 1)], [("TSHIRT-RED-M", 1)], [("MUG-WHITE", 2)])):
            order_id = f"PRINT-{i}-{tmp_path.name[-6:]}"
            [answer] = await stack.submit(stack.doc(order_id, lines, phone=f"1390000{i:04d}"))
            assert answer["result"] == "started"
            ids.append(order_id)
        for order_id in ids:
            await stack.wait_stage(order_id, "released")
        context = await browser.new_context(viewport={"width": 1366, "height": 768},
                                            accept_downloads=True)
        page = await context.new_page()
        page.set_default_timeout(20_000)
        await page.goto(stack.url + "/labels")
        await page.fill("input[name=key]", stack.keys["clerk"])
        await page.click("button[data-action=sign-in]")
        await expect(page).to_have_url(re.compile(r"/labels$"))
        await page.click("button[data-action=print-labels]")  # nothing ticked
        await expect(page.locator("[data-answer=refused]")).to_contain_text("Select at least one order")
        for order_id in (ids[0], ids[2]):
            await page.check(f"input[name=order_ids][value='{order_id}']")
        async with page.expect_download() as info:
            await page.click("button[data-action=print-labels]")
        download = await info.value
        pdf = tmp_path / "printed.pdf"
        await download.save_as(str(pdf))
        pages = pdf_text(pdf)
        assert len(pages) == 2
        assert ids[0] in pages[0] and ids[2] in pages[1] and ids[1] not in "".join(pages)
        decoded = pdf_pages_decoded(pdf, tmp_path)
        for order_id, waybill in zip((ids[0], ids[2]), decoded, strict=True):
            assert (await stack.order(order_id))["parcels"][0]["waybill"] == waybill
        await page.goto(stack.url + "/labels")
        row = page.locator(f"tr[data-order='{ids[0]}']")
        await expect(row).to_contain_text("printed")
        await context.close()


async def test_a_clerk_picks_a_carrier_on_the_order_page_for_a_parcel_nobody_serves(
        dev_env: Any, browser: Browser, tmp_path: Path) -> None:
    from sqlmodel import select

    from models.db import transaction
    from shipping.tables import CarrierRow

    async with running_service(dev_env, tmp_path / "svc", stock=STOCK) as stack:
        seed_desk(stack.factory)
        with transaction(stack.factory) as session:  # nobody delivers to 浙江省 any more
            for row in session.exec(select(CarrierRow)).all():
                row.excluded_provinces = ["浙江省"]
                session.add(row)
        order_id = f"PICK-{tmp_path.name[-6:]}"
        [answer] = await stack.submit(stack.doc(order_id, [("MUG-WHITE", 1)]))
        assert answer["result"] == "started"
        await stack.wait_stage(order_id, "released")
        import asyncio

        for _ in range(100):
            status = await stack.order(order_id)
            if "no_carrier" in status["flags"]:
                break
            await asyncio.sleep(0.2)
        assert "no_carrier" in status["flags"] and status["parcels"][0]["carrier"] is None
        context = await browser.new_context(viewport={"width": 1366, "height": 768})
        page = await context.new_page()
        page.set_default_timeout(20_000)
        await page.goto(f"{stack.url}/orders/{order_id}")
        await page.fill("input[name=key]", stack.keys["clerk"])
        await page.click("button[data-action=sign-in]")
        await expect(page.locator("#parcels")).to_contain_text(f"pcl-{order_id}-1")
        await page.fill("#parcels input[name=carrier]", "NOPE")
        await page.click("button[data-action=pick-carrier]")
        await expect(page.locator("[data-answer-action=pick-carrier]")).to_have_attribute(
            "data-answer", "refused")
        await expect(page.locator("[data-answer-action=pick-carrier]")).to_contain_text(
            "unknown carrier 'NOPE'")
        await page.fill("#parcels input[name=carrier]", "sf")
        await page.click("button[data-action=pick-carrier]")
        answer_box = page.locator("[data-answer-action=pick-carrier]")
        await expect(answer_box).to_have_attribute("data-answer", "accepted")
        await expect(answer_box).to_contain_text("accepted: SF, waybill SF14")
        parcel = (await stack.order(order_id))["parcels"][0]
        assert parcel["carrier"] == "SF" and parcel["waybill"].startswith("SF14")
        for _ in range(100):  # the order was told (parcel_ready): its hold flag goes
            status = await stack.order(order_id)
            if "no_carrier" not in status["flags"]:
                break
            await asyncio.sleep(0.2)
        assert "no_carrier" not in status["flags"]
        ready = [e for e in status["events"] if e.get("signal") == "parcel_ready"]
        assert ready and ready[0]["waybill"] == parcel["waybill"]
        await page.screenshot(path=str(tmp_path / "order-parcels.png"), full_page=True)
        await context.close()
