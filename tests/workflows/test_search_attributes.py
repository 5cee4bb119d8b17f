"""Search attributes on the real dev server: what an operator filters on in the Web UI.

They are upserted once per pause (`_publish_due`), not at every change: the stages a
burst of local activities goes through reach the server with the workflow task that
ends at the pause anyway. So: at most one upsert per workflow task, and at every pause
the values an operator would expect.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from models.documents import workflow_id_for
from models.search import SA_PLATFORM, SA_SKUS, SA_STAGE, SA_TOTAL, SA_WAITING, SA_WAREHOUSE
from tests.harness.documents import HOT, make_order
from tests.harness.flow import Flow, running_flow
from tests.harness.reference import load_sample


@pytest.fixture
async def flow(dev_env: WorkflowEnvironment, sqlite_url: str) -> AsyncIterator[Flow]:
    async with running_flow(dev_env.client, sqlite_url) as flow:
        load_sample(flow.factory, {(HOT, "HZ"): 5, (HOT, "SH"): 0})
        yield flow


async def attributes(flow: Flow, order_id: str) -> dict[str, object]:
    described = await flow.client.get_workflow_handle(workflow_id_for(order_id)).describe()
    sa = described.typed_search_attributes
    return {
        key.name: sa.get(key)
        for key in (SA_STAGE, SA_WAITING, SA_SKUS, SA_WAREHOUSE, SA_TOTAL, SA_PLATFORM)
    }


async def settled_attributes(flow: Flow, order_id: str, stage: str) -> dict[str, object]:
    """The search attributes once they show `stage` (or as they are after 30 s)."""
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        found = await attributes(flow, order_id)
        if found["OrderStage"] == stage or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.2)


async def test_a_clean_order_shows_each_pause_and_upserts_at_most_once_per_workflow_task(
    flow: Flow,
) -> None:
    oid = flow.oid("SA-1")
    order = make_order(oid, [(HOT, 2)])
    await flow.start(order)
    await flow.stage(oid, "released")
    # Published at the order's next pause: after the release, the desk's step may still run.
    assert await settled_attributes(flow, oid, "released") == {
        "OrderStage": "released",
        "WaitingFor": "warehouse",
        "OrderSkus": [HOT],
        "Warehouse": "HZ",
        "OrderTotal": float(order.total),
        "Platform": "taobao",
    }

    await flow.ship_all(oid)
    await flow.finish(oid)
    done = await attributes(flow, oid)
    assert (done["OrderStage"], done["WaitingFor"]) == ("completed", "none")

    history = await flow.handle(oid).fetch_history()
    # Ours, not the SDK's own TemporalChangeVersion upsert that follows a patch marker.
    upserts = sum(
        1
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
        and "OrderStage" in e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
    )
    tasks = sum(1 for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
    # received, checking, allocating, reviewing, released, picking, packed, shipped and
    # completed used to be nine upserts or more; now one per pause.
    assert 2 <= upserts <= tasks, (upserts, tasks)


async def test_a_cancelled_order_shows_cancelled(flow: Flow) -> None:
    oid = flow.oid("SA-2")
    await flow.start(make_order(oid, [(HOT, 1)]))
    await flow.stage(oid, "released")
    await flow.signal(oid, "cancel", {"reason": "buyer changed their mind"})
    await flow.finish(oid)
    done = await attributes(flow, oid)
    assert (done["OrderStage"], done["WaitingFor"]) == ("cancelled", "none")
