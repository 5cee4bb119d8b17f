"""The shipping desk with the shops, on the real dev server and the real worker (`build_worker`),
against the platforms' stand-in gateway: Cainiao waybills issued through a Taobao shop's stored
credentials (`TopCainiao` over `platforms.shops.top_clients`), and a shop's `merge` switch
(`oms shops add NAME --merge off`): two orders of one receiver share one parcel in a shop that
merges, and ship apart in a shop that does not."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from models.db import transaction
from shipping import standin as cainiao_standin
from shipping.parcels import parcels_of
from shipping.reference import load_carriers
from shipping.tables import WaybillRow
from tests.harness import ROOT
from tests.harness.platforms import SyncRig, ago, sync_rig

pytestmark = pytest.mark.e2e
LINES = [("TSHIRT-BLUE-L", 2, "59.00")]  # 118 yuan: free shipping; in stock at HZ
RECEIVER = {"name": "刘一", "phone": "13700001111", "state": "浙江省", "city": "杭州市",
            "district": "西湖区", "address": "文三路88号2幢301室", "zip": "310000"}


@pytest.fixture(params=["sqlite", "postgres"])
async def rig(request: pytest.FixtureRequest, dev_env: WorkflowEnvironment,
              tmp_path: Path) -> AsyncIterator[SyncRig]:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    async with sync_rig(dev_env.client, url, tmp_path / "home") as rig:
        yield rig


def one_buyer(rig: SyncRig, gateway: Any, count: int, modified: float, who: str,
              step: float = 30) -> list[str]:
    """`count` trades of one buyer to one receiver: as Taobao hands them out, the same
    `buyer_open_uid` and the same `oaid` (the receiver's id; the stand-in derives a new one
    per trade unless told)."""
    from platforms.standin.trades import taobao_trade

    tids = []
    for i in range(count):
        tid = rig.new_id("taobao")
        trade, plain = taobao_trade(tid, lines=LINES, modified=modified + i * step,
                                    receiver=RECEIVER)
        trade["buyer_open_uid"] = f"AAH-{rig.tag}-{who}"
        trade["oaid"] = f"oaid-{rig.tag}-{who}"
        gateway.shop.put(trade, plain)
        tids.append(tid)
    return tids


def cainiao_carriers(shop: str) -> list[dict[str, Any]]:
    """The sample carriers, ZTO's waybills from Cainiao through `shop`'s credentials."""
    carriers = json.loads((ROOT / "sample" / "carriers.json").read_text(encoding="utf-8"))
    for c in carriers:
        if c["code"] == "ZTO":
            c["waybill"] = {"kind": "cainiao", "shop": shop}
    return carriers


async def parcels_of_orders(rig: SyncRig, order_ids: list[str]) -> dict[str, list[dict]]:
    """Each order's parcels once all of them have a waybill (the release has run)."""

    def read() -> dict[str, list[dict]] | None:
        with transaction(rig.factory) as session:
            found = {o: parcels_of(session, o) for o in order_ids}
        ready = all(ps and all(p["waybill"] for p in ps) for ps in found.values())
        return found if ready else None

    return await rig.eventually(read, f"{order_ids} with waybills", timeout=90)


async def test_two_orders_of_a_merging_shop_share_one_cainiao_waybill(rig: SyncRig) -> None:
    gateway = rig.gateway("taobao")
    now = time.time()
    shop = rig.add("tbm", gateway, since=ago(3600))
    with transaction(rig.factory) as session:
        load_carriers(session, cainiao_carriers(shop))
    tids = one_buyer(rig, gateway, 2, now - 600, "a")
    result = await rig.run(shop)
    assert sum(w.imported for w in result.windows) == 2
    ids = [f"taobao-{t}" for t in tids]
    found = await parcels_of_orders(rig, ids)
    [parcel] = found[ids[0]]
    assert found[ids[1]] == [parcel] and sorted(parcel["orders"]) == ids
    # Issued by Cainiao (the stand-in) through the shop's stored credentials, asked under
    # the parcel key, with the routing code of its print data.
    issued = cainiao_standin.state(gateway.shop)
    assert list(issued.by_object.items()) == [(parcel["parcel_id"], parcel["waybill"])]
    assert parcel["waybill"].startswith("ZTO") and parcel["routing_code"]
    # Both releases may ask (the second joined before the first had its number): always
    # under the one parcel key, so Cainiao issued one number.
    assert issued.issued == 1 and issued.requests
    for request in issued.requests:
        assert request["cp_code"] == "ZTO"
        [dto] = request["trade_order_info_dtos"]
        assert dto["object_id"] == parcel["parcel_id"]
        assert set(dto["order_info"]["trade_order_list"]) <= set(ids)
    with transaction(rig.factory) as session:
        row = session.get(WaybillRow, parcel["waybill"])
        assert row is not None and row.kind == "cainiao"
    # Shipped at the desk: each order of the merged parcel is told `shipped` with the one
    # waybill, and the next sync writes it back to Taobao once per order, never again.
    from commands.shipping import ship_parcel

    outcomes = await ship_parcel(rig.client, rig.factory, parcel["parcel_id"])
    assert sorted(o["order_id"] for o in outcomes if o["accepted"]) == ids, outcomes
    await rig.run(shop)
    sent = sorted((s.tid, s.tracking) for s in gateway.shop.shipments)
    assert sent == sorted((t, parcel["waybill"]) for t in tids)
    await rig.run(shop)
    assert len(gateway.shop.shipments) == 2


async def test_a_shop_with_merge_off_ships_each_order_in_its_own_parcel(rig: SyncRig) -> None:
    gateway = rig.gateway("taobao")
    now = time.time()
    apart = rig.add("tbx", gateway, since=ago(3600), merge=False)
    with transaction(rig.factory) as session:
        load_carriers(session, cainiao_carriers(apart))
    tids = one_buyer(rig, gateway, 2, now - 600, "a")
    result = await rig.run(apart)
    assert sum(w.imported for w in result.windows) == 2
    ids = [f"taobao-{t}" for t in tids]
    found = await parcels_of_orders(rig, ids)
    [one], [two] = found[ids[0]], found[ids[1]]
    assert one["parcel_id"] != two["parcel_id"] and one["waybill"] != two["waybill"]
    assert one["orders"] == [ids[0]] and two["orders"] == [ids[1]]
    issued = cainiao_standin.state(gateway.shop).by_object.values()
    assert one["waybill"] in issued and two["waybill"] in issued
    # The same shop switched back on: the next pair of its orders to one receiver merges.
    from platforms.tables import Shop

    with transaction(rig.factory) as session:
        shop = session.get(Shop, apart)
        assert shop is not None
        shop.merge = True
        session.add(shop)
    # Modified just after the first run's cursor (the run's time less Taobao's 60 s lag),
    # and the next run once its window reaches them.
    cursor = datetime.fromisoformat(str(rig.shop(apart)["synced_through"])).timestamp()
    more = one_buyer(rig, gateway, 2, cursor + 1, "b", step=0.5)
    await asyncio.sleep(max(0.0, cursor + 63 - time.time()))
    await rig.run(apart)
    later = [f"taobao-{t}" for t in more]
    again = await parcels_of_orders(rig, later)
    assert again[later[0]] == again[later[1]] and sorted(again[later[0]][0]["orders"]) == later
