"""A harness for end-to-end order runs on the real dev server.

`Flow` is one test's world: its own database (sample reference data loaded
through `reads.queries.load_reference`), a real worker built by
`runtime.worker.build_worker` on a uuid task queue, and helpers that act
the way an operator or a warehouse would (signals, restock) and read what a
clerk would read (`status --json`, the stock ledger, the outbox).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
from sqlmodel import select
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.worker import Replayer

from inventory.audit import audit
from models.db import SessionFactory, make_engine, migrate, session_factory, transaction
from models.documents import OrderDocument, workflow_id_for
from models.payloads import OrderInput, OrderOutcome, OrderSnapshot, RestockInput, RestockResult
from models.settings import Policy, Settings
from models.tables import Backorder, Refund, Reservation, Transfer
from outbox.store import list_events
from reads.queries import order_status, stock_rows
from runtime.worker import build_worker
from tests.harness.codec_keys import converter
from tests.harness.documents import fast_policy
from workflows.order import OrderWorkflow
from workflows.restock import RestockWorkflow


class Flow:
    """One test's orders, worker and database."""

    def __init__(self, client: Client, factory: SessionFactory, task_queue: str) -> None:
        self.client = client
        self.factory = factory
        self.task_queue = task_queue
        self.tag = uuid.uuid4().hex[:8]

    def oid(self, label: str) -> str:
        """A unique order id for this test: workflow ids live on a dev server shared by every test."""
        return f"{label}-{self.tag}"

    # ------------------------------------------------------------- acting

    async def start(
        self, order: OrderDocument, policy: Policy | None = None
    ) -> WorkflowHandle[Any, Any]:
        return await self.client.start_workflow(
            OrderWorkflow.run,
            OrderInput(order=order, policy=policy or fast_policy(), submitted_at=datetime.now(UTC)),
            id=workflow_id_for(order.order_id),
            task_queue=self.task_queue,
        )

    def handle(self, order_id: str) -> WorkflowHandle[Any, OrderOutcome]:
        return self.client.get_workflow_handle_for(OrderWorkflow.run, workflow_id_for(order_id))

    async def signal(self, order_id: str, name: str, payload: dict[str, Any] | None = None) -> None:
        """Send as the CLI does, after asking the workflow whether it applies."""
        refusal = await self.refusal(order_id, name, payload or {})
        assert refusal is None, f"{name} refused for {order_id}: {refusal}"
        await self.handle(order_id).signal(name, payload or {})

    async def refusal(self, order_id: str, name: str, payload: dict[str, Any]) -> str | None:
        return await self.handle(order_id).query("refusal", args=[name, payload])

    async def restock(self, sku: str, warehouse: str, qty: int) -> RestockResult:
        op = f"restock-{uuid.uuid4().hex[:12]}"
        return await self.client.execute_workflow(
            RestockWorkflow.run,
            RestockInput(sku=sku, warehouse=warehouse, qty=qty, op_key=op),
            id=op,
            task_queue=self.task_queue,
        )

    async def ship_all(self, order_id: str, carrier: str = "SF") -> None:
        """The warehouse picks, packs and ships every open shipment, one by one."""
        state = await self.state(order_id)
        for shipment in state.shipments:
            if shipment.status in ("shipped", "cancelled"):
                continue
            no = shipment.shipment_no
            if shipment.status == "released":
                await self.signal(order_id, "picked", {"shipment": no})
            if shipment.status in ("released", "picked"):
                await self.signal(order_id, "packed", {"shipment": no, "parcels": 1})
            await self.signal(
                order_id,
                "shipped",
                {"shipment": no, "carrier": carrier, "tracking_no": f"SF{order_id[-4:]}{no:04d}"},
            )

    # ------------------------------------------------------------ waiting

    async def state(self, order_id: str) -> OrderSnapshot:
        return await self.handle(order_id).query(OrderWorkflow.state, result_type=OrderSnapshot)

    async def until(
        self,
        order_id: str,
        check: Callable[[OrderSnapshot], bool],
        what: str,
        timeout: float = 20.0,
    ) -> OrderSnapshot:
        deadline = time.monotonic() + timeout
        while True:
            state = await self.state(order_id)
            if check(state):
                return state
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{order_id}: not {what} after {timeout}s; it is {state.stage}"
                )
            await asyncio.sleep(0.05)

    async def stage(self, order_id: str, stage: str, timeout: float = 20.0) -> OrderSnapshot:
        return await self.until(order_id, lambda s: s.stage == stage, stage, timeout)

    async def finish(self, order_id: str, timeout: float = 30.0) -> OrderOutcome:
        """The workflow's result; it must have closed Completed (never Failed)."""
        handle = self.handle(order_id)
        outcome = await asyncio.wait_for(handle.result(), timeout)
        description = await handle.describe()
        assert description.status == WorkflowExecutionStatus.COMPLETED
        # The history replays on today's code without a nondeterminism error.
        replayer = Replayer(workflows=[OrderWorkflow], data_converter=converter())
        await replayer.replay_workflow(await handle.fetch_history())
        return outcome

    async def persisted(
        self, order_id: str, check: Callable[[dict[str, Any]], bool], timeout: float = 10.0
    ) -> dict:
        """The database's view (`status --json`) once it satisfies `check`."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(order_id)
            if status is not None and check(status):
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"{order_id}: the database never got there: {status}")
            await asyncio.sleep(0.05)

    # ------------------------------------------------------------ reading

    def status(self, order_id: str) -> dict[str, Any] | None:
        with transaction(self.factory) as session:
            return order_status(session, order_id)

    def stock(self, sku: str) -> dict[str, dict[str, int]]:
        with transaction(self.factory) as session:
            return {row["warehouse"]: row for row in stock_rows(session, sku)}

    def audit(self) -> list[str]:
        with transaction(self.factory) as session:
            return audit(session)

    def events(self, order_id: str | None = None) -> list[dict[str, Any]]:
        with transaction(self.factory) as session:
            return [
                {
                    "id": e.id,
                    "type": e.type,
                    "payload": e.payload,
                    "status": e.status,
                    "attempts": e.attempts,
                }
                for e in list_events(session, order_id=order_id)
            ]

    def event_types(self, order_id: str) -> list[str]:
        return [e["type"] for e in self.events(order_id)]

    def refunds(self, order_id: str) -> list[Decimal]:
        with transaction(self.factory) as session:
            rows = session.exec(
                select(Refund).where(Refund.order_id == order_id).order_by(Refund.created_at)
            )
            return [Decimal(r.amount) for r in rows]

    def transfers(self, order_id: str) -> list[Transfer]:
        with transaction(self.factory) as session:
            return list(session.exec(select(Transfer).where(Transfer.order_id == order_id)))

    def held(self, order_id: str) -> list[Reservation]:
        with transaction(self.factory) as session:
            return list(
                session.exec(
                    select(Reservation).where(
                        Reservation.order_id == order_id, Reservation.status == "held"
                    )
                )
            )

    def waiting_backorders(self, order_id: str) -> list[Backorder]:
        with transaction(self.factory) as session:
            return list(
                session.exec(
                    select(Backorder).where(
                        Backorder.order_id == order_id, Backorder.status == "waiting"
                    )
                )
            )

    def assert_settled(self, order_id: str) -> dict[str, Any]:
        """Invariants of SPEC §8 for a finished order: the ledger adds up, every unit is accounted for."""
        assert self.audit() == []
        status = self.status(order_id)
        assert status is not None
        for line in status["lines"]:
            assert (
                line["reserved"] + line["shipped"] + line["backordered"] + line["cancelled"]
                == line["qty"]
            ), line
        if status["stage"] in ("completed", "cancelled"):
            assert self.held(order_id) == []
            assert self.waiting_backorders(order_id) == []
            assert all(
                line["reserved"] == 0 and line["backordered"] == 0 for line in status["lines"]
            )
        return status


@asynccontextmanager
async def running_flow(
    client: Client,
    db_url: str,
    settings: Settings | None = None,
    http: httpx.AsyncClient | None = None,
    *,
    task_queue: str | None = None,
) -> AsyncIterator[Flow]:
    """A migrated database with the sample data, and a worker on its own task queue, for one test
    (or on `task_queue`, to bring a worker back to the orders a test started earlier)."""
    migrate(db_url)
    engine = make_engine(db_url, pool_size=5)
    factory = session_factory(engine)
    task_queue = task_queue or f"tq-{uuid.uuid4()}"
    worker = build_worker(
        client, settings or Settings(), factory, http, task_queue=task_queue, max_threads=8
    )
    try:
        async with worker:
            yield Flow(client, factory, task_queue)
    finally:
        engine.dispose()
