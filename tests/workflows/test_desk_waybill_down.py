"""A Cainiao waybill service that is down at release: the parcel waits and its activity
retries with backoff; the order is released and never failed; a later cancel cancels the
waybill at Cainiao. A re-labelling Cainiao refuses flags the order and fails nothing. Real
worker on the dev server, the desk's real activities with the platforms' stand-in gateway
injected."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from activities.shipping import ShippingActivities
from models.db import transaction
from models.payloads import Cancel
from shipping import standin as cainiao_standin
from shipping.reference import load_carriers
from tests.harness.desk import CAINIAO_CARRIERS, cainiao_gateway, sample_file, seed_desk
from tests.harness.documents import order_doc, short_policy
from tests.harness.shop import running_shop

pytestmark = pytest.mark.e2e

@asynccontextmanager
async def desk_on_cainiao(dev_env: Any, db_url: str) -> AsyncIterator[tuple[Any, Any]]:
    """A worker whose desk issues YUNDA's numbers through Cainiao on the stand-in gateway
    (first in the carriers file and the cheapest): (the stand-in's shop, the running shop)."""
    with cainiao_gateway() as (shop, cainiao):

        def desk(factory: Any) -> list[Any]:
            real = ShippingActivities(factory, cainiao)
            return [real.prepare_parcel, real.void_parcels, real.readdress_parcels]

        async with running_shop(dev_env, db_url, fakes=desk) as s:
            seed_desk(s.factory)
            with transaction(s.factory) as session:
                load_carriers(session, CAINIAO_CARRIERS + sample_file("carriers"))
            yield shop, s


async def released_with_parcel(s: Any, doc: dict[str, Any]) -> tuple[Any, str, dict, dict]:
    """Start the order, wait for its release and its parcel: (handle, id, status, parcel entry)."""
    handle = await s.start(doc, short_policy())
    order_id = doc["order_id"]
    await s.at_stage(handle, "released")
    status = await s.status_when(
        order_id, lambda st: any(e["type"] == "parcel" for e in st["events"]),
        "a parcel in the timeline")
    [event] = [e for e in status["events"] if e["type"] == "parcel"]
    return handle, order_id, status, event


async def test_the_waybill_service_down_at_release_retries_and_the_order_goes_on(
        dev_env, db_url: str) -> None:
    async with desk_on_cainiao(dev_env, db_url) as (shop, s):
        shop.faults.down_next = 2  # the first two calls answer 502
        doc = order_doc("down")
        handle, order_id, status, event = await released_with_parcel(s, doc)
        assert event["carrier"] == "YUNDA" and event["waybill"].startswith("YUNDA77")
        assert status["stage"] == "released" and "step_failed" not in status["flags"]
        assert shop.calls["cainiao.waybill.ii.get"] >= 1
        history = await handle.fetch_history()
        failed = [e for e in history.events if e.HasField(
            "activity_task_started_event_attributes") and
            e.activity_task_started_event_attributes.attempt > 1]
        assert failed, "the activity was retried"
        described = await handle.describe()
        assert described.status is not None and described.status.name == "RUNNING", (
            described.status, [e.event_type for e in history.events][-8:])
        await handle.signal("cancel", Cancel(reason="buyer asked").model_dump())
        status = await s.status_when(order_id, lambda st: st["stage"] == "cancelled",
                                     "cancelled")
        voided = [e for e in status["events"] if e["type"] == "waybills_voided"]
        assert voided[0]["cancelled"] == [event["waybill"]]
        assert event["waybill"] in cainiao_standin.state(shop).cancelled
        await handle.result()  # closed before the harness looks (it cancels what still runs)


async def test_a_refused_re_labelling_flags_the_order_and_fails_nothing(dev_env, db_url: str) -> None:
    """The buyer changes the address after the release, and Cainiao refuses to cancel the old
    number (it no longer knows it): a refusal no retry can fix. The order is flagged
    `parcel_failed` with why, for a clerk, and goes on; nothing is failed."""
    async with desk_on_cainiao(dev_env, db_url) as (shop, s):
        doc = order_doc("readdress-refused")
        handle, order_id, status, event = await released_with_parcel(s, doc)
        cainiao_standin.state(shop).by_object.clear()  # Cainiao has forgotten the number
        await handle.signal("platform_address", {
            "platform": "taobao", "name": "李四", "phone": "13987654321",
            "province": "浙江省", "city": "杭州市", "district": "西湖区",
            "detail": "文三路88号2幢302室"})  # fmt: skip
        status = await s.status_when(
            order_id, lambda st: "parcel_failed" in st["flags"], "the order flagged")
        [failed] = [e for e in status["events"] if e["type"] == "parcel_failed"]
        assert failed["error"].startswith("re-labelling for the changed address: ")
        assert "不存在" in failed["error"] and failed["shipment"] == f"{order_id}-1"
        assert status["stage"] == "released"
        assert any(e["type"] == "pick_list_amended" for e in status["events"])
        with transaction(s.factory) as session:  # void here all the same: never packed
            from shipping.tables import WaybillRow

            assert session.get(WaybillRow, event["waybill"]).status == "void"
        described = await handle.describe()
        assert described.status is not None and described.status.name == "RUNNING"
        await handle.signal("cancel", Cancel(reason="buyer asked").model_dump())
        await s.status_when(order_id, lambda st: st["stage"] == "cancelled", "cancelled")
        await handle.result()
