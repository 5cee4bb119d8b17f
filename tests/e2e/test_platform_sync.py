"""Shops' syncs on the real dev server against the stand-in gateways (SPEC §3.9, §8.9)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from models.db import transaction
from reads.queries import order_status
from tests.harness.platforms import SyncRig, ago, sync_rig

pytestmark = pytest.mark.e2e
HOUR = 3600.0


@pytest.fixture
async def rig(
    dev_env: WorkflowEnvironment, sqlite_url: str, tmp_path: Path
) -> AsyncIterator[SyncRig]:
    async with sync_rig(dev_env.client, sqlite_url, tmp_path / "home") as rig:
        yield rig


@pytest.fixture
async def pg_rig(
    dev_env: WorkflowEnvironment, pg_url: str, tmp_path: Path
) -> AsyncIterator[SyncRig]:
    async with sync_rig(dev_env.client, pg_url, tmp_path / "home") as rig:
        yield rig


async def test_on_postgresql_a_shop_catches_up_and_a_second_run_imports_nothing_twice(
    pg_rig: SyncRig,
) -> None:
    rig = pg_rig
    gateway = rig.gateway("pdd")
    now = time.time()
    sns = rig.fill(gateway, 40, start=now - 3 * HOUR, end=now - 400)
    name = rig.add("pdd", gateway, since=ago(3 * HOUR + 60))
    result = await rig.run(name)
    assert result.state == "syncing" and 6 <= len(result.windows) <= 8
    assert sorted(r.platform_order_id for r in rig.orders(name, "imported")) == sorted(sns)
    await rig.run(name, since=ago(3 * HOUR + 60).isoformat(), until=ago(300).isoformat())
    assert rig.shop(name)["imported"] == 40
    assert len([p for p in rig.pii() if p.shop == name]) == 40
    assert gateway.shop.calls["pdd.open.decrypt.batch"] <= len(result.windows) + 2


async def test_a_taobao_shop_off_for_hours_catches_up_window_by_window(rig: SyncRig) -> None:
    gateway = rig.gateway("taobao")
    now = time.time()
    tids = rig.fill(gateway, 45, start=now - 5 * HOUR, end=now - 120)
    name = rig.add("tb", gateway, since=ago(5 * HOUR + 60))
    result = await rig.run(name)
    assert result.state == "syncing"
    assert 10 <= len(result.windows) <= 12  # 30-minute windows over 5 hours
    assert result.windows[-1].caught_up
    assert sum(w.imported for w in result.windows) == 45
    rows = rig.orders(name)
    assert sorted(r.platform_order_id for r in rows) == sorted(tids)
    assert {r.outcome for r in rows} == {"imported"}
    for tid in tids[:3] + tids[-3:]:
        assert await rig.workflow_exists(f"taobao-{tid}")
    shop = rig.shop(name)
    assert shop["imported"] == 45 and shop["state"] == "syncing"
    assert shop["synced_through"] >= ago(120).isoformat()
    # every receiver was decrypted once, in batches of at most 20, and logged
    assert gateway.shop.calls["taobao.top.oaid.decrypt"] <= 45 // 20 + len(result.windows)
    assert sorted(tid for tid, _ in gateway.shop.decrypted) == sorted(tids)
    logged = [p for p in rig.pii() if p.shop == name]
    assert sorted(p.order_id for p in logged) == sorted(f"taobao-{t}" for t in tids)
    assert all(p.fields == ["name", "phone", "address"] and p.scene == "1001" for p in logged)
    # a second run reads nothing new and imports nothing twice
    again = await rig.run(name)
    assert sum(w.imported for w in again.windows) == 0
    assert rig.shop(name)["imported"] == 45
    assert len(gateway.shop.decrypted) == 45


async def test_a_pdd_shop_syncs_with_a_refused_decryption_held_then_retried(rig: SyncRig) -> None:
    gateway = rig.gateway("pdd")
    now = time.time()
    sns = rig.fill(gateway, 12, start=now - 2 * HOUR, end=now - 400)
    for sn in (sns[4], sns[7]):
        gateway.shop.faults.refuse_decrypt[sn] = "该订单已关闭，无法解密"
    name = rig.add("pdd", gateway, since=ago(2 * HOUR + 60))
    result = await rig.run(name)
    assert result.state == "syncing"
    assert sum(w.imported for w in result.windows) == 10
    assert sum(w.held for w in result.windows) == 2
    held = rig.orders(name, "pii_unavailable")
    assert sorted(r.platform_order_id for r in held) == sorted([sns[4], sns[7]])
    assert all("该订单已关闭，无法解密" in (r.reason or "") for r in held)
    refused = [p for p in rig.pii() if p.outcome == "refused"]
    assert sorted(p.order_id for p in refused) == sorted([f"pdd-{sns[4]}", f"pdd-{sns[7]}"])
    # each is an order held at intake for a clerk, the platform's reason in its timeline,
    # checked against nothing (no finding from a receiver it does not have)
    first, second = (rig.client.get_workflow_handle(f"order-pdd-{sn}") for sn in (sns[4], sns[7]))
    for handle in (first, second):
        state = await rig.eventually(
            lambda h=handle: _held_pii(h), "held pii_unavailable")
        assert state["held_from"] == "checking" and state["findings"] == []
    assert "该订单已关闭，无法解密" in str(await rig.eventually(
        lambda: _timeline(rig, f"pdd-{sns[4]}", "pii_unavailable"), "the reason in the timeline"))
    # a clerk resumes while the platform still refuses: asked again, still held, logged
    await first.execute_update("resume", {})
    await rig.eventually(
        lambda: len([p for p in rig.pii() if p.order_id == f"pdd-{sns[4]}"]) == 2, "asked again")
    assert (await _held_pii(first)) is not None
    # the platform lets both be decrypted: a clerk's resume takes the first in ...
    gateway.shop.faults.refuse_decrypt.clear()
    await first.execute_update("resume", {})
    await rig.eventually(lambda: _left_hold(first), "the first past its hold")
    # ... and the next run of the sync the second, sending it its receiver
    await rig.run(name)
    await rig.eventually(lambda: _left_hold(second), "the second past its hold")
    assert rig.orders(name, "pii_unavailable") == []
    assert rig.shop(name)["imported"] == 12
    for sn, outcomes in ((sns[4], ["refused", "refused", "decrypted"]),
                         (sns[7], ["refused", "decrypted"])):
        assert [p.outcome for p in rig.pii() if p.order_id == f"pdd-{sn}"] == outcomes
        state = await rig.client.get_workflow_handle(f"order-pdd-{sn}").query("state")
        assert "pii_unavailable" not in state["flags"]
        timeline = _timeline(rig, f"pdd-{sn}", "correction") or []
        assert any(e.get("field") == "address.detail" for e in timeline)


async def _held_pii(handle: Any) -> dict[str, Any] | None:
    state = await handle.query("state")
    held = state["stage"] == "on_hold" and "pii_unavailable" in state["flags"]
    return state if held else None


async def _left_hold(handle: Any) -> bool:
    state = await handle.query("state")
    return state["stage"] not in ("on_hold", "checking") and "pii_unavailable" not in state["flags"]


async def test_bad_trades_are_rejected_by_name_and_the_window_goes_on(rig: SyncRig) -> None:
    gateway = rig.gateway("taobao")
    now = time.time()
    good = rig.fill(gateway, 5, start=now - 1800, end=now - 600)
    no_sku = rig.put(gateway, modified=now - 500)
    line = gateway.shop.trades[no_sku]["orders"]["order"][0]
    line.pop("outer_sku_id")
    line.pop("outer_iid")
    bad_money = rig.put(gateway, modified=now - 450)
    gateway.shop.trades[bad_money]["payment"] = "十元"
    unknown_sku = rig.put(gateway, modified=now - 400, lines=[("NO-SUCH-SKU", 1, "9.90")])
    garbled = rig.new_id("taobao")
    gateway.shop.trades[garbled] = {
        "tid": garbled,
        "modified": gateway.shop.trades[good[0]]["modified"],
        "orders": "not a list",
    }
    name = rig.add("tb", gateway, since=ago(1900))
    result = await rig.run(name)
    assert result.state == "syncing"
    rows = {r.platform_order_id: r for r in rig.orders(name)}
    assert {k for k, r in rows.items() if r.outcome == "imported"} == {*good, unknown_sku}
    assert rows[no_sku].outcome == "rejected"
    assert "orders.order[0].outer_sku_id" in (rows[no_sku].reason or "")
    assert rows[bad_money].outcome == "rejected" and "payment" in (rows[bad_money].reason or "")
    assert rows[garbled].outcome == "rejected" and "orders" in (rows[garbled].reason or "")
    assert not await rig.workflow_exists(f"taobao-{no_sku}")
    # the unknown SKU reaches intake, whose check rejects it with its reason
    handle = rig.client.get_workflow_handle(f"order-taobao-{unknown_sku}")
    outcome = await handle.result()
    assert outcome["stage"] == "cancelled" and "sku_unknown" in str(outcome)
    # nothing was missed: the cursor passed them all, each recorded once
    assert rig.shop(name)["imported"] == 6
    assert sum(w.rejected for w in result.windows) == 3


async def test_trades_that_change_while_a_window_is_read_are_not_missed(rig: SyncRig) -> None:
    gateway = rig.gateway("taobao")
    now = time.time()
    tids = rig.fill(gateway, 250, start=now - 1700, end=now - 300)
    moved: list[str] = []

    def change_while_read(page: int, served: list[str]) -> None:
        if page == 3 and not moved:  # after the last page, the newest trades change
            for tid in tids[-5:]:
                gateway.shop.change(tid, seller_memo="改了备注")
                moved.append(tid)

    gateway.shop.faults.after_page = change_while_read
    name = rig.add("tb", gateway, since=ago(1800))
    await rig.run(name)
    assert moved
    imported = {r.platform_order_id for r in rig.orders(name, "imported")}
    assert set(tids) - set(moved) <= imported
    # the changed ones were modified after the window's end: the next window takes them in
    # (here without waiting the minute of lag: their change is dated at the cursor)
    gateway.shop.faults.after_page = None
    cursor = datetime.fromisoformat(rig.shop(name)["synced_through"]).timestamp()
    assert all(f"taobao-{tid}" not in {r.order_id for r in rig.orders(name)} for tid in moved)
    for tid in moved:
        gateway.shop.change(tid, at=cursor)
    await rig.run(name)
    assert {r.platform_order_id for r in rig.orders(name, "imported")} == set(tids)
    assert rig.shop(name)["imported"] == 250


async def test_a_wrong_secret_fails_the_shop_with_the_platforms_reason_and_no_hot_retry(
    rig: SyncRig,
) -> None:
    gateway = rig.gateway("taobao")
    rig.fill(gateway, 3, start=time.time() - 1200, end=time.time() - 200)
    name = rig.add("tb", gateway, since=ago(1300), app_secret="not-the-secret")
    result = await rig.run(name)
    assert result.state == "failing" and result.windows == []
    shop = rig.shop(name)
    assert shop["state"] == "failing"
    assert "Invalid signature" in shop["last_error"] and "25" in shop["last_error"]
    assert sum(gateway.shop.calls.values()) == 1  # one call, no retries
    assert shop["synced_through"] <= ago(1300).isoformat()
    assert rig.orders(name) == []


async def test_a_platform_down_for_a_while_is_backed_off_and_caught_up(rig: SyncRig) -> None:
    gateway = rig.gateway("pdd")
    now = time.time()
    sns = rig.fill(gateway, 8, start=now - 3600, end=now - 400)
    gateway.shop.faults.down_until = time.time() + 4
    gateway.shop.faults.rate_limit_next = 0
    name = rig.add("pdd", gateway, since=ago(3700))
    started = time.monotonic()
    result = await rig.run(name)
    assert time.monotonic() - started >= 3
    assert result.state == "syncing"
    assert {r.platform_order_id for r in rig.orders(name, "imported")} == set(sns)
    calls = sum(gateway.shop.calls.values())
    assert calls < 40  # backed off: 0.2 s doubling to 1 s, not a hot loop
    assert rig.shop(name)["last_error"] is None  # cleared once it answered again


async def test_an_expired_session_waits_for_a_new_token_then_goes_on(rig: SyncRig) -> None:
    gateway = rig.gateway("taobao")
    now = time.time()
    tids = rig.fill(gateway, 4, start=now - 1500, end=now - 300)
    gateway.shop.faults.session_expired = True
    name = rig.add("tb", gateway, since=ago(1600))
    result = await rig.run(name)
    assert result.state == "token_expired"
    shop = rig.shop(name)
    assert shop["state"] == "token_expired" and "Invalid session" in shop["last_error"]
    calls = sum(gateway.shop.calls.values())
    again = await rig.run(name)  # waits: no call at all while the token is expired
    assert again.state == "token_expired" and sum(gateway.shop.calls.values()) == calls
    gateway.shop.renew_session("renewed-token")
    rig.renew(name, "renewed-token")
    assert rig.shop(name)["state"] == "syncing"
    result = await rig.run(name)
    assert result.state == "syncing"
    assert {r.platform_order_id for r in rig.orders(name, "imported")} == set(tids)


async def stage_of(rig: SyncRig, order_id: str) -> str:
    state = await rig.client.get_workflow_handle(f"order-{order_id}").query("state")
    return str(state["stage"])


async def test_changes_on_the_platform_reach_the_running_order_once(rig: SyncRig) -> None:
    gateway = rig.gateway("taobao")
    shop = gateway.shop
    now = time.time()
    unpaid = rig.put(gateway, modified=now - 900, status="WAIT_BUYER_PAY")
    to_close = rig.put(gateway, modified=now - 800, status="WAIT_BUYER_PAY")
    name = rig.add("tb", gateway, since=ago(1000))
    await rig.run(name)
    for tid in (unpaid, to_close):
        await rig.eventually(
            lambda t=tid: _is(stage_of(rig, f"taobao-{t}"), "awaiting_payment"), "awaiting payment"
        )
    # the buyer pays one on Taobao; the other is closed there
    cursor = datetime.fromisoformat(rig.shop(name)["synced_through"]).timestamp()
    trade = shop.trades[unpaid]
    shop.change(
        unpaid,
        at=cursor,
        status="WAIT_SELLER_SEND_GOODS",
        pay_time=trade["created"],
        alipay_no="2026112622009988",
    )
    shop.change(to_close, at=cursor, status="TRADE_CLOSED_BY_TAOBAO")
    result = await rig.run(name)
    assert sum(w.changed for w in result.windows) == 2
    await rig.eventually(
        lambda: _not(stage_of(rig, f"taobao-{unpaid}"), "awaiting_payment"), "past payment"
    )
    closed = await rig.client.get_workflow_handle(f"order-taobao-{to_close}").result()
    assert closed["stage"] == "cancelled" and "closed on taobao" in str(closed)
    timeline = await rig.eventually(
        lambda: _timeline(rig, f"taobao-{unpaid}", "2026112622009988"),
        "the pay update in the order's timeline",
    )
    assert any(e.get("signal") == "payment_received" for e in timeline)
    rows = {r.platform_order_id: r for r in rig.orders(name)}
    assert [c["change"] for c in rows[unpaid].changes] == ["paid"]
    assert rows[unpaid].changes[0]["applied"] is True
    assert [c["change"] for c in rows[to_close].changes] == ["closed"]
    # the same changes seen again (a window read twice) change nothing
    again = await rig.run(name, since=ago(1000).isoformat(), until=ago(70).isoformat())
    assert sum(w.changed for w in again.windows) == 0
    assert len(rig.orders(name)[0].changes) + len(rig.orders(name)[1].changes) == 2


def _timeline(rig: SyncRig, order_id: str, needle: str) -> list[dict[str, Any]] | None:
    from models.db import transaction
    from reads.queries import order_status

    with transaction(rig.factory) as session:
        status = order_status(session, order_id) or {}
    events = status.get("events") or []
    return events if needle in str(events) else None


async def _is(stage: Any, want: str) -> bool:
    return await stage == want


async def _not(stage: Any, want: str) -> bool:
    return await stage != want


async def test_each_shipment_is_written_back_once_through_a_rate_limit(rig: SyncRig) -> None:
    from sqlmodel import select

    from models.db import transaction
    from platforms.tables import WriteBack
    from tests.harness.reference import load_sample

    load_sample(rig.factory, {("MUG-WHITE", "HZ"): 50})
    gateway = rig.gateway("taobao")
    shop = gateway.shop
    now = time.time()
    lines = [("MUG-WHITE", 3, "35.00")]  # 105 yuan: free shipping, in stock at SH
    kept, refunded = (rig.put(gateway, modified=now - 600 + i, lines=lines) for i in range(2))
    name = rig.add("tb", gateway, since=ago(700))
    await rig.run(name)
    client = rig.client
    for i, tid in enumerate((kept, refunded)):
        oid = f"taobao-{tid}"
        await rig.eventually(lambda o=oid: _is(stage_of(rig, o), "released"), f"{oid} released")
        handle = client.get_workflow_handle(f"order-{oid}")
        await handle.execute_update("picked", {"shipment": 1})
        await handle.execute_update("packed", {"shipment": 1, "parcels": 1})
        await handle.execute_update(
            "shipped", {"shipment": 1, "carrier": "SF", "tracking_no": f"SF1000{i}"}
        )
        await rig.eventually(lambda o=oid: _is(stage_of(rig, o), "completed"), f"{oid} done")
    # meanwhile the buyer of the second asked Taobao for a refund
    shop.trades[refunded]["orders"]["order"][0]["refund_status"] = "WAIT_SELLER_AGREE"
    shop.faults.rate_limit_next = 1  # the first write-back call is turned away once
    result = await rig.run(name)
    assert result.state == "syncing"
    assert [(s.tid, s.tracking, s.carrier) for s in shop.shipments] == [(kept, "SF10000", "SF")]
    with transaction(rig.factory) as s:
        rows = {r.order_id: r for r in s.exec(select(WriteBack)).all()}
    assert rows[f"taobao-{kept}"].status == "done"
    assert rows[f"taobao-{refunded}"].status == "refused"
    assert "退款" in (rows[f"taobao-{refunded}"].reason or "")
    sends = shop.calls["taobao.logistics.offline.send"]
    assert sends == 3  # limited once, then one each
    # later runs write nothing back again
    await rig.run(name)
    await rig.run(name)
    assert shop.calls["taobao.logistics.offline.send"] == sends
    assert len(shop.shipments) == 1
    # the outcomes in the completed orders' timelines, once each; the refusal flagged for a clerk
    flags, entries = _written_back(rig, f"taobao-{kept}")
    assert [(e["outcome"], e["shipment"], e["tracking_no"]) for e in entries] == [
        ("done", 1, "SF10000")
    ]
    assert "platform_ship_refused" not in flags
    flags, entries = _written_back(rig, f"taobao-{refunded}")
    assert "platform_ship_refused" in flags
    assert [e["outcome"] for e in entries] == ["refused"] and "退款" in entries[0]["reason"]
    told = _told(rig, f"taobao-{refunded}")
    assert "Taobao refused shipment 1's tracking SF SF10001" in told[-1]["en"]
    assert "退款" in told[-1]["en"] and "platform_ship_refused" in told[-1]["en"]
    assert _flagged(rig, "platform_ship_refused") == [f"taobao-{refunded}"]
    # a clerk sends it again while the refund is still open: refused again, the flag stays
    from models.db import transaction
    from orders.store import FlagNotCleared, clear_outside_flag
    from platforms.writeback import ResendRefused, resend

    oid = f"taobao-{refunded}"
    with transaction(rig.factory) as session:
        sent = resend(session, oid, by="clerk-li", note="asked the buyer")
    assert [(x["shop"], x["carrier"], x["tracking_no"]) for x in sent] == [(name, "SF", "SF10001")]
    with pytest.raises(ResendRefused, match="has no write-back the platform refused"), \
            transaction(rig.factory) as session:  # fmt: skip
        resend(session, f"taobao-{kept}", by="clerk-li", note=None)
    await rig.run(name)
    assert shop.calls["taobao.logistics.offline.send"] == sends + 1 and len(shop.shipments) == 1
    flags, entries = _written_back(rig, oid)
    assert [e["outcome"] for e in entries] == ["refused", "refused"]
    assert "platform_ship_refused" in flags
    # the buyer withdrew the refund; sent again, Taobao takes it and the flag goes by itself
    shop.trades[refunded]["orders"]["order"][0]["refund_status"] = "CLOSED"
    with transaction(rig.factory) as session:
        resend(session, oid, by="clerk-li", note="buyer withdrew the refund")
    await rig.run(name)
    await rig.run(name)  # once
    assert [(x.tid, x.tracking) for x in shop.shipments] == [(kept, "SF10000"), (refunded, "SF10001")]
    assert shop.calls["taobao.logistics.offline.send"] == sends + 2
    flags, entries = _written_back(rig, oid)
    assert [e["outcome"] for e in entries] == ["refused", "refused", "done"]
    assert "platform_ship_refused" not in flags and _flagged(rig, "platform_ship_refused") == []
    told = [t["en"] for t in _told(rig, oid)]
    assert ("clerk-li resent shipment 1's tracking to Taobao (sent at the shop's next sync): "
            "buyer withdrew the refund.") in told
    assert told[-1] == "Shipment 1's tracking SF SF10001 written back to Taobao."
    for flag, status in (("platform_ship_refused", 409), ("pick_overdue", 422)):
        with pytest.raises(FlagNotCleared) as refused, transaction(rig.factory) as session:
            clear_outside_flag(session, oid, flag, by="clerk-li", note=None)
        assert refused.value.status == status and str(refused.value).startswith("flag: ")


def _written_back(rig: SyncRig, order_id: str) -> tuple[list[str], list[dict[str, Any]]]:
    """The order's flags and its write-back entries, as `status --json` shows them."""
    from models.db import transaction
    from reads.queries import order_status

    with transaction(rig.factory) as session:
        status = order_status(session, order_id) or {}
    return status["flags"], [e for e in status["events"] if e["type"] == "write_back"]


