"""The clerk's console in a real browser: Debian's Chromium driven by Playwright, at 1366x768.

The service, worker and database are real (`running_service`); the clerk signs in with a key,
works the queue, confirms a buyer's correction, approves, decides a shortage, cancels and
restocks, each through the page's forms (named as the API's fields, buttons carrying
`data-action`), and reads the workflow's answer on the page. A screenshot of every page is
kept under the test's tmp_path.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.harness.documents import HOT
from tests.harness.service import ServiceStack, running_service

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
async def svc(dev_env: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServiceStack]:
    async with running_service(dev_env, tmp_path_factory.mktemp("svc-console")) as stack:
        yield stack


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN")
    page = await context.new_page()
    page.set_default_timeout(20_000)
    try:
        yield page
    finally:
        await context.close()


async def sign_in(page: Page, svc: ServiceStack, role: str = "clerk") -> None:
    await page.goto(svc.url + "/")
    await expect(page).to_have_url(re.compile(r"/login"))
    await page.fill("input[name=key]", svc.keys[role])
    await page.click("button[data-action=sign-in]")


async def shot(page: Page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000, f"{name}: an empty screenshot"
    return path


async def wait_page_stage(page: Page, svc: ServiceStack, order_id: str, *stages: str,
                          timeout: float = 60.0) -> str:
    """Reload the order's page until its stage badge shows one of `stages`."""
    deadline = time.monotonic() + timeout
    stage = ""
    while time.monotonic() < deadline:
        await page.goto(f"{svc.url}/orders/{order_id}")
        stage = await page.get_attribute("[data-stage]", "data-stage") or ""
        if stage in stages:
            return stage
        await asyncio.sleep(0.5)
    raise AssertionError(f"{order_id}: the page shows {stage}, not {stages}")


def tag() -> str:
    return uuid.uuid4().hex[:6]


async def test_sign_in_is_refused_to_a_platform_key_and_accepted_for_a_clerk(
    page: Page, svc: ServiceStack, tmp_path: Path
) -> None:
    await page.goto(svc.url + "/")
    await expect(page).to_have_url(re.compile(r"/login"))
    await page.fill("input[name=key]", svc.keys["platform"])
    await page.click("button[data-action=sign-in]")
    await expect(page.locator(".error")).to_contain_text("platform")
    await expect(page.locator(".error")).to_contain_text("clerk")
    await shot(page, tmp_path, "login-refused")
    cookies = await page.context.cookies()
    assert all(c["name"] != "oms_console" or "key_name" not in c["value"] for c in cookies)

    await page.fill("input[name=key]", "oms_not-a-real-key")
    await page.click("button[data-action=sign-in]")
    await expect(page.locator(".error")).to_contain_text("Unknown or revoked")

    await page.fill("input[name=key]", svc.keys["clerk"])
    await page.click("button[data-action=sign-in]")
    await expect(page.locator("header .who")).to_contain_text("test-clerk")
    session = next(c for c in await page.context.cookies() if c["name"] == "oms_console")
    assert session["httpOnly"] and svc.keys["clerk"] not in session["value"]
    # a form without this session's CSRF token is refused
    r = await page.request.post(svc.url + "/logout", form={"csrf_token": "forged"})
    assert r.status == 403


