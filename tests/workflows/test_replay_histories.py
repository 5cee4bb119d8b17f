"""Workflows started on earlier code still replay on today's code.

`tests/histories/` holds histories recorded on the dev box from the time-skipping
server before a change of the workflow's commands (2026-11-29: before the check
began reserving stock in its own step and the release began writing the order's
state): a clean order, one that waited for the buyer, one held for approval and
one backordered, restocked, then cancelled. A change of the workflow's commands
must be guarded with `workflow.patched`; without the guard these fail with a
nondeterminism error (checked for the release change). The SDK does not compare
local activities' inputs, so a change that only alters an input (the check asking to
reserve) replays unguarded: its guard is there to keep idempotency keys stable.

The `sa-*` histories were recorded on the dev server with search attributes on, on
the code of 2026-11-29 (b9bde32), before search attributes were upserted once per
pause instead of at every change: without the `search-attributes-at-pause` guard
all four fail with a nondeterminism error (checked).

`split-after-check-cancelled` was recorded on today's code (dev server, an operator
polling the order while it was checked, then a cancel): the worker ended the first
workflow task with the check's result recorded, and the release ran in the next task.
On the code of 2026-11-29 that shape failed replay ("patch marker encountered for
change release-writes-state, but there is no corresponding change command"): the
release patch was taken after the check, and replay resolves the check inside the
first task, before it learns of the next task's patch. Today's code decides its
patches in the first activation (`PATCH_FLOW_2026_11_30`).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from tests.harness import HISTORIES as HISTORY_DIR
from tests.harness.codec_keys import converter
from workflows.order import OrderWorkflow

HISTORIES = sorted(HISTORY_DIR.glob("*.json"))


def test_the_recorded_histories_are_there():
    assert {p.stem for p in HISTORIES} >= {
        "clean-order-completed",
        "buyer-confirmed-completed",
        "approved-completed",
        "backordered-restocked-cancelled",
        "sa-clean-order-completed",
        "sa-approved-completed",
        "sa-backordered-restocked-completed",
        "sa-released-cancelled",
        "split-after-check-cancelled",
    }


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_a_history_recorded_on_earlier_code_replays(path: Path):
    history = WorkflowHistory.from_json(path.stem, path.read_text(encoding="utf-8"))
    result = await Replayer(
        workflows=[OrderWorkflow], data_converter=converter()
    ).replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
    assert len(history.events) > 15
