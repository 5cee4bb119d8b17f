"""10,000 waiting orders on the embedded stack: the worker at rest, its restart, a reminder flood.

The stack as `worker.py --dev` runs it: the dev server started by `DevServer` (its tuned
SQLite pragmas) under a temporary OMS_HOME on free ports, and `python worker.py` in a
process of its own, its workflow cache bounded by OMS_WORKFLOW_CACHE (`--cache`). Then:

1. seed: N orders submitted (at most 64 start calls in flight), half of them waiting for
   the buyer (the address lacks its house number: the buyer is asked at once), half for
   stock (a SKU with none: backordered, policy `wait`); until every one waits;
2. at rest: the worker's and the server's resident memory, and their CPU over
   `--rest` seconds with nothing to do; the databases' size on disk;
3. restart: the worker stopped (SIGTERM) and started again with every order still open:
   seconds until it polls, and until a query to one order (its history replayed into the
   empty cache) is answered; its memory after;
4. reminder flood: the worker stopped again until every buyer's first reminder is due
   (the confirmations' `remind_every` is set so that none comes due before this phase),
   then started: all those reminders are due at once. Measured: from the worker's start to
   every reminder recorded (the contact log), the worker's peak memory, and how the server
   and the database hold up meanwhile (the slowest answer of a probe that lists one order
   through Temporal's visibility and reads the order database, once a second).
   The reminder SLA is `SLA_SECONDS` from coming due to sent.

    .venv/bin/python benchmarks/waiting.py [--orders 10000] [--cache 1000] [--rest 30]
        [--remind-every SECONDS]   # default: long enough for the seeding to finish first
        [--keep]                   # keep the temporary OMS_HOME (databases, worker.log)

Prints a table of the figures; exits 1 when an order did not wait where it should or its
workflow is not running, the flood lost a reminder, or the reminders took longer than the SLA.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import embedded  # noqa: E402  (benchmarks/ is not a package)
import throughput  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from models.db import make_engine, migrate, session_factory, transaction  # noqa: E402
from models.documents import OrderDocument, workflow_id_for  # noqa: E402
from models.payloads import OrderSnapshot  # noqa: E402
from models.settings import Settings  # noqa: E402
from models.tables import ContactLog, Order, to_utc  # noqa: E402
from runtime.devserver import DevServer, free_dev_server_port  # noqa: E402
from runtime.logs import configure_logging  # noqa: E402
from runtime.temporal import connect  # noqa: E402

SLA_SECONDS = 15 * 60  # a reminder due goes out within 15 minutes (the default interval: 4 h)
SHORT_SKU = "TEA-LONGJING-250G"  # no stock loaded: its orders wait for a restock


def waiting_order(n: int, *, for_buyer: bool) -> OrderDocument:
    base = throughput.order(n, "WAIT").model_dump(mode="json")
    if for_buyer:  # the street alone: the buyer is asked for the house number
        base["address"]["detail"] = "文三路"
    else:
        base["lines"] = [{"sku": SHORT_SKU, "qty": 1, "unit_price": "268.00"}]
        base["total"] = base["payment"]["amount"] = "268.00"
    return OrderDocument.model_validate(base)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def files_mb(*paths: Path) -> float:
    return sum(p.stat().st_size for p in paths if p.exists()) / 1e6


def counts(factory: Any) -> tuple[dict[str, int], int]:
    """(orders by stage, buyers reminded at least once)."""
    with transaction(factory) as session:
        stages = dict(session.execute(select(Order.stage, func.count()).group_by(Order.stage)).all())
        reminded = session.execute(
            select(func.count(func.distinct(ContactLog.order_id))).where(ContactLog.reminder >= 1)
        ).scalar_one()
    return stages, reminded


async def until(predicate: Any, timeout: float, what: str, poll: float = 0.5) -> float:
    """Seconds until `predicate()` (run in a thread) holds."""
    started = time.monotonic()
    while not await asyncio.to_thread(predicate):
        if time.monotonic() - started > timeout:
            raise SystemExit(f"{what}: not within {timeout:.0f}s")
        await asyncio.sleep(poll)
    return time.monotonic() - started


async def polling(client: Any, task_queue: str, worker: subprocess.Popen[bytes]) -> None:
    """Until this worker process polls (the task queue lists recent pollers, gone ones too)."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    while True:
        answer = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            )
        )
        if any(p.identity.startswith(f"{worker.pid}@") for p in answer.pollers):
            return
        if worker.poll() is not None:
            raise SystemExit(f"the worker exited with {worker.returncode}")
        await asyncio.sleep(0.1)


def stop(worker: subprocess.Popen[bytes]) -> None:
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=60)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


