"""A real shop for workflow tests: a worker with the real workflows and activities on its own DB.

`running_shop` migrates a per-test SQLite database, loads the sample catalog,
warehouses and stock through `reads.queries.load_reference`, and runs a
real Worker (built by `runtime.worker.build_worker`) on a fresh uuid task
queue of the time-skipping server. Fakes registered under a real activity name
replace the real one where a test needs to count calls or force a failure.

On the way out every order the test started is brought to an end (a cancel for
those still waiting), must have ended Completed (never Failed or Terminated),
and its recorded history must replay without nondeterminism.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from activities.registry import all_activities
from inventory.audit import audit
from models.db import SessionFactory, make_engine, migrate, session_factory, transaction
from models.documents import OrderDocument, workflow_id_for
from models.payloads import OrderInput, OrderOutcome, OrderSnapshot, RestockInput, RestockResult
from models.settings import (
    Policy,
    Settings,
)
from models.tables import ContactLog, OrderLineRow, OutboxEvent, Refund, StockLevel
from reads.queries import order_status
from runtime.worker import build_worker
from tests.harness.codec_keys import converter
from tests.harness.documents import short_policy
from tests.harness.reference import load_sample
from workflows.order import OrderWorkflow
from workflows.restock import RestockWorkflow

# Real seconds a test waits for the workflow to reach a state it is certain to reach.
PATIENCE = 30.0

H = timedelta(hours=1)


@dataclass
class Shop:
    env: WorkflowEnvironment
    factory: SessionFactory
    task_queue: str
    handles: list[WorkflowHandle[Any, Any]] = field(default_factory=list)

    @property
    def client(self) -> Client:
        return self.env.client

    # ------------------------------------------------------------ driving

    async def start(
        self, doc: dict[str, Any], policy: Policy | None = None
    ) -> WorkflowHandle[Any, Any]:
        order = OrderDocument.model_validate(doc)
        handle = await self.client.start_workflow(
            OrderWorkflow.run,
            OrderInput(
                order=order, policy=policy or short_policy(), submitted_at=datetime.now(UTC)
            ),
            id=workflow_id_for(order.order_id),
            task_queue=self.task_queue,
            result_type=OrderOutcome,
        )
        self.handles.append(handle)
        return handle

    async def restock(self, sku: str, qty: int, warehouse: str = "HZ") -> RestockResult:
        op = f"restock-{uuid.uuid4().hex[:12]}"
        result = await self.client.execute_workflow(
            RestockWorkflow.run,
            RestockInput(sku=sku, warehouse=warehouse, qty=qty, op_key=op),
            id=op,
            task_queue=self.task_queue,
            result_type=RestockResult,
        )
        assert isinstance(result, RestockResult)
        return result

    async def skip(self, duration: timedelta) -> None:
        """Let `duration` pass on the time-skipping server."""
        await self.env.sleep(duration)

    # ------------------------------------------------------------ reading

    @staticmethod
    async def state(handle: WorkflowHandle[Any, Any]) -> OrderSnapshot:
        snapshot = await handle.query("state", result_type=OrderSnapshot)
        assert isinstance(snapshot, OrderSnapshot)
        return snapshot

    @staticmethod
    async def refusal(handle: WorkflowHandle[Any, Any], name: str, payload: Any) -> str | None:
        return await handle.query("refusal", args=[name, payload], result_type=str | None)  # type: ignore[arg-type]

    async def until(
        self, handle: WorkflowHandle[Any, Any], check: Callable[[OrderSnapshot], bool], what: str
    ) -> OrderSnapshot:
        """The workflow's state once `check` holds (it must, within PATIENCE real seconds)."""
        deadline = time.monotonic() + PATIENCE
        while True:
            snapshot = await self.state(handle)
            if check(snapshot):
                return snapshot
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{handle.id}: never {what}; last state {snapshot.stage} {snapshot.flags}"
                )
            await asyncio.sleep(0.05)

    async def at_stage(
        self, handle: WorkflowHandle[Any, Any], stage: str, waiting_for: str | None = "any"
    ) -> OrderSnapshot:
        return await self.until(
            handle,
            lambda s: s.stage == stage and (waiting_for == "any" or s.waiting_for == waiting_for),
            f"reached {stage} (waiting for {waiting_for})",
        )

    async def ended(self, handle: WorkflowHandle[Any, Any]) -> OrderSnapshot:
        """The final state of an order that is ending by itself.

        It watches `describe` rather than awaiting the result: on the time-skipping
        server awaiting a result lets time run free for every other waiting order.
        """
        deadline = time.monotonic() + PATIENCE
        while (description := await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            if time.monotonic() > deadline:
                raise AssertionError(f"{handle.id} did not end")
            await asyncio.sleep(0.05)
        assert description.status == WorkflowExecutionStatus.COMPLETED, (
            handle.id,
            description.status,
        )
        return await self.state(handle)

    def status(self, order_id: str) -> dict[str, Any]:
        with transaction(self.factory) as session:
            found = order_status(session, order_id)
        assert found is not None, f"order {order_id} is not in the database"
        return json.loads(json.dumps(found, default=str))

    async def status_when(
        self, order_id: str, check: Callable[[dict[str, Any]], bool], what: str
    ) -> dict[str, Any]:
        """The persisted `status --json` object once `check` holds (the DB follows the workflow)."""
        deadline = time.monotonic() + PATIENCE
        while True:
            found = self.status(order_id)
            if check(found):
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{order_id}: the database never showed {what}; stage {found['stage']}"
                )
            await asyncio.sleep(0.05)

    async def outbox_when(self, order_id: str, type_: str, count: int) -> list[OutboxEvent]:
        """The outbox events of one type once there are `count` of them (written by a running step)."""
        deadline = time.monotonic() + PATIENCE
        while len(found := self.outbox(order_id, type_)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{order_id}: {len(found)} {type_} events, not {count}")
            await asyncio.sleep(0.05)
        return found

    def timeline(self, order_id: str, type_: str | None = None) -> list[dict[str, Any]]:
        events = self.status(order_id)["events"]
        return [e for e in events if type_ is None or e["type"] == type_]

    def outbox(self, order_id: str, type_: str | None = None) -> list[OutboxEvent]:
        with transaction(self.factory) as session:
            stmt = (
                select(OutboxEvent)
                .where(OutboxEvent.order_id == order_id)
                .order_by(OutboxEvent.created_at)
            )
            rows = list(session.execute(stmt).scalars())
        return [r for r in rows if type_ is None or r.type == type_]

    def contacts(self, order_id: str) -> list[ContactLog]:
        with transaction(self.factory) as session:
            stmt = (
                select(ContactLog)
                .where(ContactLog.order_id == order_id)
                .order_by(ContactLog.contact_no)
            )
            return list(session.execute(stmt).scalars())

    def refunds(self, order_id: str) -> list[Refund]:
        with transaction(self.factory) as session:
            return list(
                session.execute(select(Refund).where(Refund.order_id == order_id)).scalars()
            )

    def line_rows(self, order_id: str) -> list[OrderLineRow]:
        with transaction(self.factory) as session:
            stmt = (
                select(OrderLineRow)
                .where(OrderLineRow.order_id == order_id)
                .order_by(OrderLineRow.line_no)
            )
            return list(session.execute(stmt).scalars())

    def stock(self, sku: str, warehouse: str = "HZ") -> tuple[int, int]:
        """(on_hand, reserved) of one SKU in one warehouse."""
        with transaction(self.factory) as session:
            level = session.get(StockLevel, (sku, warehouse))
            return (level.on_hand, level.reserved) if level else (0, 0)

    def assert_invariants(self, *order_ids: str) -> None:
        """SPEC §8: the ledger audits clean, and every line's units are all accounted for."""
        with transaction(self.factory) as session:
            assert audit(session) == []
        for order_id in order_ids:
            rows = self.line_rows(order_id)
            assert rows, f"{order_id} has no lines"
            for row in rows:
                accounted = row.reserved + row.shipped + row.backordered + row.cancelled
                assert accounted == row.qty, (order_id, row.line_no, row)

    # ------------------------------------------------------------ closing

    async def finish(self) -> None:
        """End whatever still runs with a cancel; every order must end Completed."""
        for handle in self.handles:
            description = await handle.describe()
            if description.status == WorkflowExecutionStatus.RUNNING:
                await handle.signal("cancel", {"reason": "test over"})
        replayer = Replayer(workflows=[OrderWorkflow], data_converter=converter())
        for handle in self.handles:
            await asyncio.wait_for(handle.result(), PATIENCE)
            description = await handle.describe()
            assert description.status == WorkflowExecutionStatus.COMPLETED, (
                handle.id,
                description.status,
            )
            # the recorded history replays on today's code: no nondeterminism on any path
            await replayer.replay_workflow(await handle.fetch_history())


def _real_activities(factory: SessionFactory) -> list[Callable[..., Any]]:
    return all_activities(factory, None)


def _activity_name(fn: Callable[..., Any]) -> str:
    from temporalio.activity import _Definition

    definition = _Definition.must_from_callable(fn)
    assert definition.name is not None
    return definition.name


@asynccontextmanager
async def running_shop(
    env: WorkflowEnvironment,
    db_url: str,
    *,
    fakes: Callable[[SessionFactory], Sequence[Callable[..., Any]]] | None = None,
) -> AsyncIterator[Shop]:
    """A worker on its own task queue and database, sample reference data loaded.

    `fakes(factory)` gives activities that replace the real ones of the same name.
    """
    migrate(db_url)
    engine = make_engine(db_url)
    factory = session_factory(engine)
    load_sample(factory, warehouses=None)
    task_queue = f"wf-{uuid.uuid4()}"
    settings = Settings(database_url=db_url, task_queue=task_queue, webhook_url=None)
    if fakes is not None:
        fake_list = list(fakes(factory))
        replaced = {_activity_name(f) for f in fake_list}
        activities = [
            a for a in _real_activities(factory) if _activity_name(a) not in replaced
        ] + fake_list
        worker = Worker(
            env.client,
            task_queue=task_queue,
            workflows=[OrderWorkflow, RestockWorkflow],
            activities=activities,
            activity_executor=ThreadPoolExecutor(max_workers=4),
            max_concurrent_activities=4,
            max_concurrent_local_activities=4,
        )
    else:
        worker = build_worker(
            env.client, settings, factory, None, task_queue=task_queue, max_threads=4
        )
    shop = Shop(env=env, factory=factory, task_queue=task_queue)
    try:
        # Time moves only when a test says so (`Shop.skip`): awaiting one order's result
        # must not let the clock run free for the others, which wait on timers too.
        with env.auto_time_skipping_disabled():
            async with worker:
                try:
                    yield shop
                finally:
                    await shop.finish()
    finally:
        engine.dispose()
