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
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.order import OrderWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_the_recorded_histories_are_there():
    assert {p.stem for p in HISTORIES} >= {
        "clean-order-completed",
        "buyer-confirmed-completed",
        "approved-completed",
        "backordered-restocked-cancelled",
    }


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_a_history_recorded_on_earlier_code_replays(path: Path):
    history = WorkflowHistory.from_json(path.stem, path.read_text(encoding="utf-8"))
    result = await Replayer(
        workflows=[OrderWorkflow], data_converter=pydantic_data_converter
    ).replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
    assert len(history.events) > 15