def _told(rig: SyncRig, order_id: str) -> list[dict[str, Any]]:
    """The timeline as the console and `oms status` tell it."""
    from models.db import transaction
    from reads.queries import order_status
    from service.timeline import sentences

    with transaction(rig.factory) as session:
        return sentences((order_status(session, order_id) or {})["events"])


def _flagged(rig: SyncRig, flag: str, platform: str = "taobao") -> list[str]:
    """The orders the console's queue filter and its search (on the platform) find by the flag."""
    from models.db import transaction
    from reads.queries import list_orders
    from reads.search import Filters, search_orders

    with transaction(rig.factory) as session:
        listed = list_orders(session, flag=flag)
        found, _ = search_orders(session, q=None, filters=Filters(platform=platform, flag=flag))
    ids = sorted(o["order_id"] for o in listed)
    assert sorted(o["order_id"] for o in found) == ids
    return ids


async def _released_on_taobao(rig: SyncRig) -> tuple[Any, str, str, str]:
    """A Taobao shop whose one trade (3 mugs, in stock) was imported and released: (the
    stand-in gateway, the trade's tid, the shop's name, the order id)."""
    from tests.harness.reference import load_sample

    load_sample(rig.factory, {("MUG-WHITE", "HZ"): 50})
    gateway = rig.gateway("taobao")
    tid = rig.put(gateway, modified=time.time() - 600, lines=[("MUG-WHITE", 3, "35.00")])
    name = rig.add("tb", gateway, since=ago(700))
    await rig.run(name)
    oid = f"taobao-{tid}"
    await rig.eventually(lambda: _is(stage_of(rig, oid), "released"), "released")
    return gateway, tid, name, oid


