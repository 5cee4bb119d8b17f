"""What the Temporal Web UI shows of an order: search attributes (SPEC §5.5) and current details.

Search attributes carry no PII: stage, wait, flags, SKUs, warehouses, total, platform.
An order started on the flow of 2026-11-30 or later upserts them once per pause (`due`):
a burst of local activities runs inside one workflow task, whose commands reach the
server together, so an upsert per stage change inside it would show nothing more, at one
history event and one visibility write each.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.search import (
        SA_FLAGS,
        SA_PLATFORM,
        SA_SKUS,
        SA_STAGE,
        SA_TOTAL,
        SA_WAITING,
        SA_WAREHOUSE,
    )

if TYPE_CHECKING:
    from workflows.order.state import OrderState


class Visibility:
    def __init__(self, state: OrderState) -> None:
        self.state = state
        self.at_pause = False  # started on the flow of 2026-11-30: upsert once per pause
        self.due = False

    def publish(self) -> None:
        """The one-line current details now; search attributes now, or at the next pause."""
        s = self.state
        waits = f"waiting for {s.waiting} since {s.since:%Y-%m-%d %H:%M:%S} UTC" if s.waiting else "working"
        flags = f" · flags: {', '.join(s.flags)}" if s.flags else ""
        workflow.set_current_details(f"{s.stage}: {waits}{flags}")
        if not s.policy.search_attributes:
            return
        if self.at_pause:
            self.due = True
            return
        self.upsert()

    def publish_due(self) -> None:
        """At a pause: the search attributes as they are now, once for every change since the last."""
        if self.due:
            self.due = False
            self.upsert()

    def upsert(self) -> None:
        s = self.state
        warehouses = sorted({sh.warehouse for sh in s.shipments})
        total = float(s.order.total) if s.order.total is not None else 0.0
        workflow.upsert_search_attributes(
            [
                SA_STAGE.value_set(str(s.stage)),
                SA_WAITING.value_set(str(s.waiting) if s.waiting else "none"),
                SA_FLAGS.value_set(list(s.flags)),
                SA_SKUS.value_set(sorted({line.sku for line in s.lines})),
                SA_WAREHOUSE.value_set(",".join(warehouses) or "none"),
                SA_TOTAL.value_set(total),
                SA_PLATFORM.value_set(s.order.platform),
            ]
        )
