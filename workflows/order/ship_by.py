"""A platform's ship-by time (SPEC §3.9): `ship_by_soon`, then `ship_by_late`, by durable timers.

An order from a platform carries the time it must ship by (`ship_by`: Pinduoduo's
`last_ship_time`, Taobao's pay time + the shop's `ship_within`). Its workflow keeps two
timers: `policy.ship_by.warn` before that time it is flagged `ship_by_soon` if it has not
shipped, and `ship_by_late` once the time has passed. Shipped (or cancelled) first, nothing
is flagged. Decided in the workflow's first activation, behind `patches.SHIP_BY_TIMERS`;
an order without `ship_by` (any other source) has no timer and takes no patch.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.documents import ship_by_time
    from models.enums import Flag, Stage
    from workflows.order.patches import SHIP_BY_TIMERS
    from workflows.order.state import OrderState

DONE = {Stage.SHIPPED, Stage.COMPLETED, Stage.CANCELLED}


def deadline_of(s: OrderState) -> datetime | None:
    return ship_by_time((s.order.model_extra or {}).get("ship_by"))


def watch(s: OrderState) -> asyncio.Task[None] | None:
    """The watcher task for an order with a ship-by time (cancelled by the workflow at its end)."""
    at = deadline_of(s)
    if at is None or not workflow.patched(SHIP_BY_TIMERS):
        return None
    return asyncio.create_task(_watch(s, at))


async def _watch(s: OrderState, at: datetime) -> None:
    for when, flag in ((at - s.policy.ship_by.warn, Flag.SHIP_BY_SOON), (at, Flag.SHIP_BY_LATE)):
        delay = (when - workflow.now()).total_seconds()
        if delay > 0:
            await workflow.sleep(delay, summary=str(flag))
        if s.stage in DONE:
            return
        s.flag(flag)
        s.log("ship_by", flag=str(flag), ship_by=at.isoformat())
