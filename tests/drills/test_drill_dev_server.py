"""Drill: the embedded dev server SIGKILLed mid-burst and restarted on the same database file.

The server is started by `DevServer`, as `worker.py --dev` and the demo start it (the same
SQLite pragmas, `DEV_SERVER_PRAGMAS`), under its own OMS_HOME on a free port; the worker
is `python worker.py` in a process of its own. Ten orders wait for their buyer. Then, all
at once: sixty new orders are submitted and the ten buyers' confirmations sent (half as
updates, half as signals), and the server is SIGKILLed while that is in flight. It is
restarted on the same `temporal.db`; what the clients were not told was accepted is sent
again, as any caller would (the same order ids, the same update ids).

Afterwards nothing that was acknowledged is lost and nothing happened twice: every order
whose start was acknowledged exists and settles where it should (clean ones released to
the warehouse, the confirmed ones too, the new buyer orders waiting for their buyer), each
acknowledged confirmation took effect, one reservation and one pick list per order, one
message per buyer, the ledger balances, and no workflow failed or is stuck. The worker's
workflow cache is kept far below the open orders (OMS_WORKFLOW_CACHE=8), so most wakes replay
their history, and stays within that bound.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from commands.intake import submit_one
from models.db import make_engine, migrate, session_factory
from models.documents import OrderDocument
from models.payloads import OrderSnapshot
from models.tables import Order, OutboxEvent, StockMovement
from runtime.devserver import DEV_SERVER_PRAGMAS, DevServer, free_dev_server_port
from runtime.temporal import connect
from shipping.tables import ParcelOrderRow, ParcelRow
from tests.harness import codec_keys
from tests.harness.desk import seed_desk
from tests.harness.documents import HOT, numbered_doc
from tests.harness.invariants import check_invariants, workflow_problems
from tests.harness.reference import load_sample
from tests.harness.stack import OmsStack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

WAITING = [f"DRL-W{i:02d}" for i in range(10)]  # wait for their buyer before the burst
CLEAN = [f"DRL-C{i:02d}" for i in range(50)]  # the burst: clean, paid, in stock
NEW_BUYER = [f"DRL-B{i:02d}" for i in range(10)]  # the burst: each needs its buyer
KILL_AFTER = 15  # acknowledged starts before the SIGKILL: mid-burst
CACHE = 8  # OMS_WORKFLOW_CACHE: far fewer than the open orders, so most wakes replay history

def doc(order_id: str, n: int) -> OrderDocument:
    if order_id in CLEAN:
        data = numbered_doc(order_id, n=n)  # two T-shirts, free shipping
    else:  # the street alone: the address check asks the buyer for the house number
        data = numbered_doc(
            order_id, n=n, sku=HOT, qty=1, unit_price="35.00", shipping_fee="10.00",
            detail="文三路",
        )
    return OrderDocument.model_validate(data)


def confirmation(i: int) -> dict[str, Any]:
    return {"detail": f"文三路{20 + i}号1幢101室", "note": "电话确认"}


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    home = tmp_path / "oms"
    url = f"sqlite:///{home / 'oms.db'}"
    settings = codec_keys.settings(
        home=home,
        database_url=url,
        task_queue=f"drill-{uuid.uuid4().hex[:8]}",
        temporal_address=f"127.0.0.1:{free_dev_server_port()}",
        sdk_metrics_address="",
    )
    # The shipping desk is on (the default policy) with carriers and pool numbers loaded: each
    # release also makes a parcel and takes a waybill. Before the desk's steps were shielded
    # from the SDK's thread-cancel exception, a cancel after the restart leaked the SQLite
    # write lock and stalled the worker (tests/unit/runtime/test_activity_cancellation.py).
    assert settings.policy.shipping.desk
    servers = [DevServer(settings)]
    assert await asyncio.to_thread(servers[0].start)
    stack = OmsStack(
        target=settings.temporal_address, home=home, db_url=url, task_queue=settings.task_queue,
        policy_env={  # the orders' policy is the submitter's: the default (reminders hours away)
            "OMS_WORKFLOW_CACHE": str(CACHE),
            "OMS_SDK_METRICS_ADDRESS": f"127.0.0.1:{free_dev_server_port()}",
        },
    )
    try:
        await asyncio.to_thread(migrate, url)
        engine = make_engine(url)
        load_sample(session_factory(engine), stock={(HOT, "SH"): 40})  # TSHIRT-RED-M: 100 at HZ
        seed_desk(session_factory(engine), numbers=80)  # the sample carriers, 80 numbers each
        engine.dispose()
        await stack.start_worker()
        yield {"settings": settings, "servers": servers, "stack": stack}
    finally:
        stack.close()
        for server in servers:
            await asyncio.to_thread(server.stop)


def stages(stack: OmsStack) -> dict[str, str]:
    return dict(stack.read(lambda s: s.execute(select(Order.order_id, Order.stage)).all()))


async def until_stages(stack: OmsStack, expected: dict[str, str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    seen: dict[str, str] = {}
    while time.monotonic() < deadline:
        seen = await asyncio.to_thread(stages, stack)
        if all(seen.get(k) == v for k, v in expected.items()):
            return
        await asyncio.sleep(0.2)
    wrong = {k: (seen.get(k), v) for k, v in expected.items() if seen.get(k) != v}
    raise AssertionError(
        f"not settled after {timeout:.0f}s (actual, expected): {wrong}\n{stack.worker_log()[-3000:]}"
    )


async def test_dev_server_sigkilled_mid_burst_loses_no_acknowledged_order_or_signal(
    embedded: dict[str, Any],
) -> None:
    settings, servers, stack = embedded["settings"], embedded["servers"], embedded["stack"]
    client = await connect(settings)
    numbers = {oid: n for n, oid in enumerate(WAITING + CLEAN + NEW_BUYER)}

    for oid in WAITING:
        assert await submit_one(client, settings, doc(oid, numbers[oid])) == "started"
    await until_stages(stack, dict.fromkeys(WAITING, "awaiting_buyer"), timeout=30)

    # The burst: 60 starts and 10 confirmations in flight; the server dies among them.
    acked: dict[str, str] = {}  # operation -> the answer the caller got
    failed: dict[str, BaseException] = {}
    acked_starts = asyncio.Event()

    async def start(oid: str) -> None:
        try:
            acked[f"start:{oid}"] = await submit_one(client, settings, doc(oid, numbers[oid]))
        except Exception as exc:  # the server died under this call: no answer
            failed[f"start:{oid}"] = exc
        if sum(k.startswith("start:") for k in acked) >= KILL_AFTER:
            acked_starts.set()

    async def confirm(i: int, oid: str) -> None:
        handle = client.get_workflow_handle(f"order-{oid}")
        key = f"update:{oid}" if i % 2 == 0 else f"signal:{oid}"
        try:
            if i % 2 == 0:
                # A caller that gives up after 20 s (the SDK would wait a minute for an
                # update lost with the server) and asks again under the same update id.
                await handle.execute_update("confirm", confirmation(i), id=f"drill-confirm-{oid}",
                                            rpc_timeout=timedelta(seconds=20))
            else:
                await handle.signal("buyer_confirmed", confirmation(i),
                                    rpc_timeout=timedelta(seconds=20))
            acked[key] = "accepted"
        except Exception as exc:
            failed[key] = exc

    burst = [asyncio.create_task(start(oid)) for oid in CLEAN + NEW_BUYER]
    burst += [asyncio.create_task(confirm(i, oid)) for i, oid in enumerate(WAITING)]
    await asyncio.wait_for(acked_starts.wait(), timeout=30)
    killed = servers[0].process
    assert killed is not None
    killed.send_signal(signal.SIGKILL)
    await asyncio.to_thread(killed.wait, 10)
    assert killed.returncode == -signal.SIGKILL
    in_flight = sum(not t.done() for t in burst)
    assert in_flight > 0, "the kill came after the burst: it tests nothing"

    servers.append(DevServer(settings))  # the same OMS_HOME, database file, port and pragmas
    assert await asyncio.to_thread(servers[-1].start)
    await asyncio.wait_for(asyncio.gather(*burst), timeout=120)  # a loaded box needs more than 60 s

    # What got no answer is sent again, as a caller would: the same ids.
    for key in sorted(failed):
        kind, oid = key.split(":")
        if kind == "start":
            acked[key] = await submit_one(client, settings, doc(oid, numbers[oid]))
            assert acked[key] in ("started", "duplicate"), acked[key]
        else:
            await confirm(WAITING.index(oid), oid)
            assert key in acked, f"{key} refused after the restart: {failed[key]!r}"
    assert all(acked.get(f"start:{oid}") in ("started", "duplicate") for oid in CLEAN + NEW_BUYER)

    expected = {
        **dict.fromkeys(CLEAN, "released"),
        **dict.fromkeys(WAITING, "released"),  # confirmed: checked again, reserved, released
        **dict.fromkeys(NEW_BUYER, "awaiting_buyer"),
    }
    await until_stages(stack, expected, timeout=60)
    assert stack.worker.poll() is None, "the worker did not ride out the server's restart"

    def effects(session: Any) -> tuple[Counter[tuple[str, str]], Counter[tuple[str, str]]]:
        outbox = Counter(session.execute(select(OutboxEvent.order_id, OutboxEvent.type)).all())
        moves = Counter(session.execute(select(StockMovement.order_id, StockMovement.kind)).all())
        return outbox, moves

    def parcels_of(session: Any) -> list[Any]:
        return list(session.execute(select(
            ParcelOrderRow.order_id, ParcelRow.parcel_id, ParcelRow.waybill).join(
            ParcelRow, ParcelRow.parcel_id == ParcelOrderRow.parcel_id)).all())

    # The desk's step follows the release (the stage is written first): wait for its parcels.
    releases = sum(stage == "released" for stage in expected.values())
    deadline = time.monotonic() + 60
    while len(parcels := stack.read(parcels_of)) < releases and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    outbox, moves = stack.read(effects)
    in_parcels = Counter(oid for oid, _, _ in parcels)
    waybill_of = {pid: wb for _, pid, wb in parcels}
    assert all(waybill_of.values()), "a released order's parcel got no waybill"
    assert len(set(waybill_of.values())) == len(waybill_of), "a waybill number used twice"
    for oid, stage in expected.items():
        released = stage == "released"
        assert moves[(oid, "reserve")] == (1 if released else 0), oid
        assert outbox[(oid, "pick_list")] == (1 if released else 0), oid
        assert outbox[(oid, "buyer_message")] == (0 if oid in CLEAN else 1), oid
        assert in_parcels[oid] == (1 if released else 0), oid  # one parcel, one waybill
    assert stack.read(check_invariants) == []

    query = f'WorkflowType = "OrderWorkflow" AND TaskQueue = "{settings.task_queue}"'
    assert await workflow_problems(client, query) == []
    running = [wf.id async for wf in client.list_workflows(query + ' AND ExecutionStatus = "Running"')]
    assert sorted(running) == sorted(f"order-{oid}" for oid in expected)
    for oid in WAITING:  # Temporal's view is the database's
        state = await client.get_workflow_handle(f"order-{oid}").query("state", result_type=OrderSnapshot)
        assert state.stage == "released", oid

    # The worker's workflow cache stayed within its bound (the SDK's own gauge).
    metrics = httpx.get(f"http://{stack.env['OMS_SDK_METRICS_ADDRESS']}/metrics", timeout=10).text
    sizes = [float(v) for v in re.findall(r"^temporal_sticky_cache_size\{[^}]*\} (\S+)$", metrics, re.M)]
    assert sizes and 0 < max(sizes) <= CACHE, sizes

    # The server ran with the tuned pragmas: its database file is in WAL mode.
    with sqlite3.connect(servers[-1].db_file) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == DEV_SERVER_PRAGMAS["journal_mode"]
    assert f"synchronous={DEV_SERVER_PRAGMAS['synchronous']}" in servers[-1].command()
