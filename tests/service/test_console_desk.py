"""The clerk's desk at volume in a real browser (Debian's Chromium, Playwright): search,
select, bulk approve, paste-to-fill then confirm, the keyboard, China time on the page.

The service, worker, database and Temporal dev server are real (`running_service`), with a
search key set so that names and phone digits are searchable. Screenshots are kept under
the test's tmp_path (and, with OMS_SCREENSHOTS=DIR, copied there for the README)."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.harness.service import ServiceStack, running_service

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
SEARCH_KEY = "desk-test-search-key-" + "s" * 24


@pytest.fixture(scope="module")
def search_key() -> Iterator[None]:
    """OMS_SEARCH_KEY for the settings this module's stack is built with."""
    old = os.environ.get("OMS_SEARCH_KEY")
    os.environ["OMS_SEARCH_KEY"] = SEARCH_KEY
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("OMS_SEARCH_KEY", None)
        else:
            os.environ["OMS_SEARCH_KEY"] = old


@pytest.fixture(scope="module")
async def svc(dev_env: Any, search_key: None,
              tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServiceStack]:
    async with running_service(dev_env, tmp_path_factory.mktemp("svc-desk"),
                               stock={("PHONE-X1", "HZ"): 100}) as stack:
        assert stack.settings.search_key is not None
        yield stack


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM,
                                    args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN",
                                        timezone_id="Europe/London")  # not the merchant's zone
    page = await context.new_page()
    page.set_default_timeout(30_000)
    try:
        yield page
    finally:
        await context.close()


async def sign_in(page: Page, svc: ServiceStack) -> None:
    await page.goto(svc.url + "/")
    await page.fill("input[name=key]", svc.keys["clerk"])
    await page.click("button[data-action=sign-in]")
    await expect(page.locator("header .who")).to_contain_text("test-clerk")


async def shot(page: Page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000, f"{name}: an empty screenshot"
    keep = os.environ.get("OMS_SCREENSHOTS")
    if keep:
        shutil.copy(path, Path(keep) / path.name)
    return path


async def test_search_select_and_bulk_approve(page: Page, svc: ServiceStack, tmp_path: Path) -> None:
    t = uuid.uuid4().hex[:6].upper()
    big = [f"DESK{t}-{i}" for i in range(3)]
    clean = f"DESK{t}-OK"
    docs = [svc.doc(o, [("PHONE-X1", 1)]) for o in big] + [svc.doc(clean)]
    docs[0]["buyer"]["name"] = "韩梅梅"
    docs[0]["buyer"]["phone"] = "13911117788"
    await svc.submit(*docs)
    for o in big:
        await svc.wait_stage(o, "awaiting_approval")
    await svc.wait_stage(clean, "released")

    await sign_in(page, svc)
    await page.keyboard.press("/")  # the keyboard: / focuses the search box
    await expect(page.locator("input[name=q]")).to_be_focused()
    await page.keyboard.type(f"DESK{t}")
    await page.keyboard.press("Enter")
    rows = page.locator("tr[data-order]")
    await expect(rows).to_have_count(4)
    await shot(page, tmp_path, "console-search")
    # by the buyer's name and by the phone's last four digits
    for q in ("韩梅梅", "7788"):
        await page.fill("input[name=q]", q)
        await page.click("button[data-action=search]")
        await expect(page.locator(f"tr[data-order='{big[0]}']")).to_be_visible()
    await page.goto(f"{svc.url}/?q=DESK{t}")
    await expect(rows).to_have_count(4)

    await page.check("input[data-select-all]")  # select all on the page
    assert await page.locator("input[name=order_ids]:checked").count() == 4
    await page.fill("#bulk input[name=note]", "批量核实 bulk check")
    await page.click("button[data-action=bulk-approve]")
    answer = page.locator("[data-answer=bulk]")
    await expect(answer).to_have_attribute("data-accepted", "3")
    await expect(answer).to_have_attribute("data-refused", "1")
    await expect(page.locator(f"tr[data-result='{clean}']")).to_contain_text("not waiting for approval")
    for o in big:
        await expect(page.locator(f"tr[data-result='{o}']")).to_have_attribute("data-accepted", "yes")
    await shot(page, tmp_path, "console-bulk")
    for o in big:
        await svc.wait_stage(o, "released")


async def test_paste_to_fill_then_confirm_and_china_time(page: Page, svc: ServiceStack,
                                                        tmp_path: Path) -> None:
    order_id = f"DESK-BUYER-{uuid.uuid4().hex[:6]}"
    doc = svc.doc(order_id)
    doc["address"]["detail"] = "文三路"  # no door number: the buyer is asked
    await svc.submit(doc)
    await svc.wait_stage(order_id, "awaiting_buyer")
    await sign_in(page, svc)

    # the keyboard: j moves to the first order of the Buyer tab, Enter opens it
    await page.click("a[data-tab=buyer]")
    # the tab swaps the queue in (htmx) and pushes its URL as it swaps: a row found before
    # that is the old table's, and its cursor would go with it
    await expect(page).to_have_url(re.compile(r"[?&]tab=buyer"))
    await page.wait_for_load_state("networkidle")
    row = page.locator(f"tr[data-order='{order_id}']")
    await expect(row).to_be_visible()
    for _ in range(await page.locator("tr[data-order]").count()):
        if await row.get_attribute("class") and "cursor" in (await row.get_attribute("class") or ""):
            break
        await page.keyboard.press("j")
    await expect(row).to_have_class(re.compile("cursor"))
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(re.compile(f"/orders/{order_id}$"))

    # China time, the zone named once, whatever the browser's zone
    status = await svc.order(order_id)
    created = datetime.fromisoformat(status["created_at"]).astimezone(ZoneInfo("Asia/Shanghai"))
    await expect(page.locator("header .zone")).to_have_text(re.compile(r"Asia/Shanghai \(UTC\+08:00\)"))
    assert (await page.inner_text("body")).count("Asia/Shanghai") == 1
    await expect(page.locator(".facts")).to_contain_text(created.strftime("%m-%d %H:%M:%S"))

    form = page.locator("form[data-form=confirm]")
    await form.locator("textarea[name=paste]").fill(
        "收件人：张三\n电话：138-1234-5678\n地址：浙江杭州西湖区文三路100号3幢501室")
    await form.locator("button[data-action=parse]").click()
    form = page.locator("form[data-form=confirm]")
    await expect(form.locator("input[name=detail]")).to_have_value("文三路100号3幢501室")
    await expect(form.locator("input[name=phone]")).to_have_value("13812345678")
    await expect(form.locator("input[name=name]")).to_have_value("张三")
    await expect(form.locator("input[name=province]")).to_have_value("浙江省")
    await expect(form.locator("input[name=city]")).to_have_value("杭州市")
    await expect(form.locator("input[name=district]")).to_have_value("西湖区")
    await shot(page, tmp_path, "console-paste")
    r = await svc.get(f"/v1/orders/{order_id}")
    assert r.json()["stage"] == "awaiting_buyer"  # parsing saved nothing

    await form.locator("textarea[name=note]").fill("买家旺旺回复完整地址")
    await form.locator("button[data-action=confirm]").click()
    await expect(page.locator("[data-answer]")).to_have_attribute("data-answer", "accepted")
    await svc.wait_stage(order_id, "released")
    await page.goto(f"{svc.url}/orders/{order_id}")
    await expect(page.locator(".timeline")).to_contain_text("已下发仓库")
    await shot(page, tmp_path, "console-confirmed")
