"""`oms shops ...` and `oms pii-log` as an operator runs them, with `worker.py` as a
subprocess on the real dev server and a stand-in Taobao gateway in this process; and the
SIGKILL drill: the worker killed in the middle of a window loses and doubles nothing."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select
from temporalio.client import ScheduleActionStartWorkflow
from temporalio.testing import WorkflowEnvironment

from platforms.standin import StandinGateway, StandinShop
from platforms.tables import ShopOrder
from tests.harness.platforms import Trades
from tests.harness.stack import OmsStack

pytestmark = pytest.mark.e2e
SECRET = "cli-secret-4f1c2a9e77"
TOKEN = "cli-token-77aa19e0c3"


def standin() -> StandinGateway:
    shop = StandinShop("taobao", app_key="cli-key", app_secret=SECRET, session=TOKEN)
    return StandinGateway(shop).start()


async def test_shops_from_the_command_line(dev_env: WorkflowEnvironment, tmp_path: Path) -> None:
    stack = OmsStack.for_env(dev_env, tmp_path / "home")
    gateway = standin()
    rig = Trades()
    now = time.time()
    tids = rig.fill(gateway, 30, start=now - 3 * 3600, end=now - 120)
    name = f"tb-{rig.tag}"
    try:
        await stack.load_sample()
        await stack.start_worker()
        since = (datetime.now(UTC) - timedelta(hours=3, minutes=5)).isoformat()
        added = await stack.ok(
            "shops",
            "add",
            name,
            "--platform",
            "taobao",
            "--app-key",
            "cli-key",
            "--app-secret",
            SECRET,
            "--session",
            TOKEN,
            "--api-url",
            gateway.url,
            "--since",
            since,
            "--poll-every",
            "PT5S",
            "--carrier-ids",
            "SF=44",
            "--json",
        )
        assert SECRET not in added.out + added.err and TOKEN not in added.out + added.err
        assert added.json()["schedule"] == f"shop-sync-{name}"
        # the schedule is in Temporal, visible and pausable there, overlap SKIP
        desc = await dev_env.client.get_schedule_handle(f"shop-sync-{name}").describe()
        assert isinstance(desc.schedule.action, ScheduleActionStartWorkflow)
        assert desc.schedule.action.id == f"shop-sync-{name}"

        # its first run catches up three hours, window by window
        async def listed() -> dict:
            shops = (await stack.ok("shops", "list", "--json")).json()
            return next(s for s in shops if s["name"] == name)

        deadline = time.monotonic() + 90
        while (shop := await listed())["imported"] < 30:
            assert time.monotonic() < deadline, shop
            await asyncio.sleep(0.5)
        assert shop["state"] == "syncing" and set(shop) >= {
            "name",
            "platform",
            "state",
            "synced_through",
            "imported",
            "last_error",
        }
        text = (await stack.ok("shops", "list")).out
        assert name in text and "syncing" in text and SECRET not in text
        # pause: the schedule is paused and the shop says so
        async def paused(expected: bool) -> None:  # a schedule takes its signal a moment later
            # (its scheduler is a workflow of the server's own: on a box loaded by the rest of
            # the suite, once more than 15 s)
            deadline = time.monotonic() + 45
            handle = dev_env.client.get_schedule_handle(f"shop-sync-{name}")
            while (await handle.describe()).schedule.state.paused != expected:
                assert time.monotonic() < deadline, f"schedule paused is not {expected}"
                await asyncio.sleep(0.2)

        await stack.ok("shops", "pause", name)
        await paused(True)
        assert (await listed())["state"] == "paused"
        await stack.ok("shops", "resume", name)
        await paused(False)
        assert (await listed())["state"] == "syncing"
        # its settings after `add`: the schedule's interval and the carrier ids change, and a
        # bad value is refused by name, changing nothing
        changed = (await stack.ok("shops", "set", name, "--poll-every", "PT4S",
                                  "--carrier-ids", "SF=44,ZTO=115", "--json")).json()
        assert sorted(changed["changed"]) == ["carrier_ids", "poll_every_s"]
        assert changed["poll_every_s"] == 4 and SECRET not in str(changed)
        spec = (await dev_env.client.get_schedule_handle(f"shop-sync-{name}").describe()).schedule.spec
        assert [i.every for i in spec.intervals] == [timedelta(seconds=4)]
        refused = await stack.cli("shops", "set", name, "--poll-every", "PT0S")
        assert refused.code != 0 and "poll_every" in refused.err + refused.out
        nothing = await stack.cli("shops", "set", name)
        assert nothing.code != 0 and "at least one" in nothing.err + nothing.out
        assert (await listed())["state"] == "syncing"
        # a backfill of a past window re-reads it: every order is already in, none twice
        moment = datetime.now(UTC)
        b_since = (moment - timedelta(hours=2)).isoformat()
        b_until = (moment - timedelta(hours=1)).isoformat()
        backfill = await stack.ok(
            "shops", "sync", name, "--since", b_since, "--until", b_until, "--wait", "--json"
        )
        answer = backfill.json()
        assert answer["imported"] == 0 and answer["duplicates"] == 0 and answer["windows"] == 2
        # an expired token: the shop says so; a new one and it goes on
        gateway.shop.faults.session_expired = True
        late = rig.put(gateway, modified=time.time() - 50)  # in a window a few seconds on
        deadline = time.monotonic() + 60
        while (shop := await listed())["state"] != "token_expired":
            assert time.monotonic() < deadline, shop
            await asyncio.sleep(0.5)
        assert "Invalid session" in shop["last_error"]
        gateway.shop.renew_session("renewed-" + TOKEN)
        renewed = await stack.ok("shops", "token", name, "--session", "renewed-" + TOKEN)
        assert "renewed-" not in renewed.out
        deadline = time.monotonic() + 60
        while (shop := await listed())["imported"] < 31:
            assert time.monotonic() < deadline, shop
            await asyncio.sleep(0.5)
        assert shop["state"] == "syncing"
        # every decryption is in the PII log
        log = (await stack.ok("pii-log", "--json")).json()
        assert sorted(r["order_id"] for r in log) == sorted(f"taobao-{t}" for t in [*tids, late])
        assert set(log[0]) >= {"at", "order_id", "platform", "fields", "scene"}
        one = (await stack.ok("pii-log", "--order", f"taobao-{late}")).out
        assert f"taobao-{late}" in one and "name,phone,address" in one
        # bad input is named, nothing is added
        bad = await stack.cli(
            "shops", "add", "x", "--platform", "ebay", "--app-key", "k", "--app-secret", "s"
        )
        assert bad.code == 1 and "platform" in bad.err
        await stack.ok("shops", "pause", name)
    finally:
        stack.kill_worker()
        stack.close()
        gateway.stop()


async def test_sigkill_of_the_worker_mid_window_loses_and_doubles_nothing(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    stack = OmsStack.for_env(dev_env, tmp_path / "home")
    gateway = standin()
    rig = Trades()
    now = time.time()
    tids = rig.fill(gateway, 300, start=now - 1700, end=now - 100)
    name = f"kill-{rig.tag}"
    served: list[int] = []

    def slow_pages(page: int, _: list[str]) -> None:
        served.append(page)
        time.sleep(0.3)  # the window takes a while: the worker dies inside it

    gateway.shop.faults.after_page = slow_pages
    try:
        await stack.load_sample()
        await stack.start_worker()
        await stack.ok(
            "shops",
            "add",
            name,
            "--platform",
            "taobao",
            "--app-key",
            "cli-key",
            "--app-secret",
            SECRET,
            "--session",
            TOKEN,
            "--api-url",
            gateway.url,
            "--since",
            (datetime.now(UTC) - timedelta(seconds=1800)).isoformat(),
            "--poll-every",
            "PT5S",
        )
        deadline = time.monotonic() + 60
        while len(gateway.shop.decrypted) < 60:  # part of the window is in intake
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        stack.kill_worker()
        imported_before = len(stack.read(lambda s: s.exec(select(ShopOrder)).all()))
        assert imported_before < 300  # killed inside the window, before its cursor moved
        await stack.start_worker()
        deadline = time.monotonic() + 120
        while True:
            rows = stack.read(lambda s: s.exec(select(ShopOrder)).all())
            if len(rows) == 300 and all(r.outcome == "imported" for r in rows):
                break
            assert time.monotonic() < deadline, len(rows)
            await asyncio.sleep(0.5)
        assert sorted(r.platform_order_id for r in rows) == sorted(tids)
        shops = (await stack.ok("shops", "list", "--json")).json()
        assert shops[0]["imported"] == 300
        # one workflow per order: each id was started once (a resent one is `duplicate`)
        for tid in tids:
            desc = await dev_env.client.get_workflow_handle(f"order-taobao-{tid}").describe()
            assert desc.run_id
        await stack.ok("shops", "pause", name)
    finally:
        stack.kill_worker()
        stack.close()
        gateway.stop()