async def test_a_refund_asked_for_on_the_platform_stops_the_order_before_it_ships(
    rig: SyncRig,
) -> None:

    gateway, tid, name, oid = await _released_on_taobao(rig)
    shop = gateway.shop
    handle = rig.client.get_workflow_handle(f"order-{oid}")
    await handle.execute_update("picked", {"shipment": 1})
    # the buyer asks Taobao for a refund: the next window sees it
    cursor = datetime.fromisoformat(rig.shop(name)["synced_through"]).timestamp()
    shop.trades[tid]["orders"]["order"][0]["refund_status"] = "WAIT_SELLER_AGREE"
    shop.change(tid, at=cursor)
    await rig.run(name)

    async def flags() -> list[str]:
        return list((await handle.query("state"))["flags"])

    await rig.eventually(lambda: _has(flags(), "refund_requested"), "flagged refund_requested")
    await rig.eventually(lambda: _is(stage_of(rig, oid), "on_hold"), "held for the refund")
    held = await handle.query("state")
    assert held["held_from"] == "picking" and held["shipments"][0]["status"] == "cancelled"
    shipped = {"shipment": 1, "carrier": "SF", "tracking_no": "SF20001"}
    from temporalio.client import WorkflowUpdateFailedError

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update("shipped", shipped)
    assert "refund" in str(refused.value.cause)
    # seen again, it changes nothing
    await rig.run(name, since=ago(700).isoformat(), until=ago(70).isoformat())
    row = next(r for r in rig.orders(name) if r.order_id == oid)
    assert [c["change"] for c in row.changes] == ["refund_requested"]
    # the buyer withdraws it: the order goes on and ships
    cursor = datetime.fromisoformat(rig.shop(name)["synced_through"]).timestamp()
    shop.trades[tid]["orders"]["order"][0]["refund_status"] = "CLOSED"
    shop.change(tid, at=cursor)
    await rig.run(name)
    await rig.eventually(lambda: _lacks(flags(), "refund_requested"), "the refund flag gone")
    # its pick list was withdrawn at the hold (拦截): released again, it ships as shipment 2
    async def released_again() -> bool:
        state = await handle.query("state")
        return state["stage"] == "released" and len(state["shipments"]) == 2

    await rig.eventually(released_again, "released again")
    await handle.execute_update("shipped", shipped | {"shipment": 2})
    await rig.eventually(lambda: _is(stage_of(rig, oid), "completed"), "completed")


