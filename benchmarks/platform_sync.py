"""A Taobao shop's day of orders through its sync, against the same orders posted over HTTP.

10,000 trades modified over the last 24 hours wait in one stand-in Taobao shop
(`platforms.standin`, on localhost). The run measures:

* **sync**: from `shops add` (the shop's row and its Temporal Schedule, as
  `oms shops add` makes them) to the last of its orders started: 48 windows of 30 minutes,
  each read from its last page back, receivers decrypted 20 at a time, every order handed
  to intake, the cursor committed window by window;
* **HTTP**: the same order documents (receivers already in plaintext) posted through
  `POST /v1/orders` in batches of 1,000 to `python starter.py serve`, in the same run, on
  the same dev server and database;
* **gateway calls per order**: every call the stand-in answered, over the orders.

Targets: sync orders/s over HTTP orders/s >= 0.8; <= 0.1 gateway calls per order.
As in `benchmarks/service.py`'s intake figure, no worker takes the orders themselves (they
wait on their own task queue): both sides measure how fast orders get in, not how fast they
are processed. The sync's own worker (the ShopSync workflow and its activity) runs in this
process.

    .venv/bin/python benchmarks/platform_sync.py [--orders 10000] [--hours 24]

Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from pydantic import SecretStr

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.service import Service, codec_keys, make_key  # noqa: E402
from models.db import make_engine, migrate, session_factory, transaction  # noqa: E402
from models.settings import Settings  # noqa: E402

SKUS = [("TSHIRT-RED-M", "59.00"), ("MUG-WHITE", "35.00"), ("LAMP-DESK", "129.00"),
        ("TEA-LONGJING-250G", "268.00")]


def imported(factory: object, shop: str) -> int:
    from sqlmodel import func, select

    from platforms.tables import ShopOrder

    with transaction(factory) as s:  # type: ignore[arg-type]
        query = select(func.count()).select_from(ShopOrder)
        return int(s.exec(query.where(ShopOrder.shop == shop,
                                      ShopOrder.outcome == "imported")).one())


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--hours", type=float, default=24.0)
    args = parser.parse_args()

    from temporalio.testing import WorkflowEnvironment

    from commands.shops import ShopCommands
    from platforms import taobao
    from platforms.mapping import Receiver, with_receiver
    from platforms.standin.trades import generate
    from runtime.codec import key_ring
    from runtime.devserver import temporal_binary
    from runtime.temporal import connect
    from runtime.worker import build_worker

    env = await WorkflowEnvironment.start_local(dev_server_existing_path=temporal_binary(),
                                                dev_server_log_level="error")
    temporal = env.client.service_client.config.target_host
    now = time.time()
    skus = ",".join(f"{code}={price}" for code, price in SKUS)
    # The stand-in in its own process, as the real gateway is: it does not share this
    # process's interpreter with the worker.
    standin = subprocess.Popen(
        [sys.executable, "-m", "platforms.standin", "--platform", "taobao", "--app-key",
         "bench-key", "--app-secret", "bench-secret", "--session", "bench-session",
         "--orders", str(args.orders), "--hours", str(args.hours), "--end-ago", "120",
         "--skus", skus],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    assert standin.stdout is not None
    gateway_url = standin.stdout.readline().split()[2]
    trades = generate("taobao", args.orders, start=now - args.hours * 3600, end=now - 120,
                      skus=SKUS)
    failed: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="oms-bench-sync-") as tmp:
            home = Path(tmp)
            url = f"sqlite:///{home / 'bench.db'}"
            migrate(url)
            engine = make_engine(url)
            factory = session_factory(engine)
            orders_queue = f"bench-orders-{uuid.uuid4().hex[:6]}"  # no worker: orders wait
            sync_queue = f"bench-sync-{uuid.uuid4().hex[:6]}"
            base = {"temporal_address": temporal, "database_url": url, "home": home,
                    "codec_keys": SecretStr(codec_keys()), "log_level": "WARNING"}
            worker_settings = Settings(task_queue=orders_queue, **base)
            commands_settings = Settings(task_queue=sync_queue, **base)
            client = await connect(worker_settings)
            worker = build_worker(client, worker_settings, factory, None, task_queue=sync_queue)
            name = f"bench-{uuid.uuid4().hex[:6]}"
            async with worker:
                commands = ShopCommands(factory, commands_settings, key_ring(commands_settings))
                since = now - args.hours * 3600 - 300  # before the first order
                from datetime import UTC, datetime

                t0 = time.perf_counter()
                await commands.add(client, {
                    "name": name, "platform": "taobao", "app_key": "bench-key",
                    "app_secret": "bench-secret", "session": "bench-session",
                    "api_url": gateway_url, "poll_every": "PT1M",
                    "since": datetime.fromtimestamp(since, UTC).isoformat(),
                })
                last_report = time.monotonic()
                while (got := await asyncio.to_thread(imported, factory, name)) < args.orders:
                    await asyncio.sleep(0.1)
                    if time.monotonic() - last_report > 15:
                        last_report = time.monotonic()
                        shops = await asyncio.to_thread(commands.list)
                        state = next(s for s in shops if s["name"] == name)
                        print(f"  ... {got:,} imported; {state['state']} "
                              f"{state['last_error'] or ''}", flush=True)
                sync_s = time.perf_counter() - t0
                await commands.pause(client, name)
            standin.send_signal(signal.SIGUSR1)
            by_method = json.loads(standin.stdout.readline().removeprefix("calls "))
            calls = sum(by_method.values())
            print(f"sync: {args.orders:,} orders over {args.hours:g} h in {sync_s:.1f} s "
                  f"({args.orders / sync_s:.0f} orders/s); {calls} gateway calls "
                  f"({calls / args.orders:.3f} per order: "
                  + ", ".join(f"{m} {n}" for m, n in sorted(by_method.items())) + ")",
                  flush=True)

            docs = []
            for trade, receiver in trades:
                mapped = taobao.map_trade(trade, shop=name)
                assert mapped.document is not None
                doc = with_receiver(mapped.document, Receiver(
                    name=receiver["name"], phone=receiver["phone"], detail=receiver["address"]))
                docs.append(doc | {"order_id": "http-" + doc["order_id"]})
            svc = Service(url, temporal, home, orders_queue)
            key = make_key(url)
            try:
                async with httpx.AsyncClient(base_url=svc.url, timeout=300,
                                             headers={"Authorization": f"Bearer {key}"}) as http:
                    t0 = time.perf_counter()
                    for first in range(0, len(docs), 1000):
                        r = await http.post("/v1/orders", json=docs[first:first + 1000])
                        assert r.status_code == 200, r.text[:500]
                        results = {x["result"] for x in r.json()["results"]}
                        assert results == {"started"}, r.text[:500]
                    http_s = time.perf_counter() - t0
            finally:
                svc.stop()
            print(f"HTTP: {args.orders:,} orders in {http_s:.1f} s "
                  f"({args.orders / http_s:.0f} orders/s)", flush=True)
            ratio = http_s / sync_s
            print(f"ratio sync/HTTP orders/s: {ratio:.2f} (target >= 0.8); "
                  f"gateway calls per order {calls / args.orders:.3f} (target <= 0.1)")
            if ratio < 0.8:
                failed.append(f"ratio {ratio:.2f} < 0.8")
            if calls / args.orders > 0.1:
                failed.append(f"{calls / args.orders:.3f} calls per order > 0.1")
            engine.dispose()
    finally:
        standin.terminate()
        standin.wait(timeout=10)
        await env.shutdown()
    if failed:
        print("MISSED: " + "; ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
