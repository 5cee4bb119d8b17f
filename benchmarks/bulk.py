"""A bulk approve of 500 orders on the embedded stack, and the other orders meanwhile.

The stack as `worker.py --dev` runs it: the dev server started by `DevServer` (its own
temporary OMS_HOME and SQLite database, free ports), the real `python worker.py` in a process
of its own (codec on), and the HTTP service (`service.server.Beside`) in this process. Then:

1. 500 orders over the approval threshold are submitted and wait for approval;
2. baseline: 100 clean orders are submitted and timed from submit to `released`;
3. the bulk: `POST /v1/orders/actions/approve` with the 500 ids (each its own update, at most
   `service.desk.BULK_CONCURRENCY` in flight), while 100 more clean orders are submitted at
   the same moment; timed: the bulk's answer, the 500 reaching `released`, and the clean
   orders' submit → released (p50 / p95) beside the baseline.

Targets: the bulk answered within 30 s with 500 accepted; the clean orders released during
the bulk within 2x the baseline's p95 (they are "still released on time"). Exits 1 when missed.

    .venv/bin/python benchmarks/bulk.py [--orders 500] [--clean 100]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import embedded  # noqa: E402
import httpx  # noqa: E402
import throughput  # noqa: E402
from sqlalchemy import select  # noqa: E402

from models.db import make_engine, migrate, session_factory, transaction  # noqa: E402
from models.documents import OrderDocument  # noqa: E402
from models.tables import Order, TimelineEntry  # noqa: E402
from reads.queries import load_reference  # noqa: E402
from runtime.devserver import DevServer  # noqa: E402
from runtime.temporal import connect  # noqa: E402
from service.desk import BULK_CONCURRENCY  # noqa: E402
from service.keys import create_key  # noqa: E402
from service.server import Beside  # noqa: E402

BULK_TARGET_S = 30.0
LATE_FACTOR = 2.0


def big_order(n: int) -> OrderDocument:
    """An order of one X1 phone: over the approval threshold, waits for a clerk."""
    doc = throughput.order(n, "BULK").model_dump(mode="json")
    doc["lines"] = [{"sku": "PHONE-X1", "qty": 1, "unit_price": "6999.00"}]
    doc["total"] = doc["payment"]["amount"] = "6999.00"
    doc["buyer"]["phone"] = f"139{n:08d}"
    return OrderDocument.model_validate(doc)


def load(factory: Any, orders: int, clean: int) -> None:
    throughput.load_reference_data(factory, 2 * clean + 10)
    with transaction(factory) as session:
        count, errors = load_reference(session, "stock", [
            {"sku": "PHONE-X1", "warehouse": "HZ", "on_hand": orders + 10}])
        assert not errors, errors


def stages(factory: Any, ids: list[str]) -> dict[str, str]:
    with transaction(factory) as session:
        rows = session.execute(select(Order.order_id, Order.stage)
                               .where(Order.order_id.in_(ids))).all()  # type: ignore[attr-defined]
    return dict(rows)


def released_at(factory: Any, ids: list[str]) -> dict[str, datetime]:
    with transaction(factory) as session:
        rows = session.execute(select(TimelineEntry.order_id, TimelineEntry.at).where(
            TimelineEntry.order_id.in_(ids), TimelineEntry.type == "released")).all()  # type: ignore[attr-defined]
    return {o: (at if at.tzinfo else at.replace(tzinfo=UTC)) for o, at in rows}


async def wait_for(factory: Any, ids: list[str], stage: str, timeout: float) -> float:
    started = time.monotonic()
    while True:
        now = await asyncio.to_thread(stages, factory, ids)
        if sum(1 for s in now.values() if s == stage) >= len(ids):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            counts: dict[str, int] = {}
            for s in now.values():
                counts[s] = counts.get(s, 0) + 1
            raise SystemExit(f"not all {len(ids)} orders {stage} within {timeout:.0f}s: {counts}")
        await asyncio.sleep(0.5)


async def clean_latencies(client: Any, settings: Any, factory: Any, start: int, count: int,
                          timeout: float) -> list[float]:
    docs = [throughput.order(n, "CLEAN") for n in range(start, start + count)]
    ids = [d.order_id for d in docs]
    submitted = datetime.now(UTC)
    await embedded.submit_all(client, settings, docs)
    await wait_for(factory, ids, "released", timeout)
    done = await asyncio.to_thread(released_at, factory, ids)
    return [(done[o] - submitted).total_seconds() for o in ids]


async def main_async(args: argparse.Namespace) -> int:
    from runtime.codec import new_key
    from service import desk

    desk.BULK_CONCURRENCY = args.concurrency  # the service runs in this process

    codec_keys = new_key().text()
    settings = embedded.installation("bulk", codec_keys, http_address="127.0.0.1:0",
                                     session_secret="bulk-bench-" + "s" * 24)
    server = DevServer(settings)
    await asyncio.to_thread(server.start)
    migrate(settings.db_url)
    engine = make_engine(settings.db_url)
    factory = session_factory(engine)
    load(factory, args.orders, args.clean)
    with transaction(factory) as session:
        key = create_key(session, name="bench-clerk", role="clerk")
    worker = embedded.start_worker(settings, codec_keys)
    service = Beside(settings, dev=False)
    try:
        client = await connect(settings)
        await throughput.wait_for_pollers(client, settings.task_queue, 1)
        await service.start()
        big = [big_order(n) for n in range(args.orders)]
        await embedded.submit_all(client, settings, big)
        ids = [d.order_id for d in big]
        waited = await wait_for(factory, ids, "awaiting_approval", args.timeout)
        print(f"{args.orders} orders waiting for approval after {waited:.1f}s")
        baseline = await clean_latencies(client, settings, factory, 0, args.clean, args.timeout)

        async with httpx.AsyncClient(base_url=service.url, timeout=httpx.Timeout(300.0),
                                     headers={"Authorization": f"Bearer {key}"}) as http:
            started = time.monotonic()
            bulk = asyncio.create_task(http.post("/v1/orders/actions/approve",
                                                 json={"order_ids": ids, "note": "bulk bench"}))
            during = asyncio.create_task(
                clean_latencies(client, settings, factory, args.clean, args.clean, args.timeout))
            response = await bulk
            answered = time.monotonic() - started
            assert response.status_code == 200, response.text[:500]
            results = response.json()["results"]
            accepted = sum(1 for r in results if r["accepted"])
            all_released = await wait_for(factory, ids, "released", args.timeout) + answered
            meanwhile = await during
    finally:
        await service.stop()
        worker.terminate()
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
        engine.dispose()
        await asyncio.to_thread(server.stop)
        shutil.rmtree(settings.home, ignore_errors=True)

    base_p50, base_p95 = throughput.percentile(baseline, 0.5), throughput.percentile(baseline, 0.95)
    p50, p95 = throughput.percentile(meanwhile, 0.5), throughput.percentile(meanwhile, 0.95)
    print(f"bulk approve of {args.orders}: answered in {answered:.1f}s (target <= {BULK_TARGET_S:.0f}s), "
          f"{accepted} accepted, {args.concurrency} updates in flight at most; "
          f"all {args.orders} released {all_released:.1f}s after the request")
    print(f"clean orders submit -> released: alone p50 {base_p50:.2f}s p95 {base_p95:.2f}s; "
          f"during the bulk p50 {p50:.2f}s p95 {p95:.2f}s (target p95 <= {LATE_FACTOR:g}x alone, "
          f"or <= 5s)")
    ok = (answered <= BULK_TARGET_S and accepted == args.orders
          and p95 <= max(LATE_FACTOR * base_p95, 5.0))
    print("OK" if ok else "TARGET MISSED")
    return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=500)
    parser.add_argument("--clean", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--concurrency", type=int, default=BULK_CONCURRENCY,
                        help="updates in flight per bulk (service.desk.BULK_CONCURRENCY)")
    sys.exit(asyncio.run(main_async(parser.parse_args())))


if __name__ == "__main__":
    main()