async def _has(values: Any, item: str) -> bool:
    return item in await values


async def _lacks(values: Any, item: str) -> bool:
    return item not in await values


async def test_refunded_on_every_line_cancels_without_a_second_refund(rig: SyncRig) -> None:
    from sqlmodel import select

    from models.db import transaction
    from models.tables import Refund

    gateway = rig.gateway("taobao")
    shop = gateway.shop
    tid = rig.put(gateway, modified=time.time() - 600, lines=[("TSHIRT-RED-M", 2, "59.00")])
    name = rig.add("tb", gateway, since=ago(700))
    await rig.run(name)
    oid = f"taobao-{tid}"
    await rig.eventually(lambda: rig.workflow_exists(oid), "started")
    cursor = datetime.fromisoformat(rig.shop(name)["synced_through"]).timestamp()
    shop.trades[tid]["orders"]["order"][0]["refund_status"] = "SUCCESS"
    shop.change(tid, at=cursor, status="TRADE_CLOSED")
    await rig.run(name)
    outcome = await rig.client.get_workflow_handle(f"order-{oid}").result()
    assert outcome["stage"] == "cancelled" and outcome["reason"] == "refunded on taobao"
    with transaction(rig.factory) as s:
        assert s.exec(select(Refund).where(Refund.order_id == oid)).all() == []
    timeline = await rig.eventually(
        lambda: _timeline(rig, oid, "refunded_elsewhere"), "the platform's refund in the timeline"
    )
    assert any(e.get("type") == "refunded_elsewhere" for e in timeline)
    row = next(r for r in rig.orders(name) if r.order_id == oid)
    assert [c["change"] for c in row.changes] == ["refunded"]