async def seed(client: Any, settings: Settings, count: int) -> tuple[list[str], float]:
    """Half the orders wait for their buyer (even numbers), half for stock."""
    docs = [waiting_order(n, for_buyer=n % 2 == 0) for n in range(count)]
    seconds = await embedded.submit_all(client, settings, docs)
    return [d.order_id for n, d in enumerate(docs) if n % 2 == 0], seconds


async def probe(client: Any, factory: Any, stop_probe: asyncio.Event, worst: list[float]) -> None:
    """Once a second: one order through visibility, one read of the order database."""
    while not stop_probe.is_set():
        started = time.monotonic()
        async for _ in client.list_workflows('WorkflowType = "OrderWorkflow"', limit=1):
            break
        await asyncio.to_thread(counts, factory)
        worst.append(time.monotonic() - started)
        await asyncio.sleep(1.0)


def sticky_cache(metrics_address: str) -> float:
    """The SDK's own gauge of workflows held in the worker's cache."""
    import httpx

    text = httpx.get(f"http://{metrics_address}/metrics", timeout=5).text
    values = [
        float(m.group(1))
        for m in re.finditer(r"^temporal_sticky_cache_size\{[^}]*\} ([0-9.e+]+)$", text, re.M)
    ]
    return max(values) if values else float("nan")


async def main_async(args: argparse.Namespace) -> int:
    from models.settings import Policy
    from runtime.codec import new_key

    configure_logging(Settings(log_level="WARNING"))
    codec_keys = new_key().text()
    remind_every = args.remind_every or max(180.0, args.orders * 0.12)
    policy = Policy.model_validate(
        {
            "confirmation": {"remind_every": remind_every, "timeout": remind_every * 20},
            # one street for every buyer: not a fraud sign here
            "fraud": {"max_orders_per_address": args.orders + 1},
        }
    )
    settings = embedded.installation("waiting", codec_keys, policy=policy)
    home = settings.home
    metrics_port = free_dev_server_port()
    worker_env = {
        "OMS_WORKFLOW_CACHE": str(args.cache),
        "OMS_SDK_METRICS_ADDRESS": f"127.0.0.1:{metrics_port}",
    }
    server = DevServer(settings)
    await asyncio.to_thread(server.start)
    assert server.process is not None
    spid = server.process.pid
    migrate(settings.db_url)
    engine = make_engine(settings.db_url)
    factory = session_factory(engine)
    throughput.load_reference_data(factory, args.orders)  # catalog, warehouses, T-shirts only
    out: dict[str, Any] = {}
    worker = embedded.start_worker(settings, codec_keys, worker_env)
    try:
        client = await connect(settings)
        await polling(client, settings.task_queue, worker)

        # 1. seed
        buyers, submit_s = await seed(client, settings, args.orders)
        half = len(buyers)

        def all_waiting() -> bool:
            stages, _ = counts(factory)
            return (
                stages.get("awaiting_buyer", 0) == half
                and stages.get("backordered", 0) == args.orders - half
            )

        settle_s = await until(all_waiting, args.timeout, "seeding")
        out["seed"] = (submit_s, submit_s + settle_s)
        early = counts(factory)[1]

        # 2. at rest
        await asyncio.sleep(5)
        cpu = (throughput._cpu_seconds([worker.pid]), throughput._cpu_seconds([spid]))
        await asyncio.sleep(args.rest)
        out["rest_cpu"] = (
            (throughput._cpu_seconds([worker.pid]) - cpu[0]) * 100 / args.rest,
            (throughput._cpu_seconds([spid]) - cpu[1]) * 100 / args.rest,
        )
        out["rest_rss"] = (rss_mb(worker.pid), rss_mb(spid))
        out["cache"] = sticky_cache(worker_env["OMS_SDK_METRICS_ADDRESS"])
        db = server.db_file
        out["disk"] = (
            files_mb(db, db.with_name(db.name + "-wal")),
            files_mb(home / "oms.db", home / "oms.db-wal"),
        )

        # 3. restart
        stop(worker)
        started = time.monotonic()
        worker = embedded.start_worker(settings, codec_keys, worker_env)
        await polling(client, settings.task_queue, worker)
        polling_s = time.monotonic() - started
        state = await client.get_workflow_handle(workflow_id_for(buyers[-1])).query(
            "state", result_type=OrderSnapshot
        )
        assert state.stage == "awaiting_buyer", state.stage
        out["restart"] = (polling_s, time.monotonic() - started, rss_mb(worker.pid))

        # 4. the reminder flood: every first reminder due while no worker runs
        stop(worker)
        with transaction(factory) as session:
            last_contact = session.execute(select(func.max(ContactLog.at))).scalar_one()
        due = to_utc(last_contact) + timedelta(seconds=remind_every)
        wait_s = (due - datetime.now(UTC)).total_seconds() + 2
        print(f"  waiting {max(wait_s, 0):.0f}s until every reminder is due", file=sys.stderr)
        await asyncio.sleep(max(wait_s, 0))
        worst: list[float] = []
        stop_probe = asyncio.Event()
        prober = asyncio.create_task(probe(client, factory, stop_probe, worst))
        cpu = (0.0, throughput._cpu_seconds([spid]))
        started = time.monotonic()
        worker = embedded.start_worker(settings, codec_keys, worker_env)
        flood_s = await until(lambda: counts(factory)[1] >= half, args.timeout, "reminders", 0.2)
        out["flood"] = {
            "seconds": flood_s,
            "late_by": (datetime.now(UTC) - due).total_seconds(),
            "worker_cpu_s": throughput._cpu_seconds([worker.pid]),
            "server_cpu_s": throughput._cpu_seconds([spid]) - cpu[1],
            "worker_peak_mb": throughput._peak_rss_mb(worker.pid),
            "cache": sticky_cache(worker_env["OMS_SDK_METRICS_ADDRESS"]),
        }
        stop_probe.set()
        await prober
        out["flood"]["probe_worst"] = max(worst, default=float("nan"))
        stages, reminded = counts(factory)
        running = await client.count_workflows(
            f'TaskQueue = "{settings.task_queue}" AND ExecutionStatus = "Running"'
        )
        out["final"] = (stages, reminded, early, running.count)
    finally:
        if worker.poll() is None:
            stop(worker)
        await asyncio.to_thread(server.stop)
        engine.dispose()
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)

    report(args, out, half, remind_every)
    stages, reminded, early, running = out["final"]
    ok = (
        running == args.orders
        and stages.get("awaiting_buyer", 0) == half
        and stages.get("backordered", 0) == args.orders - half
        and reminded == half
        and out["flood"]["late_by"] <= SLA_SECONDS
    )
    return 0 if ok else 1


