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
same OMS_HOME (the dev server's history is kept there too).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from models.documents import OrderDocument, check_document, workflow_id_for
from models.settings import Policy, Settings
from ops.context import out
from ops.intake import submit_one

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample"
ORDER_FILES = ("orders.json", "demo-orders.json")
POLL = 0.3
STEP_TIMEOUT = 60.0


def demo_policy(policy: Policy) -> Policy:
    """The merchant's policy with every wait measured in seconds instead of hours."""
    s = timedelta(seconds=1)
    return policy.model_copy(
        update={
            "confirmation": policy.confirmation.model_copy(
                update={"remind_every": 20 * s, "timeout": 90 * s, "max_reminders": 2}
            ),
            "payment": policy.payment.model_copy(update={"unpaid_window": 90 * s}),
            "shortage": policy.shortage.model_copy(
                update={"backorder_deadline": 90 * s, "transfer_deadline": 90 * s}
            ),
            "approval": policy.approval.model_copy(update={"escalate_after": 60 * s}),
            "pick": policy.pick.model_copy(
                update={"remind_after": 30 * s, "escalate_after": 60 * s, "complete_on": "shipped"}
            ),
            # Repeated demo runs reuse the sample buyers: a short window keeps them
            # from looking like one buyer ordering again and again.
            "fraud": policy.fraud.model_copy(update={"window": 2 * 60 * s}),
        }
    )


def say(text: str = "") -> None:
    out(text)


class DemoFailure(Exception):
    """An order did not reach the stage the demo expected in time."""


@dataclass
class DemoOrder:
    """One sample order, the stage it must end in, and the script that plays its path."""

    base: str
    path: str
    expect: str
    doc: OrderDocument
    policy: Policy
    problems: list[str] = field(default_factory=list)

    @property
    def order_id(self) -> str:
        return self.doc.order_id


class Demo:
    def __init__(self, ctx: Any, settings: Settings, run_id: str, ui_url: str) -> None:
        self.ctx = ctx
        self.settings = settings
        self.run_id = run_id
        self.ui_url = ui_url
        self.orders: dict[str, DemoOrder] = {}
        self.keep = False  # --keep: the stack stays up, so its addresses are worth printing
        self._seen: dict[str, int] = {}
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------ database

    def status(self, order_id: str) -> dict[str, Any] | None:
        from activities.queries import order_status

        with self.ctx.session() as session:
            return order_status(session, order_id)

    async def wait_for(
        self,
        order: DemoOrder,
        what: str,
        check: Callable[[dict[str, Any]], bool],
        timeout: float = STEP_TIMEOUT,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            last = await asyncio.to_thread(self.status, order.order_id)
            if last is not None and check(last):
                return last
            if (
                last is not None
                and last["stage"] in ("cancelled", "completed")
                and order.expect != last["stage"]
            ):
                break
            await asyncio.sleep(POLL)
        stage = last["stage"] if last else "not recorded"
        raise DemoFailure(f"{order.order_id}: expected {what}, but it is {stage}")

    async def wait_stage(
        self, order: DemoOrder, *stages: str, timeout: float = STEP_TIMEOUT
    ) -> dict[str, Any]:
        """Until the order is in one of `stages`, or has been (another script may have helped it on)."""

        def reached(s: dict[str, Any]) -> bool:
            return s["stage"] in stages or any(
                e["type"] == "stage" and e.get("stage") in stages for e in s["events"]
            )

        return await self.wait_for(order, " or ".join(stages), reached, timeout)

    # ------------------------------------------------------------- acting

    async def note(self, text: str) -> None:
        """An action line, after the stage changes that led to it."""
        async with self._lock:
            for line in await asyncio.to_thread(self.progress_lines):
                say(line)
            say(f"  ▸ {text}")

    async def act(self, order: DemoOrder, action: str, body: dict[str, Any], why: str) -> None:
        """What the CLI does: the action as a Temporal update, answered by the workflow itself."""
        from ops.actions import act

        await self.note(why)
        answer = await act(await self.ctx.client(), order.order_id, action, body, by="demo-operator")
        if not answer.accepted:
            raise DemoFailure(f"{action} refused for {order.order_id}: {answer.reason}")

    async def ship(
        self, order: DemoOrder, shipment: int | None = None, *, picked: bool = False
    ) -> None:
        """The warehouse picks (unless it already did), packs and ships one shipment."""
        label = f" shipment {shipment}" if shipment else ""
        which = {"shipment": shipment} if shipment else {}
        if not picked:
            await self.act(order, "picked", which, f"warehouse: {order.order_id}{label} picked")
        await self.act(
            order,
            "packed",
            {**which, "parcels": 1, "weight_g": 800},
            f"warehouse: {order.order_id}{label} packed",
        )
        tracking = f"SF{uuid.uuid4().int % 10**12:012d}"
        await self.act(
            order,
            "shipped",
            {**which, "carrier": "SF", "tracking": tracking},
            f"warehouse: {order.order_id}{label} shipped with SF {tracking}",
        )

    async def restock_for(self, order: DemoOrder) -> None:
        """Restock what the order waits for, plus what older orders queue for ahead of it (FIFO)."""
        from sqlalchemy import select

        from models.payloads import RestockInput, RestockResult
        from models.tables import Backorder
        from workflows.restock import RestockWorkflow

        def needs() -> dict[tuple[str, str], int]:
            with self.ctx.session() as session:
                waiting = (
                    session.execute(select(Backorder).where(Backorder.status == "waiting"))
                    .scalars()
                    .all()
                )
            mine = [b for b in waiting if b.order_id == order.order_id]
            wanted: dict[tuple[str, str], int] = {}
            for entry in mine:
                key = (entry.sku, entry.warehouse)
                ahead = [
                    b
                    for b in waiting
                    if (b.sku, b.warehouse) == key
                    and (b.order_time, b.id or 0) <= (entry.order_time, entry.id or 0)
                ]
                wanted[key] = max(
                    wanted.get(key, 0), sum(b.qty_wanted - b.qty_filled for b in ahead)
                )
            return wanted

        client = await self.ctx.client()
        for (sku, warehouse), qty in (await asyncio.to_thread(needs)).items():
            if qty <= 0:
                continue
            await self.note(
                f"operator: restock {qty} x {sku} at {warehouse} (for {order.order_id})"
            )
            op = f"restock-{uuid.uuid4().hex[:12]}"
            result: RestockResult = await client.execute_workflow(
                RestockWorkflow.run,
                RestockInput(sku=sku, warehouse=warehouse, qty=qty, op_key=op),
                id=op,
                task_queue=self.settings.task_queue,
            )
            if result.error:
                raise DemoFailure(f"restock of {sku} refused: {result.error}")
            for item in result.served:
                say(
                    f"      first come first served: {item['order_id']} line {item['line_no']} gets {item['qty']}"
                )

    # ------------------------------------------------------------ scripts

    async def play(self, order: DemoOrder) -> None:
        script: Callable[[DemoOrder], Awaitable[None]] = getattr(self, f"path_{order.path}")
        try:
            await script(order)
        except DemoFailure as exc:
            order.problems.append(str(exc))
        except Exception as exc:  # reported per order; the other paths go on
            order.problems.append(f"{order.order_id}: {type(exc).__name__}: {exc}")

    async def path_clean(self, o: DemoOrder) -> None:
        await self.wait_stage(o, "released")
        await self.ship(o)
        await self.wait_stage(o, "completed")

    async def path_buyer(self, o: DemoOrder) -> None:
        await self.wait_stage(o, "awaiting_buyer")
        await self.act(
            o,
            "confirm",
            {
                "detail": "世纪大道100号2幢301室",
                "parcel_locker": True,
                "channel": "phone",
                "note": "电话联系买家: 门牌号 100号2幢301室, 请放快递柜",
            },
            f"operator: {o.order_id} buyer confirmed the door number by phone, wants a parcel locker",
        )
        await self.wait_stage(o, "released")
        await self.ship(o)
        await self.wait_stage(o, "completed")

    async def path_unpaid(self, o: DemoOrder) -> None:
        await self.wait_stage(o, "awaiting_payment")
        amount = str(o.doc.total)
        await self.act(
            o,
            "pay",
            {"amount": amount, "txn": f"PAY-{o.order_id}"},
            f"platform: {o.order_id} paid {amount}",
        )
        await self.wait_stage(o, "released")
        await self.ship(o)
        await self.wait_stage(o, "completed")

    async def path_shortage(self, o: DemoOrder) -> None:
        await self.wait_stage(o, "backordered")
        await self.restock_for(o)
        await self.wait_stage(o, "released")
        await self.ship(o)
        await self.wait_stage(o, "completed")

    async def path_approval(self, o: DemoOrder) -> None:
        await self.wait_stage(o, "awaiting_approval")
        await self.act(
            o,
            "approve",
            {"note": "高价值订单: 买家历史正常, 放行"},
            f"operator: {o.order_id} approved (high value)",
        )
        await self.wait_stage(o, "released")
        await self.ship(o)
        await self.wait_stage(o, "completed")

    async def path_cancel(self, o: DemoOrder) -> None:
        await self.wait_stage(o, "released")
        await self.act(
            o,
            "cancel",
            {"reason": "买家申请取消 (buyer changed their mind)"},
            f"operator: {o.order_id} cancelled at the buyer's request",
        )
        await self.wait_for(
            o, "cancelled with a refund", lambda s: s["stage"] == "cancelled" and bool(s["refund"])
        )

    async def path_transfer(self, o: DemoOrder) -> None:
        status = await self.wait_stage(o, "awaiting_transfer")
        for t in status["transfers"]:
            if t["status"] == "in_transit":
                await self.act(
                    o,
                    "transfer-arrived",
                    {"transfer_id": t["id"]},
                    f"warehouse: transfer {t['id']} ({t['sku']} x{t['qty']} {t['from']} → {t['to']}) arrived",
                )
        await self.wait_stage(o, "released")
        await self.ship(o)
        await self.wait_stage(o, "completed")

    async def path_partial(self, o: DemoOrder) -> None:
        # Ship what is there now; the rest arrives while the warehouse works on parcel 1.
        await self.wait_stage(o, "released")
        await self.act(
            o, "picked", {"shipment": 1}, f"warehouse: {o.order_id} shipment 1 picked"
        )
        await self.restock_for(o)
        await self.ship(o, 1, picked=True)
        await self.wait_for(
            o,
            "the backordered rest released as shipment 2",
            lambda s: any(
                x["shipment_no"] == 2 and x["status"] == "released" for x in s["shipments"]
            ),
        )
        await self.ship(o, 2)
        await self.wait_stage(o, "completed")

    async def path_pick_exception(self, o: DemoOrder) -> None:
        await self.wait_stage(o, "released")
        sku = o.doc.lines[0].sku
        # The warehouse is late: the pick SLA (a few seconds for this order) flags it.
        await self.wait_for(o, "flag pick_overdue", lambda s: "pick_overdue" in s["flags"])
        await self.act(
            o,
            "pick-exception",
            {"sku": sku, "qty": 1, "reason": "damaged"},
            f"warehouse: {o.order_id} found 1 x {sku} damaged while picking",
        )
        await self.wait_for(
            o,
            "a replacement released as shipment 2",
            lambda s: any(
                x["shipment_no"] == 2 and x["status"] == "released" for x in s["shipments"]
            ),
        )
        await self.ship(o, 1)
        await self.ship(o, 2)
        await self.wait_stage(o, "completed")

    # ------------------------------------------------------------ checks

    def verify(self, order: DemoOrder, status: dict[str, Any] | None) -> None:
        """Beyond the stage: every unit accounted for, and the path left its traces."""
        if status is None:
            order.problems.append(f"{order.order_id}: not in the database")
            return
        if status["stage"] != order.expect:
            if not order.problems:
                order.problems.append(
                    f"{order.order_id}: ended {status['stage']}, expected {order.expect}"
                )
            return
        for line in status["lines"]:
            accounted = line["reserved"] + line["shipped"] + line["backordered"] + line["cancelled"]
            if accounted != line["qty"]:
                order.problems.append(
                    f"{order.order_id} line {line['line_no']}: {accounted} of {line['qty']} accounted"
                )
            if order.expect == "completed" and line["shipped"] != line["qty"]:
                order.problems.append(
                    f"{order.order_id} line {line['line_no']}: shipped {line['shipped']} of {line['qty']}"
                )
        shipped = [s for s in status["shipments"] if s["status"] == "shipped"]
        wanted_shipments = {"partial": 2, "pick_exception": 2}.get(
            order.path, 1 if order.expect == "completed" else 0
        )
        if len(shipped) != wanted_shipments:
            order.problems.append(
                f"{order.order_id}: {len(shipped)} shipment(s) shipped, expected {wanted_shipments}"
            )
        if order.path == "cancel" and not status["refund"]:
            order.problems.append(f"{order.order_id}: cancelled without a refund")
        if order.path == "transfer" and not any(
            t["status"] == "arrived" for t in status["transfers"]
        ):
            order.problems.append(f"{order.order_id}: no transfer arrived")
        if order.path == "buyer" and "快递柜" not in (status["remarks"] or ""):
            order.problems.append(
                f"{order.order_id}: the parcel-locker request is not in the remarks"
            )

    # ----------------------------------------------------------- progress

    def progress_lines(self) -> list[str]:
        from sqlalchemy import select

        from models.tables import TimelineEntry

        lines = []
        ids = list(self.orders)
        with self.ctx.session() as session:
            rows = (
                session.execute(
                    select(TimelineEntry)
                    .where(TimelineEntry.order_id.in_(ids), TimelineEntry.type == "stage")  # type: ignore[attr-defined]
                    .order_by(TimelineEntry.at, TimelineEntry.order_id, TimelineEntry.seq)
                )
                .scalars()
                .all()
            )
        for row in rows:
            if row.seq <= self._seen.get(row.order_id, 0):
                continue
            self._seen[row.order_id] = row.seq
            data = row.data or {}
            waits = f"  (waiting for {data['waiting_for']})" if data.get("waiting_for") else ""
            lines.append(f"  {row.order_id:<30} → {data.get('stage')}{waits}")
        return lines

    async def watch(self, stop: asyncio.Event) -> None:
        while True:
            async with self._lock:
                for line in await asyncio.to_thread(self.progress_lines):
                    say(line)
            if stop.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.5)


# ------------------------------------------------------------------ orders

PATHS = {
    "DEMO-CLEAN-1": ("clean", "completed"),
    "DEMO-BUYER-2": ("buyer", "completed"),
    "DEMO-UNPAID-3": ("unpaid", "completed"),
    "DEMO-SHORT-4": ("shortage", "completed"),
    "DEMO-APPROVE-5": ("approval", "completed"),
    "DEMO-CANCEL-6": ("cancel", "cancelled"),
    "DEMO-TRANSFER-7": ("transfer", "completed"),
    "DEMO-PARTIAL-8": ("partial", "completed"),
    "DEMO-PICKEX-9": ("pick_exception", "completed"),
}


def demo_orders(run_id: str, policy: Policy) -> list[DemoOrder]:
    """The sample orders, renamed for this run and dated now (oldest first, as in the files)."""
    raw: list[dict[str, Any]] = []
    for name in ORDER_FILES:
        raw.extend(json.loads((SAMPLE_DIR / name).read_text(encoding="utf-8")))
    now = datetime.now(UTC)
    orders = []
    for index, item in enumerate(raw):
        base = item["order_id"]
        if base not in PATHS:
            continue
        item = {
            **item,
            "order_id": f"{base}-{run_id}",
            "created_at": (now - timedelta(seconds=len(raw) - index)).isoformat(),
        }
        checked = check_document(item, now=now)  # the intake check of `submit` and the API
        doc = checked.document
        if doc is None:
            raise SystemExit(f"sample order {base} is malformed: {'; '.join(checked.messages())}")
        path, expect = PATHS[base]
        order_policy = policy
        if path == "transfer":
            # One parcel per order: the missing lamp is moved to the buyer's warehouse.
            order_policy = policy.model_copy(
                update={"shortage": policy.shortage.model_copy(update={"split_allowed": False})}
            )
        elif path == "pick_exception":
            order_policy = policy.model_copy(
                update={
                    "pick": policy.pick.model_copy(update={"remind_after": timedelta(seconds=2)})
                }
            )
        orders.append(DemoOrder(base=base, path=path, expect=expect, doc=doc, policy=order_policy))
    return orders


def load_sample_reference(ctx: Any) -> None:
    """Catalog, warehouses and stock from sample/ (upserts; stock never below what is reserved)."""
    from activities.queries import load_reference
    from models.tables import StockLevel

    with ctx.session() as session:
        for kind, name in (("catalog", "catalog.json"), ("warehouses", "warehouses.json")):
            _, errors = load_reference(
                session, kind, json.loads((SAMPLE_DIR / name).read_text(encoding="utf-8"))
            )
            if errors:
                raise SystemExit(f"sample/{name}: {'; '.join(errors)}")
        stock = []
        for item in json.loads((SAMPLE_DIR / "stock.json").read_text(encoding="utf-8")):
            level = session.get(StockLevel, (item["sku"], item["warehouse"]))
            reserved = level.reserved if level else 0
            stock.append({**item, "on_hand": max(item["on_hand"], reserved)})
        _, errors = load_reference(session, "stock", stock)
        if errors:
            raise SystemExit(f"sample/stock.json: {'; '.join(errors)}")


async def ensure_search_attributes(client: Any, namespace: str) -> bool:
    """On a server we did not start, register the order search attributes if they are missing."""
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import (
        AddSearchAttributesRequest,
        ListSearchAttributesRequest,
    )

    from activities.runtime import SEARCH_ATTRIBUTE_TYPES

    kinds = {
        "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        "KeywordList": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
        "Double": IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
    }
    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        missing = {
            k: kinds[v]
            for k, v in SEARCH_ATTRIBUTE_TYPES.items()
            if k not in listed.custom_attributes
        }
        if missing:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
            )
        return True
    except Exception:  # e.g. a cloud namespace without operator rights: run without them
        return False