async def test_pdd_write_back_waits_for_a_token_and_a_carrier_id(rig: SyncRig) -> None:
    from sqlmodel import select

    from models.db import transaction
    from platforms.tables import WriteBack
    from tests.harness.reference import load_sample

    load_sample(rig.factory, {("MUG-WHITE", "HZ"): 50})
    gateway = rig.gateway("pdd")
    shop = gateway.shop
    lines = [("MUG-WHITE", 3, "35.00")]
    sns = [rig.put(gateway, modified=time.time() - 900 + i, lines=lines) for i in range(2)]
    name = rig.add("pdd", gateway, since=ago(1000), carrier_ids="SF=44")
    await rig.run(name)
    for sn, carrier in zip(sns, ("SF", "ZTO"), strict=True):
        oid = f"pdd-{sn}"
        await rig.eventually(lambda o=oid: _is(stage_of(rig, o), "released"), f"{oid} released")
        handle = rig.client.get_workflow_handle(f"order-{oid}")
        await handle.execute_update(
            "shipped", {"shipment": 1, "carrier": carrier, "tracking_no": f"{carrier}3000{sn[-2:]}"}
        )
        await rig.eventually(lambda o=oid: _is(stage_of(rig, o), "completed"), f"{oid} done")
    shop.faults.session_expired = True
    result = await rig.run(name)
    assert result.state == "token_expired" and shop.shipments == []
    for sn in sns:  # both wait for the token, and their timelines say so
        _, entries = _written_back(rig, f"pdd-{sn}")
        assert [e["outcome"] for e in entries] == ["waiting"]
        assert "session expired" in entries[0]["reason"]
    shop.renew_session("pdd-renewed")
    rig.renew(name, "pdd-renewed")
    result = await rig.run(name)
    assert result.state == "syncing"
    assert [(s.tid, s.carrier) for s in shop.shipments] == [(sns[0], "44")]
    with transaction(rig.factory) as s:
        rows = {r.order_id: r for r in s.exec(select(WriteBack)).all()}
    assert rows[f"pdd-{sns[0]}"].status == "done"
    assert rows[f"pdd-{sns[1]}"].status == "waiting"
    assert "--carrier-ids" in (rows[f"pdd-{sns[1]}"].reason or "")
    await rig.run(name)  # still no carrier id: tried again, nothing new to tell
    assert rows[f"pdd-{sns[1]}"].tries >= 1
    for sn, want in ((sns[0], "done"), (sns[1], "waiting")):
        flags, entries = _written_back(rig, f"pdd-{sn}")
        assert [e["outcome"] for e in entries] == ["waiting", want]
        assert "platform_ship_refused" not in flags
    assert "--carrier-ids" in entries[-1]["reason"]
    assert _told(rig, f"pdd-{sns[1]}")[-1]["en"].startswith(
        f"Shipment 1's tracking ZTO ZTO3000{sns[1][-2:]} not written back to Pinduoduo yet: no Pinduoduo"
    )
    told = _told(rig, f"pdd-{sns[0]}")
    assert told[-1]["en"] == f"Shipment 1's tracking SF SF3000{sns[0][-2:]} written back to Pinduoduo."
    # the clerk adds the missing carrier id (`shops set`): the waiting write-back goes out
    from commands.shops import ShopCommands

    commands = ShopCommands(rig.factory, rig.settings, rig.ring)
    changed = await commands.set(rig.client, name, {"carrier_ids": "SF=44,ZTO=115"})
    assert changed["changed"] == ["carrier_ids"] and changed["carrier_ids"] == {"SF": 44, "ZTO": 115}
    await rig.run(name)
    assert [(s.tid, s.carrier) for s in shop.shipments] == [(sns[0], "44"), (sns[1], "115")]
    _, entries = _written_back(rig, f"pdd-{sns[1]}")
    assert [e["outcome"] for e in entries] == ["waiting", "waiting", "done"]



