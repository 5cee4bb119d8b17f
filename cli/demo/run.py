"""`python starter.py demo`: the whole system in one command, with nothing else running.

The demo starts the embedded Temporal dev server (or reuses one already
listening on TEMPORAL_ADDRESS) and a worker inside this process, migrates the
database, loads the sample reference data, and submits the sample orders with
a short-duration policy so that every path finishes in about a minute. Then it
plays the operator and the warehouse the way the CLI does (each action a Temporal
update that the workflow answers; restock through `RestockWorkflow`),
each step once the order is seen waiting for it in the database, and checks where every order
ends up and that the stock ledger still adds up.

Order ids get a short run suffix, so the demo can run again and again in the
same OMS_HOME (the dev server's history is kept there too)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
import uuid
from typing import Any

from cli.demo.orders import (
    demo_orders,
    demo_policy,
    ensure_search_attributes,
    load_sample_reference,
)
from cli.demo.play import Demo, DemoOrder, say
from commands.intake import submit_one
from models.documents import workflow_id_for
from models.settings import Policy, Settings
from privacy.search_keys import with_dev_search_key

# --------------------------------------------------------------------- run


async def run_demo(ctx: Any, keep: bool) -> int:
    """Start the embedded stack, run every sample path, print the outcome; 0 when all is as expected."""
    from commands.context import CliError
    from runtime.devserver import DevServer
    from runtime.temporal import ConfigRefused, preflight
    from runtime.worker import run_worker_until

    started_at = time.monotonic()
    try:
        await asyncio.to_thread(preflight, ctx.settings)
    except ConfigRefused as exc:
        raise CliError(f"demo not started: {exc}") from None
    if "OMS_LOG_LEVEL" not in os.environ:
        # The demo talks on stdout; the worker's own log would drown it.
        logging.getLogger().setLevel(logging.WARNING)
    run_id = uuid.uuid4().hex[:6]
    policy = demo_policy(ctx.settings.policy)
    settings = with_dev_search_key(ctx.settings.model_copy(update={"policy": policy}))
    # The console's port first, so that the Web UI's codec endpoint points where it listens.
    from service.server import listen

    listener = listen(settings, any_port_if_busy=True)
    settings = settings.model_copy(update={"http_address": listener.address})
    server = DevServer(settings)
    # Ctrl-C / SIGTERM end the demo the orderly way: worker, then the dev server we started.
    interrupted = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, interrupted.set)
    say(
        f"OMS demo run {run_id}: OMS_HOME={settings.home.resolve()}  Temporal at {settings.temporal_address}"
    )
    ours = await asyncio.to_thread(server.start)
    say(
        f"Temporal dev server {'started' if ours else 'already running: reused'}; Web UI {server.ui_url}"
    )
    stop_worker = asyncio.Event()
    worker_task: asyncio.Task[None] | None = None
    service: Any = None
    try:
        await asyncio.to_thread(load_sample_reference, ctx)  # migrates the database on first use
        say("database migrated; sample catalog, warehouses and stock loaded")
        from cli.demo.desk import attach as attach_desk
        from cli.demo.desk import load_desk_reference

        say(await asyncio.to_thread(load_desk_reference, ctx))
        if interrupted.is_set():
            return 130
        client = await ctx.client()
        if not ours and not await ensure_search_attributes(client, settings.temporal_namespace):
            policy = policy.model_copy(update={"search_attributes": False})
        worker_task = asyncio.create_task(run_worker_until(stop_worker, client, settings))
        await asyncio.sleep(0)
        service, clerk_key = await start_console(ctx, settings, client, run_id, listener)
        demo = Demo(ctx, settings, run_id, server.ui_url)
        attach_desk(demo, service.url)
        demo.keep = keep
        code = await _run_paths(demo, client, settings, policy, worker_task, interrupted)
        if code == 0 and not interrupted.is_set():  # issue 19: orders from the platforms
            from cli.demo.shops import run_shops

            shop_problems = await run_shops(ctx, settings, client, run_id)
            for problem in shop_problems:
                say(f"  - {problem}")
            code = 1 if shop_problems else 0
        say(f"demo took {time.monotonic() - started_at:.0f}s")
        if not keep or interrupted.is_set():
            say("\nthe demo's stack stops now: its console and Web UI close with it. To keep them "
                "running, with a morning's work waiting in the console: python starter.py demo --keep")
            return code
        from service.morning import leave_a_morning  # issue 21: work to do, on the normal policy

        waiting = await leave_a_morning(
            client, settings.model_copy(update={"policy": ctx.settings.policy}), run_id,
            ctx.factory)
        say("\na morning's work waits in the console, on the normal policy's timers: "
            + ", ".join(f"{n} for {kind}" for kind, n in waiting.items()))
        say(f"console: {service.url}   clerk key for this run: {clerk_key}")
        if not interrupted.is_set():
            say(f"\n--keep: the dev server, the worker and the console keep running; browse {server.ui_url}")
            say(f"sign in to the console at {service.url} with the clerk key above")
            say("try: python starter.py list   ·   python starter.py report   ·   Ctrl-C to stop")
            await _until_interrupted(worker_task, interrupted)
            say("stopping")
        return code
    finally:
        if service is not None:
            await service.stop()
        else:
            listener.sock.close()
        stop_worker.set()
        if worker_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(worker_task, timeout=30)
        if ours:
            await asyncio.to_thread(server.stop)


async def start_console(
    ctx: Any, settings: Settings, client: Any, run_id: str, listener: Any
) -> tuple[Any, str]:
    """The HTTP service and console beside the demo's worker, and a clerk key made for this run."""
    from service.keys import create_key
    from service.server import Beside

    with ctx.session() as session:
        key = create_key(session, name=f"demo-clerk-{run_id}", role="clerk")
    service = Beside(settings, dev=True, client=client, listener=listener)
    await service.start()
    say(f"console (HTTP API, clerk's console): {service.url}   clerk key: {key}")
    return service, key


