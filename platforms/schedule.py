"""Each shop's Temporal Schedule (id ``shop-sync-<name>``) and its backfills (SPEC §5.9).

The schedule starts the `ShopSync` workflow every `poll_every` with overlap SKIP (one
run at a time: a long catch-up is never raced by the next tick); its runs' workflow ids
are ``shop-sync-<name>-<time>``. It is visible, pausable and triggerable in the Temporal
UI's Schedules page as well as by `oms shops pause|resume|sync`. A backfill is one
`ShopSync` run with its own window, id ``shop-sync-<name>-backfill-<since>-<until>``.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
    WorkflowHandle,
)
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from platforms.messages import SyncInput, SyncResult

WORKFLOW = "ShopSync"


def schedule_id(shop: str) -> str:
    return f"shop-sync-{shop}"


def backfill_id(shop: str, since: datetime, until: datetime) -> str:
    return f"shop-sync-{shop}-backfill-{since:%Y%m%dT%H%M%S}-{until:%Y%m%dT%H%M%S}"


async def create(
    client: Client,
    *,
    shop: str,
    task_queue: str,
    poll_every: timedelta,
    paused: bool = False,
    sync: SyncInput | None = None,
) -> None:
    """The shop's schedule (its first run at once unless paused); an existing one is kept."""
    action = ScheduleActionStartWorkflow(
        WORKFLOW,
        sync or SyncInput(shop=shop),
        id=schedule_id(shop),
        task_queue=task_queue,
    )
    schedule = Schedule(
        action=action,
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=poll_every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(paused=paused, note="paused by oms" if paused else None),
    )
    with contextlib.suppress(ScheduleAlreadyRunningError):
        await client.create_schedule(schedule_id(shop), schedule, trigger_immediately=not paused)


async def set_interval(client: Client, shop: str, every: timedelta) -> None:
    """`shops set --poll-every`: the schedule's interval changed, the rest kept."""

    def update(inp: ScheduleUpdateInput) -> ScheduleUpdate:
        schedule = inp.description.schedule
        schedule.spec = ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)])
        return ScheduleUpdate(schedule=schedule)

    await client.get_schedule_handle(schedule_id(shop)).update(update)


async def pause(client: Client, shop: str) -> None:
    await client.get_schedule_handle(schedule_id(shop)).pause(note="oms shops pause")


async def resume(client: Client, shop: str) -> None:
    handle = client.get_schedule_handle(schedule_id(shop))
    await handle.unpause(note="oms shops resume")
    await handle.trigger(overlap=ScheduleOverlapPolicy.SKIP)


async def trigger(client: Client, shop: str) -> None:
    """The next window at once (a token renewed, `shops sync` without a window)."""
    await client.get_schedule_handle(schedule_id(shop)).trigger(overlap=ScheduleOverlapPolicy.SKIP)


async def delete(client: Client, shop: str) -> None:
    await client.get_schedule_handle(schedule_id(shop)).delete()


async def backfill(
    client: Client,
    *,
    shop: str,
    task_queue: str,
    since: datetime,
    until: datetime,
    sync: SyncInput | None = None,
) -> WorkflowHandle[object, SyncResult]:
    """A run over [since, until] now; the same window asked twice joins the running one."""
    inp = (sync or SyncInput(shop=shop)).model_copy(
        update={"since": since.isoformat(), "until": until.isoformat(), "max_windows": 10_000}
    )
    wid = backfill_id(shop, since, until)
    try:
        return await client.start_workflow(
            WORKFLOW,
            inp,
            id=wid,
            task_queue=task_queue,
            result_type=SyncResult,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        )
    except WorkflowAlreadyStartedError:
        return client.get_workflow_handle(wid, result_type=SyncResult)
