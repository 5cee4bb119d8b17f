"""A Cainiao waybill service that is down at release: the parcel waits and its activity
retries with backoff; the order is released and never failed; a later cancel cancels the
waybill at Cainiao. Real worker on the dev server, the desk's real activities with the
platforms' stand-in gateway injected."""

from __future__ import annotations

import json

import pytest

from activities.shipping import ShippingActivities
from models.db import transaction
from models.payloads import Cancel
from platforms.standin import StandinGateway, StandinShop
from platforms.top import TopClient
from shipping import standin as cainiao_standin
from shipping.cainiao import TopCainiao
from shipping.reference import load_carriers
from tests.harness import SAMPLE
from tests.harness.desk import seed_desk
from tests.harness.documents import order_doc, short_policy
from tests.harness.shop import running_shop

pytestmark = pytest.mark.e2e

YUNDA = {"code": "YUNDA", "name": "韵达快递", "rates": [
    {"provinces": "*", "first_kg": "1.00", "extra_kg": "1.00"}],
    "waybill": {"kind": "cainiao", "shop": "tb-main"}}


async def test_the_waybill_service_down_at_release_retries_and_the_order_goes_on(
        dev_env, db_url: str) -> None:
    shop = StandinShop("taobao", app_key="k", app_secret="s", session="sess")
    gateway = StandinGateway(shop).start()
    top = TopClient(api_url=gateway.url, app_key="k", app_secret="s", session="sess")
    cainiao = TopCainiao(lambda name: top)

    def desk(factory):
        real = ShippingActivities(factory, cainiao)
        return [real.prepare_parcel, real.void_parcels]

    try:
        async with running_shop(dev_env, db_url, fakes=desk) as s:
            seed_desk(s.factory)
            with transaction(s.factory) as session:
                sample = json.loads((SAMPLE
                                     / "carriers.json").read_text("utf-8"))
                load_carriers(session, [YUNDA, *sample])
            shop.faults.down_next = 2  # the first two calls answer 502
            doc = order_doc("down")
            handle = await s.start(doc, short_policy())
            order_id = doc["order_id"]
            await s.at_stage(handle, "released")
            status = await s.status_when(
                order_id, lambda st: any(e["type"] == "parcel" for e in st["events"]),
                "a parcel in the timeline")
            [event] = [e for e in status["events"] if e["type"] == "parcel"]
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
    finally:
        top.close()
        gateway.stop()
