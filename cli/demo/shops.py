"""The demo's shops (issue 19): a Taobao and a Pinduoduo shop whose orders come in by sync.

Two stand-in gateways start in this process (`platforms.standin`), each with a few paid
orders of the last hours; `shops add` points a shop at each (their Temporal Schedules poll
every 5 seconds). Then, as a merchant would see it: the orders come in window by window,
one Taobao parcel ships and its tracking is written back to Taobao once, and a buyer asks
Taobao for a refund of an order already released to the warehouse: the order is held and
its pick list withdrawn (拦截; its `shipped` is refused) until the buyer withdraws the refund.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from cli.demo.play import DemoFailure, say

LINES = [("TSHIRT-RED-M", 2, "59.00")]  # 118 yuan: free shipping, in stock at HZ


async def _until(check: Any, what: str, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"not {what} within {timeout:.0f}s")
        await asyncio.sleep(0.5)


async def run_shops(ctx: Any, settings: Any, client: Any, run_id: str) -> list[str]:
    """The shops' part of the demo; the problems found (none when all went as expected)."""
    from commands.shops import ShopCommands
    from platforms.standin import StandinGateway, StandinShop
    from platforms.standin.trades import pdd_order, taobao_trade
    from runtime.codec import key_ring

    commands = ShopCommands(ctx.factory, settings, key_ring(settings))
    now = time.time()
    base = int(uuid.uuid4().int % 10**12)
    tb = StandinShop("taobao", app_key="demo-tb", app_secret=uuid.uuid4().hex, session="tb-s")
    pdd = StandinShop("pdd", app_key="demo-pdd", app_secret=uuid.uuid4().hex, session="pdd-t")
    tids = [f"39{base + i:014d}" for i in range(3)]
    sns = [f"261205-{base + i:015d}" for i in range(2)]
    for i, tid in enumerate(tids):
        tb.put(
            *taobao_trade(
                tid,
                lines=LINES,
                modified=now - 3600 + i * 600,
                receiver=_receiver(base, i),
                buyer_message="请尽快发货" if i == 0 else "",
            )
        )
    for i, sn in enumerate(sns):
        order = pdd_order(
            sn, lines=LINES, modified=now - 3000 + i * 600, receiver=_receiver(base, 10 + i)
        )
        pdd.put(*order)
    gateways = [StandinGateway(tb).start(), StandinGateway(pdd).start()]
    problems: list[str] = []
    names = {"taobao": f"demo-tb-{run_id}", "pdd": f"demo-pdd-{run_id}"}
    try:
        say("\nplatform shops: a Taobao and a Pinduoduo stand-in on localhost")
        since = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
        for gateway in gateways:
            shop = gateway.shop
            added = await commands.add(
                client,
                {
                    "name": names[shop.platform],
                    "platform": shop.platform,
                    "app_key": shop.app_key,
                    "app_secret": shop.app_secret,
                    "session": shop.session,
                    "api_url": gateway.url,
                    "poll_every": "PT5S",
                    "since": since,
                    "carrier_ids": "SF=44,ZTO=115",
                },
            )
            say(
                f"  shops add {added['name']}: {shop.platform} at {gateway.url}, "
                f"schedule {added['schedule']}"
            )

        def imported(name: str) -> int:
            return next(s for s in commands.list() if s["name"] == name)["imported"]

        await _until(
            lambda: imported(names["taobao"]) == 3 and imported(names["pdd"]) == 2,
            "every platform order imported",
        )
        for s in commands.list():
            if s["name"] in names.values():
                say(
                    f"  {s['name']}: {s['state']}, {s['imported']} orders imported, "
                    f"synced through {s['synced_through']}"
                )
        decrypted = len(commands.pii_log())
        say(f"  receivers decrypted through the platforms and logged: {decrypted} (oms pii-log)")

        async def stage(order_id: str) -> str:
            state = await client.get_workflow_handle(f"order-{order_id}").query("state")
            return str(state["stage"])

        # one write-back
        shipped_id = f"taobao-{tids[0]}"
        await _until(lambda: _eq(stage(shipped_id), "released"), f"{shipped_id} released")
        from cli.demo.desk import ship_at_desk

        how = await ship_at_desk(ctx, client, shipped_id)
        if how is None:  # no parcel with a waybill: the warehouse's own tracking
            handle = client.get_workflow_handle(f"order-{shipped_id}")
            await handle.execute_update(
                "shipped",
                {"shipment": 1, "carrier": "SF", "tracking_no": f"SF{base % 10**10:010d}"},
            )
            how = "SF"
        say(f"  the warehouse ships {shipped_id} ({how}); the next sync tells Taobao:")
        await _until(lambda: any(s.tid == tids[0] for s in tb.shipments), "written back")
        sent = [s for s in tb.shipments if s.tid == tids[0]]
        say(
            f"  taobao.logistics.offline.send tid={tids[0]} out_sid={sent[0].tracking} "
            f"company_code={sent[0].carrier}: written back {len(sent)} time(s)"
        )
        if len(sent) != 1:
            problems.append(f"{shipped_id}: written back {len(sent)} times")

        # one refund interception
        held_id = f"taobao-{tids[1]}"
        await _until(lambda: _eq(stage(held_id), "released"), f"{held_id} released")
        cursor = next(s for s in commands.list() if s["name"] == names["taobao"])
        at = datetime.fromisoformat(cursor["synced_through"]).timestamp() + 0.5
        tb.trades[tids[1]]["orders"]["order"][0]["refund_status"] = "WAIT_SELLER_AGREE"
        tb.change(tids[1], at=at)
        say(f"  the buyer of {held_id} asks Taobao for a refund after its release:")
        handle = client.get_workflow_handle(f"order-{held_id}")

        async def flagged() -> bool:
            state = await handle.query("state")
            return "refund_requested" in state["flags"]

        await _until(flagged, f"{held_id} stopped for the refund")
        await _until(lambda: _eq(stage(held_id), "on_hold"), f"{held_id} held for the refund")
        held = await handle.query("state")
        withdrawn = [sh["id"] for sh in held["shipments"] if sh["status"] == "cancelled"]
        say(
            f"  {held_id} on hold (held from {held['held_from']}); pick list withdrawn, the "
            f"warehouse told to intercept the parcel (拦截): {', '.join(withdrawn) or 'none'}"
        )
        if not withdrawn:
            problems.append(f"{held_id}: its pick list was not withdrawn for the refund")
        from temporalio.client import WorkflowUpdateFailedError

        try:
            await handle.execute_update(
                "shipped", {"shipment": 1, "carrier": "SF", "tracking_no": "SF0000000001"}
            )
            problems.append(f"{held_id}: shipped although a refund was asked for")
        except WorkflowUpdateFailedError as refused:
            say(
                f"  {held_id} flagged refund_requested; the warehouse's shipped is refused: "
                f"{refused.cause}"
            )
        for gateway in gateways:
            await commands.pause(client, names[gateway.shop.platform])
    except (TimeoutError, DemoFailure) as exc:  # DemoFailure: not shipped at the desk
        problems.append(f"platform shops: {exc}")
    finally:
        for gateway in gateways:
            gateway.stop()
    return problems


def _receiver(base: int, i: int) -> dict[str, str]:
    """A buyer of its own per order (the demo's sample orders share one phone and address,
    and its fraud rule counts orders per phone and per address)."""
    return {
        "name": "王小明",
        "phone": f"1391{(base + i) % 10**7:07d}",
        "state": "浙江省",
        "city": "杭州市",
        "district": "西湖区",
        "address": f"文三路{200 + (base + i) % 700}号{1 + i}幢{101 + i}室",
        "zip": "310000",
    }


async def _eq(value: Any, want: str) -> bool:
    return await value == want