# --------------------------------------------------------------------- run


async def run_demo(ctx: Any, keep: bool) -> int:
    """Start the embedded stack, run every sample path, print the outcome; 0 when all is as expected."""
    from activities.runtime import ConfigRefused, DevServer, preflight, run_worker_until
    from ops.context import CliError

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
    settings = ctx.settings.model_copy(update={"policy": policy})
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
        if interrupted.is_set():
            return 130
        client = await ctx.client()
        if not ours and not await ensure_search_attributes(client, settings.temporal_namespace):
            policy = policy.model_copy(update={"search_attributes": False})
        worker_task = asyncio.create_task(run_worker_until(stop_worker, client, settings))
        await asyncio.sleep(0)
        service, clerk_key = await start_console(ctx, settings, client, run_id, listener)
        demo = Demo(ctx, settings, run_id, server.ui_url)
        demo.keep = keep
        code = await _run_paths(demo, client, settings, policy, worker_task, interrupted)
        say(f"demo took {time.monotonic() - started_at:.0f}s")
        if not keep or interrupted.is_set():
            say("\nthe demo's stack stops now: its console and Web UI close with it. To keep them "
                "running, with a morning's work waiting in the console: python starter.py demo --keep")
            return code
        from service.morning import leave_a_morning  # issue 21: work to do, on the normal policy

        waiting = await leave_a_morning(
            client, settings.model_copy(update={"policy": ctx.settings.policy}), run_id)
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
    from activities.ledger import audit

    statuses = {o.order_id: demo.status(o.order_id) for o in orders}
    for order in orders:
        demo.verify(order, statuses[order.order_id])
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
        from ops.report import write_report

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
