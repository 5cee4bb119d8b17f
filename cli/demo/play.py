"""The demo's operator and warehouse: each sample order played down its path, the way the CLI
acts (each action a Temporal update the workflow answers), each step once the order is seen
waiting for it, and where every order ends checked."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from commands.context import out
from models.documents import OrderDocument
from models.enums import Action
from models.errors import OmsError
from models.settings import Policy, Settings

POLL = 0.3
STEP_TIMEOUT = 60.0


def say(text: str = "") -> None:
    out(text)


class DemoFailure(OmsError):
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
        self.service_url: str | None = None  # the HTTP service beside the demo
        self.desk: Any = None  # cli.demo.desk.DeskRun: what the shipping desk did
        # Scripts of paths kept in their own modules (cli.demo.desk.attach adds "merge").
        self.paths: dict[str, Callable[[Demo, DemoOrder], Awaitable[None]]] = {}
        # How the warehouse ships when the desk issued a waybill (True: shipped).
        self.ship_under_waybill: (
            Callable[[Demo, DemoOrder, int | None], Awaitable[bool]] | None
        ) = None

    # ------------------------------------------------------------ database

    def status(self, order_id: str) -> dict[str, Any] | None:
        from reads.queries import order_status

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

    async def act(self, order: DemoOrder, action: Action, body: dict[str, Any], why: str) -> None:
        """What the CLI does: the action as a Temporal update, answered by the workflow itself."""
        from commands.actions import act

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
            await self.act(order, Action.PICKED, which, f"warehouse: {order.order_id}{label} picked")
        await self.act(
            order,
            Action.PACKED,
            {**which, "parcels": 1, "weight_g": 800},
            f"warehouse: {order.order_id}{label} packed",
        )
        if self.ship_under_waybill is not None and await self.ship_under_waybill(
            self, order, shipment
        ):
            return
        tracking = f"SF{uuid.uuid4().int % 10**12:012d}"
        await self.act(
            order,
            Action.SHIPPED,
            {**which, "carrier": "SF", "tracking": tracking},
            f"warehouse: {order.order_id}{label} shipped with SF {tracking}",
        )

    async def restock_for(self, order: DemoOrder) -> None:
        """Restock what the order waits for, plus what older orders queue for ahead of it (FIFO)."""
        from sqlalchemy import select

        from commands.actions import BadBody, restock
        from models.tables import Backorder

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
            try:
                served = await restock(client, self.ctx.factory, self.settings, sku, qty, warehouse)
            except BadBody as exc:
                raise DemoFailure(f"restock of {sku} refused: {exc}") from exc
            for item in served:
                say(
                    f"      first come first served: {item['order_id']} line {item['line_no']} gets {item['qty']}"
                )

    # ------------------------------------------------------------ scripts

    async def play(self, order: DemoOrder) -> None:
        try:
            if order.path in self.paths:
                await self.paths[order.path](self, order)
            else:
                script: Callable[[DemoOrder], Awaitable[None]] = getattr(self, f"path_{order.path}")
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
            Action.CONFIRM,
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
            Action.PAY,
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
            Action.APPROVE,
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
            Action.CANCEL,
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
                    Action.TRANSFER_ARRIVED,
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
            o, Action.PICKED, {"shipment": 1}, f"warehouse: {o.order_id} shipment 1 picked"
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
            Action.PICK_EXCEPTION,
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