def report(args: argparse.Namespace, out: dict[str, Any], half: int, remind_every: float) -> None:
    submit_s, seeded_s = out["seed"]
    flood = out["flood"]
    stages, reminded, early, running = out["final"]
    load = os.getloadavg()
    rows = [
        ("orders waiting", f"{args.orders} ({half} for the buyer, {args.orders - half} for stock)"),
        ("seeding", f"submitted in {submit_s:.0f}s, all waiting after {seeded_s:.0f}s "
                    f"({args.orders / seeded_s:.1f} orders/s)"),
        ("workflow cache", f"OMS_WORKFLOW_CACHE={args.cache}; the SDK's gauge at rest "
                           f"{out['cache']:.0f}, after the flood {flood['cache']:.0f}"),
        ("at rest: memory (RSS)", f"worker {out['rest_rss'][0]:.0f} MB, dev server {out['rest_rss'][1]:.0f} MB"),
        ("at rest: CPU", f"worker {out['rest_cpu'][0]:.1f} %, dev server {out['rest_cpu'][1]:.1f} % "
                         f"of a core over {args.rest:.0f}s"),
        ("on disk", f"temporal.db {out['disk'][0]:.0f} MB, oms.db {out['disk'][1]:.0f} MB"),
        ("worker restart", f"polling after {out['restart'][0]:.1f}s, first order answered "
                           f"(history replayed) after {out['restart'][1]:.1f}s, RSS {out['restart'][2]:.0f} MB"),
        ("reminder flood", f"{half} reminders due at once (every {remind_every:.0f}s): all recorded "
                           f"{flood['seconds']:.0f}s after the worker's start "
                           f"({half / flood['seconds']:.0f}/s), the last {flood['late_by']:.0f}s after "
                           f"coming due (SLA {SLA_SECONDS // 60} min)"),
        ("during the flood", f"worker CPU {flood['worker_cpu_s']:.0f}s, server CPU {flood['server_cpu_s']:.0f}s, "
                             f"worker peak RSS {flood['worker_peak_mb']:.0f} MB; slowest probe "
                             f"(visibility + database) {flood['probe_worst']:.2f}s"),
        ("after", f"stages {stages}; reminded {reminded} of {half} (before the flood: {early}); "
                  f"{running} of {args.orders} workflows running"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"load average at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} ({os.cpu_count()} cores)")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--cache", type=int, default=Settings().workflow_cache,
                        help="the worker's OMS_WORKFLOW_CACHE (default: the setting's default)")
    parser.add_argument("--rest", type=float, default=30.0, help="seconds measured at rest")
    parser.add_argument("--remind-every", type=float, default=None,
                        help="the confirmations' reminder interval, seconds (default: 0.12 s an order, ≥ 180)")
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--keep", action="store_true", help="keep the temporary OMS_HOME")
    args = parser.parse_args()
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