async def _until_interrupted(worker_task: asyncio.Task[None], interrupted: asyncio.Event) -> None:
    waiter = asyncio.create_task(interrupted.wait())
    await asyncio.wait({waiter, worker_task}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()


async def _run_paths(
    demo: Demo,
    client: Any,
    settings: Settings,
    policy: Policy,
    worker_task: asyncio.Task[None],
    interrupted: asyncio.Event,
) -> int:
    orders = demo_orders(demo.run_id, policy)
    demo.orders = {o.order_id: o for o in orders}
    say(f"\nsubmitting {len(orders)} sample orders:")
    for order in orders:
        order_settings = settings.model_copy(update={"policy": order.policy})
        result = await submit_one(client, order_settings, order.doc)
        say(f"  {order.order_id:<30} {result:<9} path: {order.path}")
        if result != "started":
            order.problems.append(f"{order.order_id}: {result}")
    say("\nprogress (order → stage) and what the operator and the warehouse do:")
    stop_watch = asyncio.Event()
    watcher = asyncio.create_task(demo.watch(stop_watch))
    plays = asyncio.gather(*(demo.play(o) for o in orders if not o.problems))
    waiter = asyncio.create_task(interrupted.wait())
    try:
        done, _ = await asyncio.wait(
            {plays, worker_task, waiter}, return_when=asyncio.FIRST_COMPLETED
        )
        if worker_task in done and not plays.done():
            error = worker_task.exception() if not worker_task.cancelled() else None
            say(f"the worker stopped: {error!r}")
            for o in orders:
                o.problems.append(f"{o.order_id}: the worker stopped")
    finally:  # no script or watcher outlives the demo
        waiter.cancel()
        stop_watch.set()
        if not plays.done():
            plays.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await plays
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(watcher, timeout=5)  # prints the last stage changes
    if interrupted.is_set():
        say("\ninterrupted: stopping the worker and the dev server")
        return 130
    return await asyncio.to_thread(_final, demo, orders)


def _final(demo: Demo, orders: list[DemoOrder]) -> int:
    from inventory.audit import audit

    statuses = {o.order_id: demo.status(o.order_id) for o in orders}
    for order in orders:
        demo.verify(order, statuses[order.order_id])
    from cli.demo.desk import check_desk

    check_desk(demo, orders, statuses)
    say("\nfinal stages:")
    say(
        f"  {'order':<30} {'path':<15} {'expected':<10} {'stage':<10} {'shipments':>9}  {'refund':>8}  result"
    )
    for order in orders:
        s = statuses[order.order_id] or {}
        shipped = sum(1 for x in s.get("shipments", []) if x["status"] == "shipped")
        refund = (s.get("refund") or {}).get("amount") or "-"
        verdict = "ok" if not order.problems else "WRONG"
        say(
            f"  {order.order_id:<30} {order.path:<15} {order.expect:<10} {s.get('stage', '-'):<10} "
            f"{shipped:>9}  {refund:>8}  {verdict}"
        )
    with demo.ctx.session() as session:
        problems = audit(session)
    say(
        "\nledger audit: "
        + (
            "OK, every stock figure matches its movements"
            if not problems
            else f"{len(problems)} problem(s)"
        )
    )
    for p in problems:
        say(f"  MISMATCH {p}")
    report_dir = demo.settings.home / "report"
    try:
        from commands.report import write_report

        with demo.ctx.session() as session:
            path = write_report(session, report_dir, policy=demo.settings.policy)
        say(f"operations report: {path}")
    except Exception as exc:  # the report is a bonus here, never the demo's verdict
        say(f"operations report not written: {exc}")
    if demo.keep:  # without --keep the Web UI stops with the demo: no dead links
        say(f"\nTemporal Web UI: {demo.ui_url}")
        for order in orders:
            say(
                f"  {demo.ui_url}/namespaces/{demo.settings.temporal_namespace}/workflows/{workflow_id_for(order.order_id)}"
            )
    wrong = [p for o in orders for p in o.problems]
    if wrong or problems:
        say("\nDEMO FAILED:")
        for p in wrong:
            say(f"  - {p}")
        return 1
    say(f"\nall {len(orders)} sample orders are where they should be.")
    return 0
