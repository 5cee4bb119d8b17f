"""A shop's sync: windows of platform orders read until caught up (SPEC §3.9, §8.9).

Started every `poll_every` by the shop's Temporal Schedule (id ``shop-sync-<name>``,
overlap SKIP: one run at a time; pause it in the UI's Schedules page or with
`oms shops pause`), or once by `oms shops sync NAME --since --until` for a backfill.
Each window is one activity; the cursor lives in the database and is committed by the
activity after the window's orders are in intake, so this workflow keeps no state a crash
could lose. A shop that was off for a day catches up window by window, `max_windows` per
run, the next run going on from the cursor.

A rate limit or a platform that is down is retried by the activity's retry policy with
backoff (never hot); an expired session or a refusal ends the run with the shop's state.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from platforms.messages import SyncInput, SyncResult, WindowInput, WindowResult


@workflow.defn(name="ShopSync")
class ShopSyncWorkflow:
    @workflow.run
    async def run(self, inp: SyncInput) -> SyncResult:
        retry = RetryPolicy(
            initial_interval=timedelta(seconds=inp.retry_initial_s),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=inp.retry_max_s),
            non_retryable_error_types=["ShopUnknown"],
        )
        result = SyncResult(shop=inp.shop, state="syncing")
        since = inp.since
        for n in range(inp.max_windows):
            window: WindowResult = await workflow.execute_activity(
                "shop_sync_window",
                WindowInput(shop=inp.shop, since=since, until=inp.until, retry_held=n == 0),
                result_type=WindowResult,
                start_to_close_timeout=timedelta(minutes=10),
                heartbeat_timeout=timedelta(seconds=30),
                retry_policy=retry,
            )
            result.state = window.state
            if window.start is not None:
                if inp.since is None or sum(len(w.orders) for w in result.windows) >= 1000:
                    window.orders = []  # the counts are the summary; the ids are in history
                result.windows.append(window)
            if window.state != "syncing" or window.caught_up or window.end is None:
                break
            if inp.since is not None:  # a backfill walks its own range
                since = window.end
                if inp.until is not None and datetime.fromisoformat(
                    since
                ) >= datetime.fromisoformat(inp.until):
                    break
        return result
