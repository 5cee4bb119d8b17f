"""An address the buyer changed on the platform reaches the running order (SPEC §3.9, issue 19).

On the real dev server with a real worker and database: an order waiting for its buyer's
answer takes the platform's new address as that answer, is checked again and goes on; one
past its check is checked again where it waits (a street with no number is flagged for a
clerk) and, once released, its warehouse gets an amended pick list (the e2e sync test);
the same address twice, or a change after shipping, is refused and changes nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from models.db import transaction
from models.tables import Order
from tests.harness.documents import HOT, make_order
from tests.harness.flow import Flow, running_flow
from tests.harness.reference import load_sample

pytestmark = pytest.mark.e2e

NEW = {"platform": "taobao", "name": "李四", "phone": "13987654321", "province": "浙江省",
       "city": "杭州市", "district": "西湖区", "detail": "文三路88号2幢302室"}


@pytest.fixture
async def flow(dev_env: WorkflowEnvironment, sqlite_url: str) -> AsyncIterator[Flow]:
    async with running_flow(dev_env.client, sqlite_url) as flow:
        yield flow


def _events(flow: Flow, oid: str, type_: str) -> list[dict[str, Any]]:
    status = flow.status(oid)
    assert status is not None
    return [e for e in status["events"] if e["type"] == type_]


async def test_an_order_waiting_for_its_buyer_takes_the_new_address_as_the_answer(flow: Flow) -> None:
    load_sample(flow.factory, {(HOT, "HZ"): 10})
    oid = flow.oid("PA-BUYER")
    vague = make_order(oid, [(HOT, 1)])
    vague = vague.model_copy(update={"address": vague.address.model_copy(update={"detail": "文三路"})})
    await flow.start(vague)
    await flow.stage(oid, "awaiting_buyer")
    await flow.signal(oid, "platform_address", NEW)
    state = await flow.until(oid, lambda s: s.stage == "released", "checked again and released")
    assert "address_vague" not in state.flags
    status = await flow.persisted(oid, lambda st: st["stage"] == "released")
    with transaction(flow.factory) as session:
        document = session.get(Order, oid).document  # type: ignore[union-attr]
    assert document["address"]["detail"] == NEW["detail"]  # what the desk's label prints
    corrections = _events(flow, oid, "correction")
    assert {c["field"] for c in corrections} >= {"address.detail", "buyer.phone", "buyer.name"}
    assert NEW["phone"] not in str(status["events"]) and NEW["detail"] not in str(status["events"])
    assert "李四" not in str(status["events"])


async def test_past_its_check_the_address_is_checked_again_and_a_second_time_changes_nothing(
    flow: Flow,
) -> None:
    load_sample(flow.factory, {(HOT, "HZ"): 200})
    oid = flow.oid("PA-REVIEW")
    await flow.start(make_order(oid, [(HOT, 150)]))  # over the approval threshold
    await flow.stage(oid, "awaiting_approval")
    vague = {**NEW, "detail": "文三路"}  # a street with no house number
    await flow.signal(oid, "platform_address", vague)
    state = await flow.until(oid, lambda s: "address_vague" in s.flags, "the new address flagged")
    assert state.stage == "awaiting_approval" and state.shipments == []
    await flow.persisted(oid, lambda st: any(e["type"] == "address_checked" for e in st["events"]))
    assert flow.event_types(oid).count("pick_list_amended") == 0  # nothing released yet
    # the same address again: refused by the rule, recorded, nothing changes
    assert "already has this address" in str(await flow.refusal(oid, "platform_address", vague))
    await flow.handle(oid).signal("platform_address", vague)
    await flow.persisted(oid, lambda st: any(e["type"] == "signal_rejected" for e in st["events"]))
    assert len(_events(flow, oid, "address_checked")) == 1
    # a good address clears the flag; approved, it is released to that address
    await flow.signal(oid, "platform_address", NEW)
    await flow.until(oid, lambda s: "address_vague" not in s.flags, "the flag cleared")
    await flow.handle(oid).execute_update("approve", {"note": "ok"})
    await flow.until(oid, lambda s: s.stage == "released" and bool(s.shipments), "released")
    await flow.ship_all(oid)
    await flow.until(oid, lambda s: s.stage in ("shipped", "completed"), "shipped")
    why = await flow.refusal(oid, "platform_address", {**NEW, "detail": "文三路1号"})
    assert why is not None and ("already shipped" in why or "completed" in why), why
