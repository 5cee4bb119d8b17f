"""The database's copy of the order: written by the workflow when it pauses, in batches.

The database is the source of truth for lists, queues and reports; the workflow writes
its state and the new timeline entries there (`persist_state`). Not after every change:
a clean order goes from received to released in one burst of steps, and one write when
it settles (then after each warehouse event) costs far fewer local activities than a
write after every change. Warehouse events (picked, packed, shipped) are applied by the
workflow and written with the state they lead to, in one transaction
(`unwritten`); any other database step writes them first (`Steps.db`).

Every flag of this writer is here: how far the timeline is written (`persisted`), which
version of the state (`written`), whether a write is in flight (`persisting`), how many
steps of the main flow are (`steps`), what the main flow waits for while it is paused
(`paused_on`), and whether the order is closing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.orders import OrderActivities
    from models.enums import Flag
    from models.jsonable import jsonable
    from models.payloads import PersistInput, ShipmentUpdateInput
    from models.types import TimelineEvent
    from workflows.order import patches
    from workflows.order.steps import STEP_FAILED, cause

if TYPE_CHECKING:
    from workflows.order.patches import Patches
    from workflows.order.state import OrderState
    from workflows.order.steps import Steps


class Persistence:
    def __init__(self, state: OrderState, steps: Steps, patches_: Patches) -> None:
        self.state = state
        self.steps_ = steps
        self.patches = patches_
        self.persisted = 0  # timeline entries written
        self.written = 0  # the state version last written (behind while `state.version` differs)
        self.persisting = False
        self.steps = 0  # database steps of the main flow in flight (the writer waits them out)
        self.closing = False
        # What the main flow waits for while it is paused in `Waits.wait` (None: it is not).
        self.paused_on: Callable[[], bool] | None = None
        # Warehouse events applied to the state and not yet written, with what each should consume.
        self.unwritten: list[tuple[ShipmentUpdateInput, Any]] = []

    @property
    def dirty(self) -> bool:
        return self.state.version != self.written

    def recorded(self) -> bool:
        return self.state.unrecorded_since is None

    def paused(self) -> bool:
        """The main flow waits, and nothing it waits for has come."""
        return self.steps == 0 and self.paused_on is not None and not self.paused_on()

    async def loop(self) -> None:
        """Write once the main flow pauses, batching what piled up; last, when the order closes."""
        if self.patches.uses(patches.PERSIST_WHEN_PAUSED):
            # Only while the main flow waits and nothing it waits for has come: a signal that
            # wakes it (picked, packed, shipped, ...) leads into a step, and the write waits
            # for the pause after that step instead of running beside it.
            # Nothing is written before the first check records the order (in its transaction).
            while True:
                await workflow.wait_condition(
                    lambda: self.dirty and (self.closing or (self.recorded() and self.paused()))
                )
                if not self.recorded():
                    return  # closing, and never recorded: its first check failed for good
                await self.persist_once()
                if self.closing and not self.dirty:
                    return
        while True:
            await workflow.wait_condition(lambda: self.dirty and (self.steps == 0 or self.closing))
            # A signal wakes the main flow and this loop in the same pass: let the main flow
            # run first, and when it went on into a step, write once that burst settles.
            await asyncio.sleep(0)
            if self.steps and not self.closing:
                continue
            await self.persist_once()
            if self.closing and not self.dirty:
                return

    async def persist_once(self) -> None:
        updates = self.unwritten
        state, upto = self.state_write()
        self.persisting = True
        try:
            result = await self.steps_.db(OrderActivities.persist_state, state, hold=False)
        except STEP_FAILED as err:
            # Bad data no retry can fix: say so, and write again (everything since) at the
            # next change instead of failing the order.
            self.unwritten = updates + self.unwritten
            self.state.flag(Flag.STEP_FAILED)
            self.state.log("step_failed", step="persist_state", error=cause(err))
            self.written = self.state.version  # not again until something else changes
            return
        finally:
            self.persisting = False
        self.persisted = max(self.persisted, upto)
        self.steps_.deliver(result.event_ids)
        self.written_events(updates, result.shipments)

    async def write_now(self) -> None:
        """The state as it is now in the database, before a step that reads it there."""
        if self.persisting:
            await workflow.wait_condition(lambda: not self.persisting)
        if self.dirty or self.unwritten:
            await self.persist_once()

    async def write_warehouse_events(self) -> None:
        """Warehouse events applied but not yet in the database: write them (with the state) now."""
        if self.persisting:
            await workflow.wait_condition(lambda: not self.persisting)  # it may be writing them
        if self.unwritten:
            await self.persist_once()

    def written_events(self, updates: list[tuple[ShipmentUpdateInput, Any]], results: list[Any]) -> None:
        for (inp, expected), result in zip(updates, results, strict=True):
            self.steps_.deliver(result.event_ids)
            if list(map(tuple, result.shipped_lines)) != list(map(tuple, expected.shipped_lines)):
                # Never seen: the ledger consumed other units than the shipment listed.
                self.state.flag("ledger_mismatch")
                self.state.log("ledger_mismatch", shipment=inp.shipment_id,
                               expected=[list(x) for x in expected.shipped_lines],
                               consumed=[list(x) for x in result.shipped_lines])

    def state_write(self) -> tuple[PersistInput, int]:
        """The order's state now and the timeline entries not yet written (up to the index returned).

        Marks this version written: a change made while the write is in flight makes the
        state dirty again. Takes the warehouse events not yet written along.
        """
        s = self.state
        self.written = s.version
        updates, self.unwritten = self.unwritten, []
        upto = len(s.timeline)
        events = [
            TimelineEvent(seq=e["seq"], at=e["at"], type=e["type"], data=jsonable(e["data"]))
            for e in s.timeline[self.persisted : upto]
        ]
        stage_events = [e for e in events if e.type == "stage"]
        return PersistInput(
            snapshot=s.snapshot(),
            events=events,
            # Keyed by the timeline, not `Steps.key`: this writer runs beside the main flow,
            # and batches differ when a workflow task is re-run after a worker crash, so
            # taking a number from the shared counter here would shift every later key.
            status_event_id=f"{s.order_id}:status:{stage_events[-1].seq}" if stage_events else None,
            shipment_updates=[inp for inp, _ in updates],
        ), upto