async def test_an_address_changed_on_the_platform_is_checked_again_and_the_pick_list_amended(
    rig: SyncRig,
) -> None:
    from sqlalchemy import select

    from models.db import transaction
    from models.tables import Order, OutboxEvent

    gateway, tid, name, oid = await _released_on_taobao(rig)
    shop = gateway.shop
    decrypted_before = len(rig.pii())
    # the buyer moves the parcel to Shanghai on Taobao before it ships
    cursor = datetime.fromisoformat(rig.shop(name)["synced_through"]).timestamp()
    shop.change_receiver(tid, {"name": "李四", "phone": "13987654321", "state": "上海",
                               "city": "上海市", "district": "浦东新区",
                               "address": "世纪大道100号8楼801室", "zip": "200120"})
    shop.change(tid, at=cursor)
    await rig.run(name)

    def amended() -> list[Any]:
        with transaction(rig.factory) as s:
            return list(s.execute(select(OutboxEvent.payload).where(
                OutboxEvent.order_id == oid, OutboxEvent.type == "pick_list_amended")).scalars())

    events = await rig.eventually(amended, "the warehouse's amended pick list")
    assert len(events) == 1
    assert events[0]["ship_to"]["province"] == "上海" or "上海" in events[0]["ship_to"]["province"]
    assert events[0]["shipments"] == [f"{oid}-1"]
    assert "世纪大道" not in str(events[0]) and "13987654321" not in str(events[0])  # off the pick list
    def new_detail() -> bool:  # written with the order's state at its next pause
        with transaction(rig.factory) as s:
            document = s.get(Order, oid).document  # type: ignore[union-attr]
        return document["address"]["detail"] == "世纪大道100号8楼801室"

    await rig.eventually(new_detail, "the new address in the order's row (the label prints it)")
    timeline = await rig.eventually(
        lambda: _timeline(rig, oid, "address_checked"), "checked again in the timeline"
    )
    corrections = [e for e in timeline if e.get("type") == "correction"]
    assert {c["field"] for c in corrections} >= {"address.detail", "buyer.phone"}
    assert "13987654321" not in str(timeline) and "世纪大道100号8楼801室" not in str(timeline)
    assert len(rig.pii()) == decrypted_before + 1  # the new receiver's decryption, logged
    row = next(r for r in rig.orders(name) if r.order_id == oid)
    assert [(c["change"], c["applied"]) for c in row.changes] == [("address_changed", True)]
    # seen again (the window read twice), it changes nothing
    await rig.run(name, since=ago(700).isoformat(), until=ago(70).isoformat())
    row = next(r for r in rig.orders(name) if r.order_id == oid)
    assert len(row.changes) == 1 and len(amended()) == 1
    # the order still ships as usual, to the new address
    handle = rig.client.get_workflow_handle(f"order-{oid}")
    await handle.execute_update("shipped", {"shipment": 1, "carrier": "SF", "tracking_no": "SF30001"})
    await rig.eventually(lambda: _is(stage_of(rig, oid), "completed"), "completed")

