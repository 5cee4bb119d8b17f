"""The HTTP service at size: reads at 10,000 and 100,000 orders, and intake against a bare loop.

For each database (SQLite, PostgreSQL) and each size, a fresh database is seeded through the
project's own persistence code (`benchmarks/seed.py`: the first check's `_record`, then the
state write every pause makes, so rows, lines, timeline and the flag index are what running
orders leave), in a mix a merchant's database has: most orders completed or cancelled, a few
percent waiting for the buyer, for payment, for stock, for approval, in the warehouse. Then
the service runs as deployed (`python starter.py serve`, its own process) and this script,
one client, sequential requests, measures p50 / p95 of:

* `GET /v1/orders/{id}` (random orders);
* `GET /v1/orders?waiting_for=buyer&limit=50`, pages all through the list (cursor after cursor);
* the same with `sort=ship_by` (issue 19: the Taobao and Pinduoduo orders carry a ship-by time,
  soonest first, then the others oldest first), all through the list;
* the work queue page (`/`, signed in as a clerk: tab counts plus the first 50 rows, by deadline);
* search (`GET /v1/orders?q=`, issue 21): in turn the phone's last four digits, an order-id
  prefix, a SKU that every order has (a full page of 50) and a platform filter.

Targets at 100,000 orders: p95 <= 20 ms for one order, <= 50 ms for a page (a search too);
the page and the search at 100,000 within 1.5x their cost at 10,000.

Intake: 5,000 orders posted in batches of 500 (`POST /v1/orders`) against a bare loop of
`start_workflow` calls (the same concurrency, 64) on the same dev server in the same run;
target ratio (HTTP orders/s over bare orders/s) >= 0.9. No worker runs: both measure how fast
orders are accepted, not processed.

    .venv/bin/python benchmarks/service.py [--sizes 10000,100000] [--backends sqlite,postgres]
        [--requests 300] [--skip-intake]

Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.seed import seed_order  # noqa: E402
from models.db import make_engine, migrate, session_factory, transaction  # noqa: E402
from models.documents import OrderDocument, workflow_id_for  # noqa: E402

SEARCH_KEY = "bench-search-key-" + "b" * 24  # names and phones hashed, as with OMS_SEARCH_KEY
PG_ADMIN = os.environ.get("OMS_TEST_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
# One payload-codec key for the run: the service and the bare loop seal with the same codec.
CODEC_KEYS = os.environ.get("OMS_CODEC_KEYS") or ""


def codec_keys() -> str:
    global CODEC_KEYS
    if not CODEC_KEYS:
        from runtime.codec import new_key

        CODEC_KEYS = new_key().text()
    return CODEC_KEYS
SAMPLE = ROOT / "sample"
SHANGHAI = ZoneInfo("Asia/Shanghai")

# stage: share of the orders kept (the rest completed)
MIX = {
    "awaiting_buyer": 0.03,
    "awaiting_payment": 0.01,
    "backordered": 0.01,
    "awaiting_approval": 0.01,
    "released": 0.03,
    "on_hold": 0.005,
    "cancelled": 0.05,
}
FLAGS = {"awaiting_buyer": ["address_vague"], "awaiting_payment": ["unpaid"],
         "awaiting_approval": ["high_value", "needs_approval"], "on_hold": ["buyer_timeout"]}
FINDINGS = {
    "awaiting_buyer": [{"code": "address_vague", "field": "address.detail", "class": "buyer",
                        "message_en": "The address detail lacks a door number.",
                        "message_zh": "详细地址缺少门牌号，请向买家确认具体门牌号。"}],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = int(rank), min(int(rank) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def document(i: int, created: datetime) -> OrderDocument:
    platform = random.choice(["taobao", "jd", "pdd"])
    # Taobao's and Pinduoduo's orders carry a ship-by time (48 h, as a sync maps it, +08:00):
    # the queue puts those first (issue 19), the others after them, oldest first
    extra = ({"ship_by": (created + timedelta(hours=48)).astimezone(SHANGHAI).isoformat()}
             if platform != "jd" else {})
    return OrderDocument.model_validate({
        **extra,
        "order_id": f"B{i:07d}",
        "platform": platform,
        "created_at": created.isoformat(),
        "buyer": {"name": "张三", "phone": f"138{i % 10**8:08d}", "id": f"buyer-{i}"},
        "address": {"country": "CN", "province": "浙江省", "city": "杭州市", "district": "西湖区",
                    "detail": f"文三路{i % 900 + 100}号3幢501室", "postal_code": "310000"},
        "lines": [{"sku": "TSHIRT-RED-M", "qty": 1, "unit_price": "59.00"}],
        "discount": "0.00", "shipping_fee": "0.00", "total": "59.00",
        "payment": {"status": "paid", "method": "alipay", "amount": "59.00",
                    "transaction_id": f"T{i}"},
    })


def seed(url: str, size: int, already: int = 0) -> None:
    """Orders `already`..`size` (a database grows from one size to the next)."""
    import json

    from reads.queries import load_reference

    migrate(url)
    engine = make_engine(url)
    factory = session_factory(engine)
    if not already:
        with transaction(factory) as session:
            for kind, name in (("catalog", "catalog.json"), ("warehouses", "warehouses.json"),
                               ("stock", "stock.json")):
                load_reference(session, kind, json.loads((SAMPLE / name).read_text(encoding="utf-8")))
    rng = random.Random(7 + already)
    stages = list(MIX) + ["completed"]
    weights = list(MIX.values()) + [1 - sum(MIX.values())]
    start = datetime(2026, 6, 1, tzinfo=UTC)
    step = timedelta(minutes=2)  # 100,000 orders span about four months
    began = time.monotonic()
    batch = 1000
    for first in range(already, size, batch):
        with transaction(factory) as session:
            for i in range(first, min(size, first + batch)):
                stage = rng.choices(stages, weights)[0]
                created = start + step * i
                seed_order(session, document(i, created), stage=stage, flags=FLAGS.get(stage),
                           findings=FINDINGS.get(stage), submitted_at=created,
                           stage_since=created + timedelta(minutes=5),
                           search_key=SEARCH_KEY.encode())
        if first > already and first % 20000 == 0:
            print(f"    seeded {first:,} ({time.monotonic() - began:.0f}s)", flush=True)
    with engine.connect() as conn:
        if url.startswith("postgresql"):
            conn.execute(sa.text("ANALYZE"))
        else:
            conn.exec_driver_sql("ANALYZE")
        conn.commit()
    print(f"    seeded {size - already:,} orders in {time.monotonic() - began:.0f}s ({size:,} in all)",
          flush=True)
    engine.dispose()


def make_key(url: str) -> str:
    from service.keys import create_key

    engine = make_engine(url)
    with transaction(session_factory(engine)) as session:
        key = create_key(session, name=f"bench-{uuid.uuid4().hex[:6]}", role="clerk")
    engine.dispose()
    return key


class Service:
    """`python starter.py serve` on a free port, against `db_url` and the dev server."""

    def __init__(self, db_url: str, temporal: str, home: Path, task_queue: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OMS_", "TEMPORAL_"))}
        env.update({"OMS_HOME": str(home), "OMS_DATABASE_URL": db_url,
                    "OMS_HTTP_ADDRESS": f"127.0.0.1:{self.port}", "TEMPORAL_ADDRESS": temporal,
                    "OMS_TASK_QUEUE": task_queue, "OMS_SESSION_SECRET": uuid.uuid4().hex * 2,
                    "OMS_LOG_LEVEL": "WARNING", "OMS_LOG_FORMAT": "json",
                    "OMS_SDK_METRICS_ADDRESS": "", "OMS_CODEC_KEYS": codec_keys(),
                    "OMS_SEARCH_KEY": SEARCH_KEY})
        self.log = open(home / f"serve-{self.port}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "starter.py"), "serve"],
                                     env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the service did not start: see {self.log.name}")
            time.sleep(0.2)

    def tail(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def timed(fn: Any, count: int) -> list[float]:
    out = []
    for _ in range(count):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def measure_reads(svc: Service, key: str, size: int, requests: int) -> dict[str, list[float]]:
    rng = random.Random(11)
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=svc.url, headers=headers, timeout=30) as http:
        for _ in range(20):  # warm the pools and caches
            http.get(f"/v1/orders/B{rng.randrange(size):07d}")

        def one() -> None:
            r = http.get(f"/v1/orders/B{rng.randrange(size):07d}")
            assert r.status_code == 200, r.text

        cursor: list[str | None] = [None]
        pages = [0]

        def page() -> None:
            params: dict[str, Any] = {"waiting_for": "buyer", "limit": 50}
            if cursor[0]:
                params["cursor"] = cursor[0]
            r = http.get("/v1/orders", params=params)
            assert r.status_code == 200 and len(r.json()["orders"]) > 0, r.text
            cursor[0] = r.json()["next_cursor"]  # through the list, then from the top again
            pages[0] += 1

        due_cursor: list[str | None] = [None]

        def due_page() -> None:  # the queue's order: the deadlines' range, then the rest's
            params: dict[str, Any] = {"waiting_for": "buyer", "limit": 50, "sort": "ship_by"}
            if due_cursor[0]:
                params["cursor"] = due_cursor[0]
            r = http.get("/v1/orders", params=params)
            assert r.status_code == 200 and len(r.json()["orders"]) > 0, r.text
            due_cursor[0] = r.json()["next_cursor"]

        searches = [lambda: {"q": f"{rng.randrange(10**4):04d}"},
                    lambda: {"q": f"B{rng.randrange(size):07d}"[:6]},
                    lambda: {"q": "TSHIRT-RED-M", "limit": 50},
                    lambda: {"platform": rng.choice(["taobao", "jd", "pdd"]), "limit": 50}]
        turn = [0]

        def search() -> None:
            params = searches[turn[0] % len(searches)]()
            turn[0] += 1
            r = http.get("/v1/orders", params=params)
            assert r.status_code == 200 and r.json()["orders"], (params, r.text)

        one_ms = timed(one, requests)
        page_ms = timed(page, requests)
        due_ms = timed(due_page, requests)
        search_ms = timed(search, requests)
    with httpx.Client(base_url=svc.url, timeout=30, follow_redirects=False) as browser:
        form = browser.get("/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert token, "no csrf token on the sign-in page"
        signed = browser.post("/login", data={"key": key, "csrf_token": token.group(1), "next": "/"})
        assert signed.status_code == 303, signed.text

        def queue() -> None:
            r = browser.get("/?tab=buyer")
            assert r.status_code == 200 and "data-order=" in r.text, r.status_code

        for _ in range(5):
            queue()
        queue_ms = timed(queue, max(50, requests // 3))
    return {"order": one_ms, "page": page_ms, "due": due_ms, "queue": queue_ms, "search": search_ms}


async def measure_intake(temporal: str, home: Path, db_url: str, orders: int = 5000,
                         batch: int = 500) -> tuple[float, float]:
    """(HTTP orders/s, bare start_workflow orders/s) on the same server, no worker."""
    from models.payloads import OrderInput
    from models.settings import Settings
    from runtime.temporal import connect
    from workflows.order import OrderWorkflow

    queue = f"bench-intake-{uuid.uuid4().hex[:6]}"
    from pydantic import SecretStr

    settings = Settings(temporal_address=temporal, task_queue=queue, database_url=db_url,
                        home=home, codec_keys=SecretStr(codec_keys()))
    client = await connect(settings)
    run = uuid.uuid4().hex[:6]
    created = datetime(2026, 11, 26, tzinfo=UTC)
    docs = [document(i, created).model_copy(update={"order_id": f"BARE-{run}-{i}"})
            for i in range(orders)]
    gate = asyncio.Semaphore(64)

    async def start(doc: OrderDocument) -> None:
        async with gate:
            await client.start_workflow(
                OrderWorkflow.run,
                OrderInput(order=doc, policy=settings.order_policy(), submitted_at=datetime.now(UTC)),
                id=workflow_id_for(doc.order_id), task_queue=queue)

    t0 = time.perf_counter()
    await asyncio.gather(*(start(d) for d in docs))
    bare = orders / (time.perf_counter() - t0)

    svc = Service(db_url, temporal, home, queue)
    key = make_key(db_url)
    try:
        payloads = [document(i, created).model_dump(mode="json") | {"order_id": f"HTTP-{run}-{i}"}
                    for i in range(orders)]
        async with httpx.AsyncClient(base_url=svc.url, timeout=120,
                                     headers={"Authorization": f"Bearer {key}"}) as http:
            t0 = time.perf_counter()
            for first in range(0, orders, batch):
                r = await http.post("/v1/orders", json=payloads[first:first + batch])
                assert r.status_code == 200, r.text
                assert {x["result"] for x in r.json()["results"]} == {"started"}, r.text[:500]
            posted = orders / (time.perf_counter() - t0)
    finally:
        svc.stop()
    return posted, bare


def pg_database() -> tuple[str, Any]:
    name = f"oms_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", drop


def row(label: str, values: list[float]) -> str:
    return f"{label:<34} p50 {statistics.median(values):7.1f} ms   p95 {percentile(values, 95):7.1f} ms"


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--skip-intake", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]  # --sizes "": intake only
    from temporalio.testing import WorkflowEnvironment

    from runtime.devserver import temporal_binary

    env = await WorkflowEnvironment.start_local(dev_server_existing_path=temporal_binary(),
                                                dev_server_log_level="error")
    temporal = env.client.service_client.config.target_host
    results: dict[tuple[str, int], dict[str, list[float]]] = {}
    failed: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="oms-bench-") as tmp:
            home = Path(tmp)
            for backend in args.backends.split(",") if sizes else []:
                # One database per backend, grown from one size to the next.
                drop = None
                if backend == "postgres":
                    url, drop = pg_database()
                else:
                    url = f"sqlite:///{home / 'bench.db'}"
                try:
                    already = 0
                    for size in sorted(sizes):
                        print(f"\n{backend}, {size:,} orders", flush=True)
                        await asyncio.to_thread(seed, url, size, already)
                        already = size
                        key = make_key(url)
                        svc = Service(url, temporal, home, f"bench-{uuid.uuid4().hex[:6]}")
                        try:
                            got = await asyncio.to_thread(measure_reads, svc, key, size,
                                                          args.requests)
                        except AssertionError:
                            print("the service's log:\n" + svc.tail(), flush=True)
                            raise
                        finally:
                            svc.stop()
                        results[(backend, size)] = got
                        print(row("GET /v1/orders/{id}", got["order"]))
                        print(row("GET /v1/orders?waiting_for=buyer", got["page"]))
                        print(row("GET /v1/orders?waiting_for=buyer&sort=ship_by", got["due"]))
                        print(row("work queue page (/?tab=buyer)", got["queue"]))
                        print(row("search GET /v1/orders?q=", got["search"]))
                finally:
                    if drop:
                        drop()
            if not args.skip_intake:
                print("\nintake: 5,000 orders, batches of 500, vs a bare start_workflow loop",
                      flush=True)
                url = f"sqlite:///{home / 'intake.db'}"
                migrate(url)
                posted, bare = await measure_intake(temporal, home, url)
                ratio = posted / bare
                print(f"  HTTP {posted:.0f} orders/s, bare {bare:.0f} orders/s: ratio {ratio:.2f}"
                      " (target >= 0.9)")
                if ratio < 0.9:
                    failed.append(f"intake ratio {ratio:.2f} < 0.9")
    finally:
        await env.shutdown()

    print("\nsummary (p95, ms)")
    print(f"{'backend':<10}{'orders':>9}{'one order':>11}{'page':>8}{'by due':>8}{'queue':>8}{'search':>8}")
    for (backend, size), got in results.items():
        print(f"{backend:<10}{size:>9,}{percentile(got['order'], 95):>11.1f}"
              f"{percentile(got['page'], 95):>8.1f}{percentile(got['due'], 95):>8.1f}"
              f"{percentile(got['queue'], 95):>8.1f}"
              f"{percentile(got['search'], 95):>8.1f}")
    big, small = max(sizes, default=0), min(sizes, default=0)
    for backend in args.backends.split(","):
        if (backend, big) not in results:
            continue
        got = results[(backend, big)]
        if percentile(got["order"], 95) > 20:
            failed.append(f"{backend} {big:,}: one order p95 {percentile(got['order'], 95):.1f} > 20 ms")
        for what in ("page", "due", "queue", "search"):
            if percentile(got[what], 95) > 50:
                failed.append(f"{backend} {big:,}: {what} p95 {percentile(got[what], 95):.1f} > 50 ms")
        if big != small and (backend, small) in results:
            for what in ("page", "due", "queue", "search"):
                growth = statistics.median(got[what]) / statistics.median(results[(backend, small)][what])
                print(f"{backend}: {what} at {big:,} / at {small:,} (p50) = {growth:.2f} (target <= 1.5)")
                if growth > 1.5:
                    failed.append(f"{backend}: {what} grows {growth:.2f}x from {small:,} to {big:,}")
    for f in failed:
        print("MISSED:", f)
    return 1 if failed else 0


if __name__ == "__main__":
    from models.settings import Settings
    from runtime.logs import configure_logging

    configure_logging(Settings(log_level="WARNING"))
    code = asyncio.run(main())
    sys.stdout.flush()
    os._exit(code)  # the Temporal client's native threads can abort a normal interpreter exit
