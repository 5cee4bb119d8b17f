"""`/v1/shops` (SPEC §5.9): admin keys only, fields named when wrong, no secret ever returned."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from platforms.standin import StandinGateway, StandinShop
from tests.harness.platforms import Trades
from tests.harness.service import ServiceStack, running_service

SECRET = "api-secret-9d8c7b6a5f"
TOKEN = "api-token-0a1b2c3d4e"


@pytest.fixture
async def svc(dev_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[ServiceStack]:
    async with running_service(dev_env, tmp_path / "home") as stack:
        yield stack


async def test_shops_over_http(svc: ServiceStack) -> None:
    shop = StandinShop("pdd", app_key="api-key", app_secret=SECRET, session=TOKEN)
    trades = Trades()
    now = time.time()
    sns = trades.fill(gateway := StandinGateway(shop).start(), 6, start=now - 3000, end=now - 400)
    name = f"pdd-{trades.tag}"
    body = {
        "name": name,
        "platform": "pdd",
        "app_key": "api-key",
        "app_secret": SECRET,
        "session": TOKEN,
        "api_url": gateway.url,
        "poll_every": "PT5S",
        "since": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        "carrier_ids": {"SF": 44},
    }
    try:
        for role in ("clerk", "platform", "warehouse"):
            r = await svc.post("/v1/shops", role, json=body)
            assert r.status_code == 403 and "manage platform shops" in r.json()["error"]
        assert (await svc.http.get("/v1/shops")).status_code == 401
        r = await svc.post("/v1/shops", "admin", json=body)
        assert r.status_code == 200, r.text
        assert SECRET not in r.text and TOKEN not in r.text
        assert r.json()["schedule"] == f"shop-sync-{name}"
        again = await svc.post("/v1/shops", "admin", json=body)
        assert again.status_code == 409 and again.json()["field"] == "name"
        bad = await svc.post(
            "/v1/shops",
            "admin",
            json=body | {"name": "x", "platform": "ebay", "poll_every": "often"},
        )
        assert bad.status_code == 422
        assert {e["field"] for e in bad.json()["errors"]} == {"platform", "poll_every"}
        for junk in (b"not json", b"[1, 2]", b'"text"'):
            r = await svc.post(
                "/v1/shops", "admin", content=junk, headers={"Content-Type": "application/json"}
            )
            assert r.status_code in (400, 422), r.text
        # the schedule's first run takes the orders in
        deadline = time.monotonic() + 60
        while True:
            r = await svc.get("/v1/shops", "admin")
            assert r.status_code == 200 and SECRET not in r.text and TOKEN not in r.text
            mine = next(s for s in r.json() if s["name"] == name)
            if mine["imported"] == 6:
                break
            assert time.monotonic() < deadline, mine
            await asyncio.sleep(0.3)
        for sn in sns:
            assert (await svc.get(f"/v1/orders/pdd-{sn}")).status_code == 200
        r = await svc.post(f"/v1/shops/{name}/pause", "admin")
        assert r.status_code == 200 and r.json()["state"] == "paused"
        r = await svc.post(f"/v1/shops/{name}/resume", "admin")
        assert r.status_code == 200 and r.json()["state"] == "syncing"
        r = await svc.post(f"/v1/shops/{name}/token", "admin", json={"session": "new-" + TOKEN})
        assert r.status_code == 200 and "new-" + TOKEN not in r.text
        r = await svc.post(f"/v1/shops/{name}/token", "admin", json={"session": 5})
        assert r.status_code == 422 and r.json()["field"] == "session"
        r = await svc.post(f"/v1/shops/{name}/sync", "admin", json={"since": "yesterday"})
        assert r.status_code == 422 and r.json()["field"] == "since"
        r = await svc.post(f"/v1/shops/{name}/sync", "admin", json={"since": body["since"]})
        assert r.status_code == 422 and r.json()["field"] == "until"
        r = await svc.post(f"/v1/shops/{name}/sync", "admin")
        assert r.status_code == 200 and r.json()["backfill"] is False
        assert (await svc.post("/v1/shops/nope/pause", "admin")).status_code == 404
        # its settings after `add`: admin only, each field judged as `add` judges it
        patch = lambda path, role, **kw: svc.http.patch(path, headers=svc.auth(role), **kw)  # noqa: E731
        r = await patch(f"/v1/shops/{name}", "clerk", json={"merge": False})
        assert r.status_code == 403
        r = await patch(f"/v1/shops/{name}", "admin",
                        json={"carrier_ids": "SF=44,ZTO=115", "merge": False})
        assert r.status_code == 200, r.text
        assert r.json()["carrier_ids"] == {"SF": 44, "ZTO": 115} and r.json()["merge"] is False
        assert sorted(r.json()["changed"]) == ["carrier_ids", "merge"] and SECRET not in r.text
        r = await patch(f"/v1/shops/{name}", "admin", json={"ship_within": "soon", "x": 1})
        assert r.status_code == 422 and {e["field"] for e in r.json()["errors"]} == {"ship_within", "x"}
        r = await patch(f"/v1/shops/{name}", "admin", json={})
        assert r.status_code == 422 and "at least one" in r.json()["error"]
        assert (await patch("/v1/shops/nope", "admin", json={"merge": True})).status_code == 404
        # a flag raised beside the order (as the sync raises a refused write-back's) is cleared
        # by a clerk once settled; the order's own flags are not
        from models.db import transaction
        from models.tables import Order, OrderFlag

        oid = f"pdd-{sns[0]}"
        with transaction(svc.factory) as session:
            order = session.get(Order, oid)
            order.flags = [*(order.flags or []), "platform_ship_refused"]
            session.add(order)
            session.add(OrderFlag(order_id=oid, flag="platform_ship_refused",
                                  created_at=order.created_at))
        clear = f"/v1/orders/{oid}/flags/platform_ship_refused/clear"
        assert (await svc.post(clear, "warehouse", json={})).status_code == 403
        r = await svc.post(clear, "clerk", json={"note": 5})
        assert r.status_code == 422 and r.json()["field"] == "note"
        r = await svc.post(clear, "clerk", json={"note": "resent by hand on Pinduoduo"})
        assert r.status_code == 200 and "platform_ship_refused" not in r.json()["flags"], r.text
        assert (await svc.post(clear, "clerk")).status_code == 409
        r = await svc.post(f"/v1/orders/{oid}/flags/pick_overdue/clear", "clerk")
        assert r.status_code == 422 and r.json()["field"] == "flag"
        assert (await svc.post("/v1/orders/nope/flags/platform_ship_refused/clear",
                               "clerk")).status_code == 404
        # a refused write-back is sent again at the shop's next sync (as the sync records one)
        from platforms.tables import WriteBack

        resend = f"/v1/orders/{oid}/write-back/resend"
        assert (await svc.post(resend, "clerk")).status_code == 409  # nothing refused yet
        with transaction(svc.factory) as session:
            session.add(WriteBack(event_id=f"{oid}:wb", order_id=oid, shop=name,
                                  shipment_id=f"{oid}-1", carrier="SF", tracking_no="SF20001",
                                  status="refused", reason="订单退款中，不能发货",
                                  at=datetime.now(UTC)))  # fmt: skip
        assert (await svc.post(resend, "warehouse")).status_code == 403
        r = await svc.post(resend, "clerk", json={"note": ["x"]})
        assert r.status_code == 422 and r.json()["field"] == "note"
        r = await svc.post(resend, "clerk", json={"note": "buyer withdrew the refund"})
        assert r.status_code == 200, r.text
        assert r.json()["resent"] == [{"shop": name, "shipment_id": f"{oid}-1", "carrier": "SF",
                                       "tracking_no": "SF20001"}]  # fmt: skip
        with transaction(svc.factory) as session:
            row = session.get(WriteBack, f"{oid}:wb")
            assert (row.status, row.reason) == ("waiting", "sent again by test-clerk")
        r = await svc.post(resend, "clerk")
        assert r.status_code == 409 and r.json()["field"] == "order_id"
        assert (await svc.post("/v1/orders/nope/write-back/resend", "clerk")).status_code == 404
        await svc.post(f"/v1/shops/{name}/pause", "admin")
    finally:
        gateway.stop()
