"""The embedded dev server's SQLite pragmas: a bare workflow and real orders, side by side.

For each set of pragmas (`--modes`), on a fresh dev server started by `DevServer` exactly as
`worker.py --dev` and the demo start it (its own temporary OMS_HOME and database file, free
ports, the Web UI on), in this order:

1. bare: N workflows of three no-op local activities, started at once (at most 64 start
   calls in flight), their worker in a process of its own (plain converter, no codec):
   what the engine does with no business work;
2. orders: N clean, paid, in-stock sample orders through the real `OrderWorkflow` and the
   real `python worker.py` (codec on, as deployed), submitted at once; measured from the
   first submit to the last order `released` (the release's timeline entry), which is where
   the order waits for the warehouse.

Prints one row per mode: bare workflows/s, orders/s submit→released, their ratio (target
≥ 0.9), p50/p95 submit→released, CPU per order of the worker and of the dev server.
Exits 1 when the ratio for the pragmas `DEV_SERVER_PRAGMAS` (the embedded default; the
mean over the rounds) is below the target.

    .venv/bin/python benchmarks/embedded.py [--orders 200] [--modes default,tuned,sync-off]
        [--rounds 1] [--phases bare,orders] [--profile DIR]
    # default: SQLite's own pragmas (rollback journal, synchronous=full): the server before
    # tuning; tuned: DEV_SERVER_PRAGMAS (WAL, synchronous=normal); sync-off: WAL,
    # synchronous=off (not durable against power loss: comparison only); wal-full: WAL,
    # synchronous=full (OMS_DEV_SERVER_SYNCHRONOUS=full: every commit synced).
    # --rounds 2 runs the modes twice, alternating, so that load on the box hits them alike.

Reuses benchmarks/throughput.py's orders, reference data and helpers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio import activity, workflow

if not workflow.unsafe.in_sandbox():
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

with workflow.unsafe.imports_passed_through():
    import throughput
    from pydantic import SecretStr
    from sqlalchemy import func, select
    from temporalio.client import Client
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.worker import Worker

    from models.db import make_engine, migrate, session_factory, transaction
    from models.documents import workflow_id_for
    from models.payloads import OrderInput
    from models.settings import Settings
    from models.tables import Order, Shipment, to_utc
    from runtime.devserver import DEV_SERVER_PRAGMAS, DevServer, free_dev_server_port
    from runtime.logs import configure_logging
    from runtime.temporal import connect
    from workflows.order import OrderWorkflow

TARGET_RATIO = 0.9
TARGET_RATE = 15.0  # orders/s submit→released on the embedded default (issue 13), quiet box

MODES: dict[str, dict[str, str]] = {
    "default": {},
    "tuned": dict(DEV_SERVER_PRAGMAS),
    "sync-off": {**DEV_SERVER_PRAGMAS, "synchronous": "off"},
    "wal-full": {**DEV_SERVER_PRAGMAS, "synchronous": "full"},
}


# ------------------------------------------------------------------ bare


@activity.defn(name="bench_la_noop")
async def la_noop(step: int) -> int:
    return step


@workflow.defn(name="BenchThreeLocal")
class ThreeLocalWorkflow:
    """Three no-op local activities in a row: the engine's own cost of a clean order's steps."""

    @workflow.run
    async def run(self) -> int:
        total = 0
        for step in range(3):
            total += await workflow.execute_local_activity(
                la_noop, step, start_to_close_timeout=timedelta(seconds=30)
            )
        return total


async def serve_bare(target: str, task_queue: str) -> None:
    client = await Client.connect(target, data_converter=pydantic_data_converter)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with Worker(
        client, task_queue=task_queue, workflows=[ThreeLocalWorkflow], activities=[la_noop]
    ):
        await stop.wait()


async def run_bare(client: Client, target: str, count: int, home: Path) -> dict[str, Any]:
    task_queue = f"bare-{uuid.uuid4().hex[:8]}"
    with open(home / "bare-worker.log", "ab") as log:
        worker = subprocess.Popen(
            [sys.executable, __file__, "--serve-bare", target, task_queue],
            env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        await throughput.wait_for_pollers(client, task_queue, 1)
        cpu = throughput._cpu_seconds([worker.pid])
        semaphore = asyncio.Semaphore(throughput.START_CONCURRENCY)

        async def one(n: int) -> float:
            async with semaphore:
                handle = await client.start_workflow(
                    ThreeLocalWorkflow.run, id=f"{task_queue}-{n}", task_queue=task_queue
                )
            await handle.result()
            return time.monotonic()

        started = time.monotonic()
        finished = await asyncio.gather(*(one(n) for n in range(count)))
        elapsed = max(finished) - started
        cpu = throughput._cpu_seconds([worker.pid]) - cpu
        return {"per_second": count / elapsed, "worker_cpu_ms": cpu * 1000 / count}
    finally:
        worker.terminate()
        worker.wait(timeout=15)


# ---------------------------------------------------------------- orders


def released_times(factory: Any) -> tuple[int, list[float], float | None]:
    """(orders released, submit→released seconds each, first submit → last release).

    Released: the pick list written (`Shipment.released_at`, the release transaction's own
    clock), which is when the warehouse can see the order.
    """
    with transaction(factory) as session:
        submitted = dict(session.execute(select(Order.order_id, Order.submitted_at)).all())
        released = session.execute(
            select(Shipment.order_id, func.min(Shipment.released_at)).group_by(Shipment.order_id)
        ).all()
    if not released:
        return 0, [], None
    latencies = [(to_utc(at) - to_utc(submitted[oid])).total_seconds() for oid, at in released]
    first = min(to_utc(t) for t in submitted.values())
    span = (max(to_utc(at) for _, at in released) - first).total_seconds()
    return len(released), latencies, span


def start_worker(
    settings: Settings,
    codec_keys: str,
    extra: dict[str, str] | None = None,
    *,
    profile: Path | None = None,
) -> subprocess.Popen[bytes]:
    """`python worker.py` (as deployed) for this installation, in a process of its own, its
    output in OMS_HOME/worker.log; `profile`: under cProfile, all threads (`serve_oms_profiled`)."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OMS_", "TEMPORAL_"))},
        "TEMPORAL_ADDRESS": settings.temporal_address,
        "OMS_HOME": str(settings.home),
        "OMS_DATABASE_URL": settings.db_url,
        "OMS_TASK_QUEUE": settings.task_queue,
        "OMS_LOG_LEVEL": "WARNING",
        "OMS_LOG_FORMAT": "json",
        "OMS_CODEC_KEYS": codec_keys,
        "OMS_SDK_METRICS_ADDRESS": "",
        **(extra or {}),
    }
    root = Path(__file__).resolve().parent.parent
    command = [sys.executable, str(root / "worker.py")]
    if profile:
        command = [sys.executable, __file__, "--serve-oms-profiled", str(profile)]
    # Its log (the SDK's warnings too, e.g. workflow tasks slowed by a burst) in OMS_HOME.
    with open(settings.home / "worker.log", "ab") as log:
        return subprocess.Popen(
            command, env=env, cwd=settings.home, stdout=log, stderr=subprocess.STDOUT
        )


