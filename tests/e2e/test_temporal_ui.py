"""The embedded Temporal Web UI shows an order's decoded input, while the server keeps ciphertext.

The stack as `worker.py --dev` builds it: the service's port bound first, the dev server
started by `DevServer` with `--ui-codec-endpoint` pointing at that service's `/codec`
routes, a worker, and the service (dev mode, loopback) beside it. Debian's Chromium opens
the order's page in the UI; the UI asks the codec endpoint and shows the buyer's name. The
same history read raw from the server (`temporal workflow show --output json`, no codec)
holds no trace of it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import async_playwright, expect

from commands.intake import submit_one
from models.db import make_engine, migrate, session_factory
from runtime.devserver import DevServer, free_dev_server_port
from runtime.temporal import connect
from runtime.worker import build_worker
from service.server import Beside, listen
from tests.conftest import binary
from tests.harness import codec_keys
from tests.harness.documents import make_order, service_policy
from tests.harness.reference import load_sample
from tests.harness.service import SESSION_SECRET

pytestmark = pytest.mark.e2e

BUYER = "韩梅梅"


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    url = f"sqlite:///{tmp_path / 'oms.db'}"
    settings = codec_keys.settings(
        home=tmp_path,
        database_url=url,
        task_queue=f"ui-{uuid.uuid4().hex[:8]}",
        temporal_address=f"127.0.0.1:{free_dev_server_port()}",
        http_address="127.0.0.1:0",
        session_secret=SESSION_SECRET,
        sdk_metrics_address="",
        policy=service_policy(),
    )
    listener = listen(settings, any_port_if_busy=True)
    settings = settings.model_copy(update={"http_address": listener.address})
    server = DevServer(settings)
    assert await asyncio.to_thread(server.start)
    try:
        await asyncio.to_thread(migrate, url)
        engine = make_engine(url)
        factory = session_factory(engine)
        load_sample(factory)
        client = await connect(settings)
        service = Beside(settings, dev=True, client=client, listener=listener)
        await service.start()
        try:
            async with build_worker(client, settings, factory, None):
                yield {"settings": settings, "server": server, "client": client}
        finally:
            await service.stop()
            engine.dispose()
    finally:
        await asyncio.to_thread(server.stop)


async def test_the_web_ui_shows_the_decoded_order_and_the_server_holds_ciphertext(
    stack: dict[str, Any], tmp_path: Path
) -> None:
    settings, server = stack["settings"], stack["server"]
    assert server.codec_endpoint == f"http://{settings.http_address}/codec"
    order = make_order(f"UI-{uuid.uuid4().hex[:8]}", [("TSHIRT-RED-M", 1)])
    order = order.model_copy(update={"buyer": order.buyer.model_copy(update={"name": BUYER})})
    assert await submit_one(stack["client"], settings, order) == "started"

    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            page = await browser.new_page(viewport={"width": 1366, "height": 900})
            decoded = []
            page.on("response", lambda r: decoded.append(r.status) if "/codec/decode" in r.url else None)
            await page.goto(f"{server.ui_url}/namespaces/default/workflows/order-{order.order_id}")
            await expect(page.get_by_text(f'"{BUYER}"').first).to_be_visible(timeout=60_000)
            await page.screenshot(path=str(tmp_path / "temporal-ui-decoded.png"), full_page=True)
            assert decoded and set(decoded) == {200}, decoded  # the UI asked our codec endpoint
        finally:
            await browser.close()

    raw = await asyncio.to_thread(
        subprocess.run,
        [binary("temporal"), "workflow", "show", "--address", settings.temporal_address,
         "--workflow-id", f"order-{order.order_id}", "--output", "json"],
        capture_output=True, text=True, timeout=60, check=True,
    )
    history = json.loads(raw.stdout)
    assert len(history["events"]) > 3
    assert BUYER not in raw.stdout and order.buyer.phone not in raw.stdout
    assert "binary/encrypted" in raw.stdout or "YmluYXJ5L2VuY3J5cHRlZA" in raw.stdout
