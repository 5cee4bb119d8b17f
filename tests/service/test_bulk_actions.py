"""Bulk actions and paste-to-fill through the real service on the real dev server.

A bulk approve of 200 orders, 20 of them in the wrong stage: 180 approved (each by its own
update), 20 refused with the workflow's reason and their stage, and nothing else touched
(the refused orders' histories do not grow). Bad bodies are 4xx naming the field; the
paste-to-fill route answers the form's fields and saves nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from service.desk import MAX_BULK
from tests.harness.service import ServiceStack, running_service

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def svc(dev_env: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServiceStack]:
    async with running_service(dev_env, tmp_path_factory.mktemp("svc-bulk"),
                               stock={("PHONE-X1", "HZ"): 1000}) as stack:
        yield stack


async def wait_all(svc: ServiceStack, order_ids: list[str], *stages: str) -> None:
    gate = asyncio.Semaphore(16)

    async def one(order_id: str) -> None:
        async with gate:
            await svc.wait_stage(order_id, *stages, timeout=180)

    await asyncio.gather(*(one(o) for o in order_ids))


async def test_a_bulk_approve_of_200_with_20_in_the_wrong_stage(svc: ServiceStack) -> None:
    t = uuid.uuid4().hex[:6]
    big = [f"BULK-{t}-{i:03d}" for i in range(180)]  # over the approval threshold
    clean = [f"BULK-{t}-OK-{i:02d}" for i in range(20)]  # released without approval
    docs = [svc.doc(o, [("PHONE-X1", 1)]) for o in big] + [svc.doc(o) for o in clean]
    for start in range(0, len(docs), 50):
        assert {r["result"] for r in await svc.submit(*docs[start:start + 50])} == {"started"}
    await wait_all(svc, big, "awaiting_approval")
    await wait_all(svc, clean, "released")
    before = {o: await svc.settled_history(o) for o in clean}

    ids = big[:90] + clean + big[90:]  # the refused ones in the middle
    r = await svc.post("/v1/orders/actions/approve",
                       json={"order_ids": ids, "note": "批量核实"}, timeout=120)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["order_id"] for x in results] == ids  # one answer per order, in order
    accepted = [x for x in results if x["accepted"]]
    refused = [x for x in results if not x["accepted"]]
    assert {x["order_id"] for x in accepted} == set(big)
    assert {x["order_id"] for x in refused} == set(clean)
    for x in refused:
        assert x["stage"] == "released"
        assert "not waiting for approval" in x["reason"]
    for x in accepted:
        assert x["reason"] is None and x["stage"] in ("awaiting_approval", "released")
    await wait_all(svc, big, "released")
    for order_id in clean:  # nothing else touched: a refused update writes nothing
        assert await svc.settled_history(order_id) == before[order_id]
    sample = await svc.order(big[0])
    assert any(e["type"] == "signal" and e.get("note") == "批量核实" for e in sample["events"])

    # the same again: every order refused now (approved once, never twice)
    r = await svc.post("/v1/orders/actions/approve", json={"order_ids": big[:10]})
    assert r.status_code == 200
    assert not any(x["accepted"] for x in r.json()["results"])


async def test_a_bulk_mixes_unknown_orders_and_reasons_without_stopping(svc: ServiceStack) -> None:
    order_id = f"BULK-BUYER-{uuid.uuid4().hex[:6]}"
    doc = svc.doc(order_id)
    doc["address"]["detail"] = "世纪大道"
    await svc.submit(doc)
    await svc.wait_stage(order_id, "awaiting_buyer")
    r = await svc.post("/v1/orders/actions/confirm",
                       json={"order_ids": ["NO-SUCH-ORDER", order_id]})
    assert r.status_code == 200, r.text
    unknown, empty = r.json()["results"]
    assert unknown == {"order_id": "NO-SUCH-ORDER", "accepted": False,
                       "reason": "unknown order 'NO-SUCH-ORDER'", "stage": None}
    assert not empty["accepted"] and "nothing to confirm" in empty["reason"]
    assert empty["stage"] == "awaiting_buyer"
    r = await svc.post("/v1/orders/actions/cancel",
                       json={"order_ids": [order_id], "reason": "买家申请取消"})
    assert r.json()["results"][0]["accepted"] is True


@pytest.mark.parametrize(("body", "field"), [
    ({}, "order_ids"),
    ({"order_ids": []}, "order_ids"),
    ({"order_ids": ["A", "A"]}, "order_ids"),
    ({"order_ids": [f"O-{i}" for i in range(MAX_BULK + 1)]}, "order_ids"),
    ({"order_ids": ["A"], "reason": "no"}, "reason"),  # approve takes no reason
    ({"order_ids": ["A"], "colour": "red"}, "colour"),
    ({"order_ids": "A"}, "order_ids"),
    ([1, 2], "body"),
])
async def test_a_bad_bulk_body_is_a_422_naming_the_field(
    svc: ServiceStack, body: Any, field: str
) -> None:
    r = await svc.post("/v1/orders/actions/approve", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["field"].split(".")[0] == field, r.json()


async def test_bulk_needs_the_role_of_the_action(svc: ServiceStack) -> None:
    r = await svc.post("/v1/orders/actions/approve", "warehouse", json={"order_ids": ["A"]})
    assert r.status_code == 403
    r = await svc.post("/v1/orders/actions/approve", "platform", json={"order_ids": ["A"]})
    assert r.status_code == 403
    r = await svc.post("/v1/orders/actions/approve", json={"order_ids": ["A"]},
                       headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    r = await svc.post("/v1/orders/actions/approve", content=b"{not json",
                       headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["field"] == "body"


async def test_paste_to_fill_answers_the_forms_fields_and_saves_nothing(svc: ServiceStack) -> None:
    text = "收件人：王小明\n电话：138 1234 5678\n地址：北京朝阳区建国路88号SOHO现代城5号楼1203"
    r = await svc.post("/v1/addresses/parse", json={"text": text})
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "王小明", "phone": "13812345678", "province": "北京市",
                        "city": "北京市", "district": "朝阳区",
                        "detail": "建国路88号SOHO现代城5号楼1203", "postal_code": None,
                        "confidence": 1.0, "unparsed": ""}
    assert (await svc.post("/v1/addresses/parse", "platform", json={"text": text})).status_code == 403
    for body, field in (({}, "text"), ({"text": ""}, "text"), ({"text": "x" * 2001}, "text"),
                        ({"text": 5}, "text"), ({"text": "a", "more": 1}, "more")):
        r = await svc.post("/v1/addresses/parse", json=body)
        assert r.status_code == 422 and field in r.json()["error"], (body, r.text)


async def test_search_by_name_or_phone_is_refused_to_platform_keys(svc: ServiceStack) -> None:
    order_id = f"SRCH-{uuid.uuid4().hex[:6]}"
    await svc.submit(svc.doc(order_id))
    await svc.wait_stage(order_id, "released")
    for q in ("张三", "5678"):
        r = await svc.get("/v1/orders", "platform", params={"q": q})
        assert r.status_code == 403 and r.json()["field"] == "q", r.text
    r = await svc.get("/v1/orders", "platform", params={"q": order_id})
    assert r.status_code == 200 and [o["order_id"] for o in r.json()["orders"]] == [order_id]
    r = await svc.get("/v1/orders", params={"q": order_id[:8], "platform": "taobao"})
    assert order_id in [o["order_id"] for o in r.json()["orders"]]
    for params, field in (({"ship_by": "12/05"}, "ship_by"), ({"q": "x" * 129}, "q"),
                          ({"q": "A", "cursor": "garbage"}, "cursor")):
        r = await svc.get("/v1/orders", params=params)
        assert r.status_code == 422 and r.json()["field"] == field, (params, r.text)