async def submit_all(client: Client, settings: Settings, docs: list[Any]) -> float:
    """Start an order workflow for each document, at most 64 start calls in flight; seconds."""
    policy = settings.order_policy()
    semaphore = asyncio.Semaphore(throughput.START_CONCURRENCY)

    async def one(doc: Any) -> None:
        async with semaphore:
            await client.start_workflow(
                OrderWorkflow.run,
                OrderInput(order=doc, policy=policy, submitted_at=datetime.now(UTC)),
                id=workflow_id_for(doc.order_id),
                task_queue=settings.task_queue,
            )

    started = time.monotonic()
    await asyncio.gather(*(one(d) for d in docs))
    return time.monotonic() - started


async def run_orders(
    settings: Settings, codec_keys: str, count: int, timeout: float, profile: Path | None = None
) -> dict[str, Any]:
    db_url = settings.db_url
    migrate(db_url)
    engine = make_engine(db_url)
    factory = session_factory(engine)
    throughput.load_reference_data(factory, count)
    worker = start_worker(settings, codec_keys, profile=profile)
    try:
        client = await connect(settings)
        await throughput.wait_for_pollers(client, settings.task_queue, 1)
        cpu = throughput._cpu_seconds([worker.pid])
        await submit_all(client, settings, [throughput.order(n, "EMB") for n in range(count)])
        deadline = time.monotonic() + timeout
        while True:
            done, latencies, span = await asyncio.to_thread(released_times, factory)
            if done >= count:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"only {done} of {count} orders released within {timeout:.0f}s")
            await asyncio.sleep(0.2)
        cpu = throughput._cpu_seconds([worker.pid]) - cpu
        assert span is not None
        return {
            "per_second": count / span,
            "p50": throughput.percentile(latencies, 0.5),
            "p95": throughput.percentile(latencies, 0.95),
            "worker_cpu_ms": cpu * 1000 / count,
        }
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
        engine.dispose()