@pytest.mark.parametrize("db", ["sqlite_url", "pg_url"])
async def test_a_refusal_while_the_order_waits_for_its_delivery_outlives_its_state_writes(
    dev_env: WorkflowEnvironment, db: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The order's workflow still runs (it completes on `delivered`) when its tracking is
    refused: its later state writes keep the flag and the entry it did not write itself
    (on PostgreSQL the state write locks the order's row from its read to its write)."""
    from models.settings import Policy

    policy = Policy()
    policy.pick.complete_on = "delivered"
    url = request.getfixturevalue(db)
    async with sync_rig(dev_env.client, url, tmp_path / "home", policy=policy) as rig:
        gateway, tid, name, oid = await _released_on_taobao(rig)
        handle = rig.client.get_workflow_handle(f"order-{oid}")
        await handle.execute_update("shipped", {"shipment": 1, "carrier": "SF", "tracking_no": "SF4001"})
        await rig.eventually(lambda: _is(stage_of(rig, oid), "shipped"), "waiting for delivery")
        gateway.shop.trades[tid]["orders"]["order"][0]["refund_status"] = "WAIT_SELLER_AGREE"
        result = await rig.run(name)
        assert sum(w.write_back_refused for w in result.windows) == 1
        flags, entries = _written_back(rig, oid)
        assert "platform_ship_refused" in flags and [e["outcome"] for e in entries] == ["refused"]
        assert "platform_ship_refused" not in (await handle.query("state"))["flags"]
        # the workflow writes its state again (delivered, then completed) over the row
        await handle.execute_update("delivered", {})
        await handle.result()
        flags, entries = _written_back(rig, oid)
        assert "platform_ship_refused" in flags and [e["outcome"] for e in entries] == ["refused"]
        assert _flagged(rig, "platform_ship_refused") == [oid]
        with transaction(rig.factory) as session:
            status = order_status(session, oid) or {}
        assert status["stage"] == "completed"
        assert [e["type"] for e in status["events"]][-1] == "write_back"  # numbered after its own