async def test_the_queue_shows_an_order_waiting_for_the_buyer_and_its_page_confirms_it(
    page: Page, svc: ServiceStack, tmp_path: Path
) -> None:
    order_id = f"UI-BUYER-{tag()}"
    doc = svc.doc(order_id)
    doc["address"]["detail"] = "世纪大道"  # no door number: the buyer must say
    # a platform's ship-by time, within ship_by.warn (6 h): the queue's first row, marked soon
    doc["ship_by"] = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    await svc.submit(doc)
    await svc.wait_stage(order_id, "awaiting_buyer")

    await sign_in(page, svc)
    await page.click("a[data-tab=buyer]")
    await expect(page).to_have_url(re.compile(r"[?&]tab=buyer"))  # swapped in (htmx), not the old table
    row = page.locator(f"tr[data-order='{order_id}']")
    await expect(row).to_be_visible()
    await expect(row).to_contain_text("门牌号")  # the finding, in one line, in Chinese
    await expect(page.locator("tbody tr").first).to_have_attribute("data-order", order_id)
    await expect(row.locator("[data-ship-by=soon] .due.soon")).to_contain_text(
        re.compile(r"剩 (1h 5\dm|2h 00m)"))
    await expect(page.locator("a[data-tab=buyer] .count")).not_to_have_text("0")
    await shot(page, tmp_path, "queue")

    await row.locator("a").first.click()
    await expect(page.locator("[data-stage]")).to_have_attribute("data-stage", "awaiting_buyer")
    await expect(page.locator(".finding").first).to_contain_text("门牌号")
    await expect(page.locator(".message").first).to_be_visible()  # the message sent to the buyer
    form = page.locator("form[data-form=confirm]")
    await form.locator("input[name=detail]").fill("世纪大道100号2幢301室")
    await form.locator("textarea[name=note]").fill("电话联系买家确认门牌号")
    await form.locator("select[name=channel]").select_option("phone")
    await form.locator("input[name=parcel_locker]").check()
    await form.locator("button[data-action=confirm]").click()
    answer = page.locator("[data-answer]")
    await expect(answer).to_have_attribute("data-answer", "accepted")
    await expect(answer).to_contain_text("confirm")
    await shot(page, tmp_path, "order-confirmed")

    stage = await wait_page_stage(page, svc, order_id, "released")
    assert stage == "released"
    status = await svc.order(order_id)
    assert "快递柜" in (status["remarks"] or "")
    await shot(page, tmp_path, "order")


async def test_approve_decide_and_cancel_from_their_forms(
    page: Page, svc: ServiceStack, tmp_path: Path
) -> None:
    t = tag()
    big, short, unpaid = f"UI-BIG-{t}", f"UI-SHORT-{t}", f"UI-UNPAID-{t}"
    await svc.submit(
        svc.doc(big, [("PHONE-X1", 1)]),  # over the approval threshold
        svc.doc(short, [(HOT, 2)]),  # none in stock: backordered
        svc.doc(unpaid, payment="pending"),
    )
    await svc.wait_stage(big, "awaiting_approval")
    await svc.wait_stage(short, "backordered")
    await svc.wait_stage(unpaid, "awaiting_payment")
    await sign_in(page, svc)

    await page.goto(f"{svc.url}/orders/{big}")
    await page.locator("form[data-form=approve] input[name=note]").fill("已电话核实买家")
    await page.click("button[data-action=approve]")
    await expect(page.locator("[data-answer]")).to_have_attribute("data-answer", "accepted")
    await shot(page, tmp_path, "approved")
    assert await wait_page_stage(page, svc, big, "released") == "released"

    await page.goto(f"{svc.url}/orders/{short}")
    await page.locator("form[data-form=decide] select[name=decision]").select_option("cancel")
    await page.click("button[data-action=decide]")
    await expect(page.locator("[data-answer]")).to_have_attribute("data-answer", "accepted")
    await shot(page, tmp_path, "decided")
    assert await wait_page_stage(page, svc, short, "cancelled") == "cancelled"

    await page.goto(f"{svc.url}/orders/{unpaid}")
    # a refusal is shown too: an empty reason is the form's to catch, a bad amount the API's
    await page.locator("form[data-form=pay] input[name=amount]").fill("-5")
    await page.locator("form[data-form=pay] input[name=txn]").fill("T-1")
    await page.click("button[data-action=pay]")
    await expect(page.locator("[data-answer]")).to_have_attribute("data-answer", "refused")
    await expect(page.locator("[data-answer]")).to_contain_text("amount")
    await page.locator("form[data-form=cancel] input[name=reason]").fill("买家申请取消")
    await page.click("button[data-action=cancel]")
    await expect(page.locator("[data-answer]")).to_have_attribute("data-answer", "accepted")
    assert await wait_page_stage(page, svc, unpaid, "cancelled") == "cancelled"
    await expect(page.locator("form[data-form=cancel]")).to_have_count(0)  # nothing left to do
    await shot(page, tmp_path, "cancelled")