# ------------------------------------------------------------------ run


def installation(name: str, codec_keys: str, **values: Any) -> Settings:
    """Settings of a fresh embedded installation: a temporary OMS_HOME with its SQLite
    database, a free port for its dev server, a task queue of its own."""
    home = Path(tempfile.mkdtemp(prefix=f"oms-{name}-"))
    return Settings(
        home=home,
        database_url=f"sqlite:///{home / 'oms.db'}",
        temporal_address=f"127.0.0.1:{free_dev_server_port()}",
        task_queue=f"{name}-{uuid.uuid4().hex[:8]}",
        log_level="WARNING",
        codec_keys=SecretStr(codec_keys),
        sdk_metrics_address="",
        **values,
    )


async def run_mode(args: argparse.Namespace, mode: str, codec_keys: str) -> dict[str, Any]:
    settings = installation(f"embedded-{mode}", codec_keys)
    home = settings.home
    server = DevServer(settings, pragmas=MODES[mode])
    await asyncio.to_thread(server.start)
    assert server.process is not None
    result: dict[str, Any] = {"mode": mode}
    try:
        plain = await Client.connect(
            settings.temporal_address, data_converter=pydantic_data_converter
        )
        server_cpu = throughput._cpu_seconds([server.process.pid])
        if "bare" in args.phases:
            result["bare"] = await run_bare(plain, settings.temporal_address, args.orders, home)
            now = throughput._cpu_seconds([server.process.pid])
            result["bare"]["server_cpu_ms"] = (now - server_cpu) * 1000 / args.orders
            server_cpu = now
        if "orders" in args.phases:
            profile = Path(args.profile) / f"worker-{mode}.pstats" if args.profile else None
            result["orders"] = await run_orders(
                settings, codec_keys, args.orders, args.timeout, profile
            )
            now = throughput._cpu_seconds([server.process.pid])
            result["orders"]["server_cpu_ms"] = (now - server_cpu) * 1000 / args.orders
    finally:
        await asyncio.to_thread(server.stop)
        shutil.rmtree(home, ignore_errors=True)
    return result


