"""A platform's ship-by time: `ship_by_soon`, then `ship_by_late`, by the order's durable timers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.testing import WorkflowEnvironment

from models.documents import OrderDocument
from tests.harness.documents import fast_policy, make_order
from tests.harness.flow import Flow, running_flow
from tests.harness.reference import load_sample

pytestmark = pytest.mark.e2e


@pytest.fixture
async def flow(dev_env: WorkflowEnvironment, sqlite_url: str) -> AsyncIterator[Flow]:
    async with running_flow(dev_env.client, sqlite_url) as flow:
        load_sample(flow.factory)
        yield flow


def with_ship_by(doc: OrderDocument, at: datetime) -> OrderDocument:
    return OrderDocument.model_validate(doc.model_dump(mode="json") | {"ship_by": at.isoformat()})


async def test_an_order_not_shipped_in_time_is_flagged_soon_then_late(flow: Flow) -> None:
    policy = fast_policy()
    policy.ship_by.warn = timedelta(seconds=3)
    late = flow.oid("SB-LATE")
    on_time = flow.oid("SB-OK")
    plain = flow.oid("SB-NONE")
    deadline = datetime.now(UTC) + timedelta(seconds=6)
    await flow.start(with_ship_by(make_order(late, [("TSHIRT-RED-M", 1)]), deadline), policy)
    await flow.start(with_ship_by(make_order(on_time, [("TSHIRT-RED-M", 1)]), deadline), policy)
    await flow.start(make_order(plain, [("TSHIRT-RED-M", 1)]), policy)
    await flow.stage(on_time, "released")
    await flow.ship_all(on_time)
    state = await flow.until(late, lambda s: "ship_by_soon" in s.flags, "ship_by_soon", 15)
    assert "ship_by_late" not in state.flags
    assert datetime.now(UTC) < deadline + timedelta(seconds=2)
    state = await flow.until(late, lambda s: "ship_by_late" in s.flags, "ship_by_late", 15)
    assert state.stage == "released"
    done = await flow.finish(on_time)  # its history replays on today's code
    assert done.stage == "completed"
    assert not {"ship_by_soon", "ship_by_late"} & set((await flow.state(plain)).flags)
    persisted = await flow.persisted(late, lambda st: "ship_by_late" in st["flags"])
    assert "ship_by_soon" in persisted["flags"]
    await flow.ship_all(late)
    await flow.finish(late)