async def test_restock_from_the_stock_page_serves_the_waiting_order(
    page: Page, svc: ServiceStack, tmp_path: Path
) -> None:
    waiting = f"UI-WAIT-{tag()}"
    await svc.submit(svc.doc(waiting, [("TEA-LONGJING-250G", 1)]))
    await svc.wait_stage(waiting, "backordered")
    await sign_in(page, svc)
    await page.click("header nav a[href='/stock']")
    await expect(page.locator("tr[data-sku='TSHIRT-RED-M'][data-warehouse='HZ']")).to_be_visible()
    await shot(page, tmp_path, "stock")

    form = page.locator("form[data-form=restock]")
    await form.locator("select[name=sku]").select_option("TEA-LONGJING-250G")
    await form.locator("input[name=qty]").fill("3")
    await form.locator("select[name=warehouse]").select_option("HZ")
    await form.locator("button[data-action=restock]").click()
    answer = page.locator("[data-answer]")
    await expect(answer).to_have_attribute("data-answer", "accepted")
    await expect(answer).to_contain_text(waiting)
    await shot(page, tmp_path, "restocked")
    await svc.wait_stage(waiting, "released")
    await page.goto(svc.url + "/stock?sku=TEA-LONGJING-250G")
    row = page.locator("tr[data-sku='TEA-LONGJING-250G'][data-warehouse='HZ']")
    await expect(row.locator("td").nth(3)).to_have_text("3")  # on hand
    await expect(row.locator("td").nth(4)).to_have_text("1")  # reserved for the served order


async def test_the_report_page_and_the_cjk_text_render(
    page: Page, svc: ServiceStack, tmp_path: Path
) -> None:
    await sign_in(page, svc)
    await page.click("header nav a[href='/report']")
    await expect(page.locator("[data-tile=need-a-hand]")).to_be_visible()
    assert await page.locator("svg.chart").count() == 4
    await shot(page, tmp_path, "report")
    # Legible Chinese needs a CJK font on the machine (.ci/run installs fonts-noto-cjk);
    # without one Chromium draws the heading as empty boxes.
    families = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True)
    assert families.stdout.strip(), "no CJK font installed: apt-get install fonts-noto-cjk"
    heading = await page.locator("h1").first.bounding_box()
    assert heading is not None and heading["height"] > 15


async def test_a_refused_write_back_is_resent_or_cleared_from_the_order_page(
    page: Page, svc: ServiceStack, tmp_path: Path
) -> None:
    from models.db import transaction
    from models.tables import Order, OrderFlag
    from platforms.tables import WriteBack

    oid = f"UI-WB-{tag()}"
    await svc.submit(svc.doc(oid))
    await svc.wait_stage(oid, "released")
    with transaction(svc.factory) as session:  # as the shop's sync records a refusal
        order = session.get(Order, oid)
        order.flags = [*(order.flags or []), "platform_ship_refused"]
        session.add(order)
        session.add(OrderFlag(order_id=oid, flag="platform_ship_refused", created_at=order.created_at))
        session.add(WriteBack(event_id=f"{oid}:wb", order_id=oid, shop="tb-main",
                              shipment_id=f"{oid}-1", carrier="SF", tracking_no="SF40001",
                              status="refused", reason="订单退款中，不能发货",
                              at=datetime.now(UTC)))  # fmt: skip
    await sign_in(page, svc)
    await page.goto(f"{svc.url}/orders/{oid}")
    form = page.locator("form[data-form=write-back]")
    await expect(form).to_contain_text("Tracking refused by the platform")
    await form.locator("input[name=note]").fill("买家已撤销退款 13812345678")
    await page.click("button[data-action=resend-write-back]")
    answer = page.locator("[data-answer]")
    await expect(answer).to_have_attribute("data-answer", "accepted")
    await expect(answer).to_contain_text("SF SF40001 sent again at shop tb-main's next sync")
    await shot(page, tmp_path, "write-back-resent")
    await page.click("button[data-action=resend-write-back]")  # nothing refused any more
    await expect(answer).to_have_attribute("data-answer", "refused")
    await expect(answer).to_contain_text("has no write-back the platform refused")
    await page.click("button[data-action=clear-flag]")
    await expect(answer).to_have_attribute("data-answer", "accepted")
    await expect(answer).to_contain_text("platform_ship_refused cleared")
    await expect(form).to_have_count(0)
    with transaction(svc.factory) as session:
        assert session.get(WriteBack, f"{oid}:wb").status == "waiting"
        assert "platform_ship_refused" not in session.get(Order, oid).flags
    events = (await svc.order(oid))["events"]
    resent = [e for e in events if e["type"] == "write_back_resent"]
    assert len(resent) == 1 and "13812345678" not in str(resent) and resent[0]["by"] == "test-clerk"
