"""The README's console screenshots (docs/console.png, docs/console-order.png,
docs/console-search.png, docs/console-paste.png), remade.

Starts a dev server, the service with a worker (`tests/service_helpers.running_service`),
submits the sample orders through the API, then has Debian's Chromium take the work queue and
the first order waiting for the buyer at 1366x768.

    .venv/bin/python docs/screenshots.py
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


async def main() -> None:
    from playwright.async_api import async_playwright
    from temporalio.testing import WorkflowEnvironment

    from models.search import SEARCH_ATTRIBUTES
    from models.settings import Settings
    from runtime.devserver import temporal_binary
    from runtime.logs import configure_logging
    from tests.harness.codec_keys import converter  # the service's codec, as the tests run it
    from tests.harness.service import running_service

    configure_logging(Settings(log_level="WARNING"))
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(), data_converter=converter(),
        search_attributes=SEARCH_ATTRIBUTES, dev_server_log_level="error",
    )
    try:
        with tempfile.TemporaryDirectory() as home:
            async with running_service(env, Path(home), stock={("MUG-WHITE", "HZ"): 0}) as svc:
                docs = []
                for name in ("flawed-orders.json", "orders.json", "demo-orders.json"):
                    docs += json.loads((ROOT / "sample" / name).read_text(encoding="utf-8"))
                for i, doc in enumerate(docs):  # a morning's orders, a few minutes apart
                    doc["created_at"] = f"2026-12-01T0{8 + i // 10}:{(i * 7) % 60:02d}:00+08:00"
                await svc.submit(*docs)
                for _ in range(120):  # let them reach their waits (a loaded box takes longer)
                    r = await svc.get("/v1/orders", params={"waiting_for": "buyer"})
                    if len(r.json()["orders"]) >= 2:
                        break
                    await asyncio.sleep(1)
                await asyncio.sleep(5)
                async with async_playwright() as p:
                    browser = await p.chromium.launch(executable_path="/usr/bin/chromium",
                                                      args=["--no-sandbox"])
                    context = await browser.new_context(viewport={"width": 1366, "height": 768},
                                                        locale="zh-CN")
                    page = await context.new_page()
                    await page.goto(svc.url + "/login")
                    await page.fill("input[name=key]", svc.keys["clerk"])
                    await page.click("button[data-action=sign-in]")
                    await page.goto(svc.url + "/?tab=buyer")
                    await page.screenshot(path=str(ROOT / "docs" / "console.png"))
                    first = await page.locator("tr[data-order] a").first.get_attribute("href")
                    await page.goto(svc.url + str(first))
                    await page.screenshot(path=str(ROOT / "docs" / "console-order.png"))
                    # issue 21: paste-to-fill on that order, then the queue searched and ticked
                    await page.fill("form[data-form=confirm] textarea[name=paste]",
                                    "收件人：张三\n电话：138-1234-5678\n"
                                    "地址：浙江杭州西湖区文三路100号3幢501室")
                    await page.click("form[data-form=confirm] button[data-action=parse]")
                    await page.wait_for_selector("[data-parsed]")
                    await page.screenshot(path=str(ROOT / "docs" / "console-paste.png"))
                    await page.goto(svc.url + "/?q=DEMO")
                    await page.check("input[data-select-all]")
                    await page.screenshot(path=str(ROOT / "docs" / "console-search.png"))
                    await browser.close()
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
