"""Shops' syncs on the real dev server against the stand-in gateways (SPEC §3.9, §8.9)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.platform_helpers import SyncRig, ago, sync_rig

pytestmark = pytest.mark.e2e
HOUR = 3600.0


@pytest.fixture
async def rig(
    dev_env: WorkflowEnvironment, sqlite_url: str, tmp_path: Path
) -> AsyncIterator[SyncRig]:
    async with sync_rig(dev_env.client, sqlite_url, tmp_path / "home") as rig:
        yield rig


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
    gateway.shop.faults.refuse_decrypt[sns[4]] = "该订单已关闭，无法解密"
    name = rig.add("pdd", gateway, since=ago(2 * HOUR + 60))
    result = await rig.run(name)
    assert result.state == "syncing"
    assert sum(w.imported for w in result.windows) == 11
    assert sum(w.held for w in result.windows) == 1
    held = rig.orders(name, "pii_unavailable")
    assert [r.platform_order_id for r in held] == [sns[4]]
    assert "该订单已关闭，无法解密" in (held[0].reason or "")
    assert not await rig.workflow_exists(f"pdd-{sns[4]}")
    refused = [p for p in rig.pii() if p.outcome == "refused"]
    assert [p.order_id for p in refused] == [f"pdd-{sns[4]}"]
    # the next run asks again while the platform still refuses: still held, asked once more
    await rig.run(name)
    assert [r.outcome for r in rig.orders(name) if r.platform_order_id == sns[4]] == [
        "pii_unavailable"
    ]
    # the platform lets it be decrypted later: the next run takes it in
    del gateway.shop.faults.refuse_decrypt[sns[4]]
    await rig.run(name)
    assert [r.outcome for r in rig.orders(name) if r.platform_order_id == sns[4]] == ["imported"]
    assert await rig.workflow_exists(f"pdd-{sns[4]}")
    assert rig.shop(name)["imported"] == 12
    assert rig.orders(name, "pii_unavailable") == []
    outcomes = [p.outcome for p in rig.pii() if p.order_id == f"pdd-{sns[4]}"]
    assert outcomes == ["refused", "refused", "decrypted"]