def table(rows: list[dict[str, Any]]) -> str:
    nan = float("nan")
    head = (
        f"{'pragmas':<10} {'bare 3-LA/s':>11} {'orders/s':>9} {'ratio':>6} "
        f"{'p50 s':>6} {'p95 s':>6} {'worker ms/order':>16} {'server ms/order':>16}"
    )
    lines = [head, "-" * len(head)]
    for row in rows:
        bare, orders = row.get("bare", {}), row.get("orders", {})
        b, o = bare.get("per_second", nan), orders.get("per_second", nan)
        lines.append(
            f"{row['mode']:<10} {b:>11.1f} {o:>9.1f} {o / b:>6.2f} "
            f"{orders.get('p50', nan):>6.1f} {orders.get('p95', nan):>6.1f} "
            f"{bare.get('worker_cpu_ms', nan):>7.0f} / {orders.get('worker_cpu_ms', nan):<6.0f} "
            f"{bare.get('server_cpu_ms', nan):>7.0f} / {orders.get('server_cpu_ms', nan):<6.0f}"
        )
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    from runtime.codec import new_key

    configure_logging(Settings(log_level="WARNING"))
    codec_keys = new_key().text()
    rows = []
    for round_no in range(args.rounds):
        modes = args.modes if round_no % 2 == 0 else list(reversed(args.modes))
        for mode in modes:
            rows.append(await run_mode(args, mode, codec_keys))
            print(f"  done: {mode} (round {round_no + 1})", file=sys.stderr, flush=True)
    load = os.getloadavg()
    print(
        f"{args.orders} at once per phase; pragmas: "
        + "; ".join(f"{m} = {MODES[m] or 'SQLite defaults'}" for m in args.modes)
    )
    print(f"load average at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} ({os.cpu_count()} cores)")
    print(table(rows))
    print(
        "(worker / server ms/order: CPU per workflow of the worker process and of the dev "
        "server, bare / orders)"
    )
    gate = [r for r in rows if MODES[r["mode"]] == DEV_SERVER_PRAGMAS and "bare" in r and "orders" in r]
    if not gate:
        return 0
    # Over the rounds: the mean of each phase's rate, then their ratio.
    orders = sum(r["orders"]["per_second"] for r in gate) / len(gate)
    bare = sum(r["bare"]["per_second"] for r in gate) / len(gate)
    print(
        f"embedded default ({gate[0]['mode']}, mean of {len(gate)} round(s)): ratio "
        f"{orders / bare:.2f} (target ≥ {TARGET_RATIO}), {orders:.1f} orders/s submit→released "
        f"(target ≥ {TARGET_RATE} on a quiet box)"
    )
    defaults = [r for r in rows if not MODES[r["mode"]] and "orders" in r]
    if defaults:
        before = sum(r["orders"]["per_second"] for r in defaults) / len(defaults)
        print(f"orders/s with the tuned pragmas vs SQLite's defaults: {orders / before:.2f}x")
    return 0 if orders / bare >= TARGET_RATIO else 1


def serve_oms_profiled(out: str) -> None:
    """`worker.py` with every thread under cProfile, timed in each thread's CPU time (the
    workflow tasks and the activities run in thread pools, and wall time there is mostly
    queueing); the merged figures go to `out` when the worker stops."""
    import cProfile
    import threading

    import worker

    profiles: list[cProfile.Profile] = []
    original = threading.Thread.run

    def profiled_run(self: threading.Thread) -> None:
        profile = cProfile.Profile(time.thread_time)  # CPU, not the waits
        profiles.append(profile)
        profile.runcall(original, self)

    threading.Thread.run = profiled_run  # type: ignore[method-assign]
    main_profile = cProfile.Profile(time.thread_time)
    try:
        main_profile.runcall(worker.main, [])
    finally:
        import pstats

        stats = pstats.Stats(main_profile)
        for profile in profiles:
            profile.create_stats()
            stats.add(profile)
        stats.dump_stats(out)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve-bare":
        asyncio.run(serve_bare(sys.argv[2], sys.argv[3]))
        return
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-oms-profiled":
        serve_oms_profiled(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200, help="workflows per phase (default 200)")
    parser.add_argument(
        "--modes",
        type=lambda text: [m.strip() for m in text.split(",") if m.strip()],
        default=list(MODES),
        help=f"comma-separated, of {', '.join(MODES)} (default: all three)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="run the modes this many times")
    parser.add_argument(
        "--phases",
        type=lambda text: {p.strip() for p in text.split(",")},
        default={"bare", "orders"},
        help="bare,orders (default both)",
    )
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument(
        "--profile", metavar="DIR",
        help="run the orders' worker under cProfile (all threads); DIR/worker-MODE.pstats",
    )
    args = parser.parse_args()
    unknown = [m for m in args.modes if m not in MODES]
    if unknown:
        parser.error(f"--modes: unknown {unknown}; choose from {list(MODES)}")
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
