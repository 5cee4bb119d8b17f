"""The HTTP API against the real service (uvicorn on a free port) on the real dev server.

One service, worker and SQLite database for the module; each test uses order ids of its own.
Roles and keys, intake batch results, keyset paging while orders arrive, metrics that move
with the orders, and malformed requests that must never get a 500.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness.service import ServiceStack, running_service

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def svc(dev_env: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServiceStack]:
    home: Path = tmp_path_factory.mktemp("svc-api")
    async with running_service(dev_env, home) as stack:
        yield stack


def tag() -> str:
    return uuid.uuid4().hex[:8]


# --------------------------------------------------------------- roles / keys

ROUTE_CLASSES: list[tuple[str, str, str, dict[str, Any] | None, set[str]]] = [
    # (name, method, path, json body, roles allowed)
    ("intake", "POST", "/v1/orders", [], {"platform", "clerk", "admin"}),
    ("read order", "GET", "/v1/orders/NOPE-{t}", None, {"platform", "warehouse", "clerk", "admin"}),
    ("list orders", "GET", "/v1/orders?limit=1", None, {"platform", "warehouse", "clerk", "admin"}),
    ("operator action", "POST", "/v1/orders/NOPE-{t}/actions/approve", {},
     {"clerk", "admin"}),
    ("warehouse action", "POST", "/v1/orders/NOPE-{t}/actions/picked", {},
     {"warehouse", "clerk", "admin"}),
    ("restock", "POST", "/v1/stock/restock", {"sku": "NO-SUCH-SKU", "qty": 1},
     {"warehouse", "clerk", "admin"}),
    ("stock", "GET", "/v1/stock", None, {"warehouse", "clerk", "admin"}),
    ("transfer", "POST", "/v1/transfers/NOPE-{t}/arrived", None, {"warehouse", "clerk", "admin"}),
    ("events", "GET", "/v1/events?limit=1", None, {"clerk", "admin"}),
    ("codec", "POST", "/codec/decode", {"payloads": []}, {"clerk", "admin"}),
    ("metrics", "GET", "/metrics", None, {"clerk", "admin"}),
    ("keys", "GET", "/v1/keys", None, {"admin"}),
    ("reference", "POST", "/v1/reference/warehouses", [], {"admin"}),
]


async def test_every_role_against_every_route_class(svc: ServiceStack) -> None:
    t = tag()
    table: dict[tuple[str, str], int] = {}
    for name, method, path, body, allowed in ROUTE_CLASSES:
        path = path.format(t=t)
        kw: dict[str, Any] = {} if body is None else {"json": body}
        # no key, a malformed header, an unknown key: 401 everywhere
        for headers in ({}, {"Authorization": "Basic abc"},
                        {"Authorization": "Bearer oms_" + "x" * 32}):
            r = await svc.http.request(method, path, headers=headers, **kw)
            assert r.status_code == 401, (name, headers, r.status_code, r.text)
            assert r.json()["error"] and r.headers["www-authenticate"] == "Bearer"
        for role in ("platform", "warehouse", "clerk", "admin"):
            r = await svc.http.request(method, path, headers=svc.auth(role), **kw)
            table[(name, role)] = r.status_code
            if role in allowed:
                assert r.status_code not in (401, 403), (name, role, r.status_code, r.text)
            else:
                assert r.status_code == 403, (name, role, r.status_code, r.text)
                assert role in r.json()["error"], r.text
            assert r.status_code < 500, (name, role, r.status_code, r.text)
    assert table[("read order", "platform")] == 404  # allowed, and the order is unknown


async def test_a_revoked_key_is_refused_at_once(svc: ServiceStack) -> None:
    made = await svc.post("/v1/keys", "admin", json={"name": f"wms-{tag()}", "role": "warehouse"})
    assert made.status_code == 200, made.text
    key = made.json()["key"]
    assert key.startswith("oms_") and len(key) >= 4 + 32
    headers = {"Authorization": f"Bearer {key}"}
    assert (await svc.http.get("/v1/stock", headers=headers)).status_code == 200
    listed = (await svc.get("/v1/keys", "admin")).json()
    assert all("key" not in k and key not in json.dumps(k) for k in listed)

    revoked = await svc.http.delete(f"/v1/keys/{made.json()['name']}", headers=svc.auth("admin"))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    r = await svc.http.get("/v1/stock", headers=headers)
    assert r.status_code == 401 and "revoked" in r.json()["error"]


async def test_healthz_needs_no_key_and_names_each_part(svc: ServiceStack) -> None:
    r = await svc.http.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "temporal": "ok", "database": "ok"}


# ------------------------------------------------------------------- intake


async def test_intake_batch_answers_each_document(svc: ServiceStack) -> None:
    t = tag()
    good = svc.doc(f"API-GOOD-{t}")
    again = svc.doc(f"API-GOOD-{t}")
    bad = svc.doc(f"API-BAD-{t}")
    bad["lines"][0]["qty"] = "two"
    bad["created_at"] = "yesterday"
    no_id: dict[str, Any] = {"lines": [{"sku": "X", "qty": 1}]}
    r = await svc.post("/v1/orders", "platform", json=[good, again, bad, no_id, 42])
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["result"] for x in results] == ["started", "duplicate", "rejected", "rejected", "rejected"]
    assert results[0] == {"order_id": f"API-GOOD-{t}", "result": "started", "errors": []}
    assert results[2]["order_id"] == f"API-BAD-{t}"
    fields = {e["field"] for e in results[2]["errors"]}
    assert {"lines.0.qty", "created_at"} <= fields, results[2]
    assert results[3]["order_id"] is None and any(e["field"] == "order_id" for e in results[3]["errors"])
    assert results[4]["errors"][0]["field"] == "(document)"

    # resent later by the platform: duplicate, never a second workflow
    r = await svc.post("/v1/orders", "platform", json=good)  # one document, not a list
    assert r.json()["results"] == [{"order_id": f"API-GOOD-{t}", "result": "duplicate", "errors": []}]
    status = await svc.wait_stage(f"API-GOOD-{t}", "released")
    assert status["order_id"] == f"API-GOOD-{t}"
    # the rejected one started nothing
    assert (await svc.get(f"/v1/orders/API-BAD-{t}")).status_code == 404


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"{not json", "not JSON"),
        (b"", "empty"),
        (b'"just a string"', "order document"),
        (b'{"order_id": NaN}', "not JSON"),
        (b"\xff\xfe garbage", "not JSON"),
    ],
)
async def test_intake_refuses_a_body_that_is_not_orders(svc: ServiceStack, body: bytes, why: str) -> None:
    r = await svc.post("/v1/orders", "platform", content=body,
                       headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert why in r.json()["error"] and r.json()["field"] == "body"


async def test_intake_refuses_more_than_1000_documents(svc: ServiceStack) -> None:
    r = await svc.post("/v1/orders", "platform", json=[{}] * 1001)
    assert r.status_code == 400 and "at most 1000" in r.json()["error"]


async def test_intake_rejects_hostile_documents_one_by_one(svc: ServiceStack) -> None:
    t = tag()
    deep: Any = "x"
    for _ in range(60):
        deep = {"d": deep}
    surrogate = svc.doc(f"API-SURR-{t}")
    surrogate["remarks"] = "\ud800"
    extra_surrogate = svc.doc(f"API-SURR2-{t}")
    extra_surrogate["note_from_platform"] = "ok \udfff"
    nested = svc.doc(f"API-DEEP-{t}")
    nested["extra"] = deep
    huge = svc.doc(f"API-HUGE-{t}")
    huge["platform_payload"] = "x" * 300_000
    raw = json.dumps([surrogate, extra_surrogate, nested, huge], ensure_ascii=True)
    r = await svc.post("/v1/orders", "platform", content=raw.encode(),
                       headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["result"] for x in results] == ["rejected"] * 4
    assert results[0]["errors"][0]["field"] == "remarks"
    assert results[1]["errors"][0]["field"] == "note_from_platform"
    assert results[2]["errors"][0]["field"].startswith("extra")
    assert results[3]["order_id"] == f"API-HUGE-{t}"
    assert results[3]["errors"][0] == {
        "field": "platform_payload", "message": "is longer than 4000 characters (300000)"}


async def test_intake_answers_a_body_nested_100000_deep_document_by_document(svc: ServiceStack) -> None:
    for body in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000):
        r = await svc.post("/v1/orders", "platform", content=body,
                           headers={"Content-Type": "application/json"})
        assert r.status_code == 200, r.text
        (result,) = r.json()["results"]
        assert result["result"] == "rejected" and result["order_id"] is None
        assert result["errors"][0]["message"] == "nested more than 32 levels deep"


# -------------------------------------------------------------------- reads


async def test_an_order_reads_as_status_json(svc: ServiceStack) -> None:
    t = tag()
    await svc.submit(svc.doc(f"API-READ-{t}"))
    status = await svc.wait_stage(f"API-READ-{t}", "released")
    for key in ("order_id", "stage", "waiting_for", "flags", "findings", "lines", "shipments",
                "refund", "events"):
        assert key in status
    assert status["lines"][0]["sku"] == "TSHIRT-RED-M" and status["lines"][0]["reserved"] == 1
    assert status["shipments"][0]["status"] == "released"
    r = await svc.get(f"/v1/orders/API-NOPE-{t}", "warehouse")
    assert r.status_code == 404 and "unknown order" in r.json()["error"]


async def test_paging_visits_every_order_exactly_once_while_new_orders_arrive(
    svc: ServiceStack,
) -> None:
    t = tag()
    first = [svc.doc(f"PG-{t}-{i:03d}", minutes=i, phone=f"1381{i:07d}") for i in range(60)]
    assert {r["result"] for r in await svc.submit(*first)} == {"started"}
    ids = {d["order_id"] for d in first}

    async def recorded() -> set[str]:
        seen: set[str] = set()
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
            page = (await svc.get("/v1/orders", params=params)).json()
            seen |= {o["order_id"] for o in page["orders"]}
            cursor = page["next_cursor"]
            if not cursor:
                return seen

    for _ in range(150):
        if ids <= await recorded():
            break
        await asyncio.sleep(0.2)

    visited: list[str] = []
    cursor = None
    arrived = 0
    while True:
        params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
        r = await svc.get("/v1/orders", "platform", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["orders"]) <= 7
        visited += [o["order_id"] for o in page["orders"]]
        if arrived < 3:  # orders arrive while the platform pages
            late = [svc.doc(f"PG-{t}-late-{arrived}-{j}", minutes=-500 + j, phone=f"1391{arrived}{j:06d}")
                    for j in range(3)]
            await svc.submit(*late)
            arrived += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(visited) == len(set(visited)), "an order was on two pages"
    assert ids <= set(visited), f"missed: {sorted(ids - set(visited))[:5]}"
    created = [o["created_at"] for o in (await svc.get("/v1/orders", params={"limit": 1000})).json()["orders"]]
    assert created == sorted(created), "oldest first"


async def test_list_filters_by_stage_waiting_for_and_flag(svc: ServiceStack) -> None:
    t = tag()
    unpaid = svc.doc(f"FLT-UNPAID-{t}", payment="pending")
    clean = svc.doc(f"FLT-CLEAN-{t}")
    await svc.submit(unpaid, clean)
    await svc.wait_stage(f"FLT-UNPAID-{t}", "awaiting_payment")
    await svc.wait_stage(f"FLT-CLEAN-{t}", "released")

    def ids(page: dict[str, Any]) -> set[str]:
        return {o["order_id"] for o in page["orders"]}

    by_wait = (await svc.get("/v1/orders", params={"waiting_for": "payment", "limit": 1000})).json()
    assert f"FLT-UNPAID-{t}" in ids(by_wait) and f"FLT-CLEAN-{t}" not in ids(by_wait)
    assert {o["waiting_for"] for o in by_wait["orders"]} == {"payment"}
    by_stage = (await svc.get("/v1/orders", params={"stage": "released", "limit": 1000})).json()
    assert f"FLT-CLEAN-{t}" in ids(by_stage) and {o["stage"] for o in by_stage["orders"]} == {"released"}
    by_flag = (await svc.get("/v1/orders", params={"flag": "unpaid", "limit": 1000})).json()
    assert f"FLT-UNPAID-{t}" in ids(by_flag) and f"FLT-CLEAN-{t}" not in ids(by_flag)
    assert all("unpaid" in o["flags"] for o in by_flag["orders"])
    both = (await svc.get("/v1/orders", params={"flag": "unpaid", "stage": "released"})).json()
    assert f"FLT-UNPAID-{t}" not in ids(both)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "W10"}, "cursor"),  # base64 of "[]"
        ({"cursor": "x" * 401}, "cursor"),
        ({"stage": "nowhere"}, "stage"),
        ({"waiting_for": "godot"}, "waiting_for"),
        ({"flag": "Not A Flag!"}, "flag"),
    ],
)
async def test_bad_list_parameters_name_the_field(svc: ServiceStack, params: dict[str, Any], field: str) -> None:
    r = await svc.get("/v1/orders", params=params)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field and r.json()["error"].startswith(field)


async def test_stock_and_events_read_from_the_database(svc: ServiceStack) -> None:
    stock = (await svc.get("/v1/stock", "warehouse", params={"sku": "TSHIRT-RED-M"})).json()
    assert stock and all(row["sku"] == "TSHIRT-RED-M" for row in stock)
    assert {"sku", "warehouse", "on_hand", "reserved", "available"} <= set(stock[0])
    t = tag()
    await svc.submit(svc.doc(f"EVT-{t}"))
    await svc.wait_stage(f"EVT-{t}", "released")
    page = (await svc.get("/v1/events", params={"order_id": f"EVT-{t}", "limit": 1})).json()
    assert len(page["events"]) == 1 and page["next_cursor"]
    rest = (await svc.get("/v1/events", params={"order_id": f"EVT-{t}", "cursor": page["next_cursor"]})).json()
    types = [e["type"] for e in page["events"] + rest["events"]]
    assert "pick_list" in types, types
    ids = [e["id"] for e in page["events"] + rest["events"]]
    assert len(ids) == len(set(ids))


# ------------------------------------------------------------------ metrics


def metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}}") or (not labels and line.startswith(name + " ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_metrics_move_when_orders_move(svc: ServiceStack) -> None:
    before = (await svc.get("/metrics")).text
    t = tag()
    await svc.submit(svc.doc(f"MET-PAY-{t}", payment="pending"))
    await svc.wait_stage(f"MET-PAY-{t}", "awaiting_payment")
    after = (await svc.get("/metrics")).text
    assert metric(after, "oms_orders", stage="awaiting_payment") == metric(
        before, "oms_orders", stage="awaiting_payment") + 1
    assert metric(after, "oms_waiting_orders", waiting_for="payment") >= 1
    assert metric(after, "oms_waits", age="lt_5m", waiting_for="payment") >= 1
    assert metric(after, "oms_intake_documents_total", result="started") >= metric(
        before, "oms_intake_documents_total", result="started") + 1
    assert 'oms_http_request_duration_seconds_bucket{le="0.005",method="POST",route="/v1/orders"}' in after
    assert metric(after, "oms_http_requests_total", method="POST", route="/v1/orders", status="200") >= 1
    for name in ("oms_sla_breaches", "oms_webhook_deliveries", "oms_oldest_wait_seconds"):
        assert f"# TYPE {name} gauge" in after
    assert 'oms_webhook_deliveries{outcome="pending"}' in after


# ---------------------------------------------------------------- bad input


async def test_malformed_requests_never_get_a_500(svc: ServiceStack) -> None:
    t = tag()
    await svc.submit(svc.doc(f"BAD-{t}"))
    await svc.wait_stage(f"BAD-{t}", "released")
    before = await svc.settled_history(f"BAD-{t}")
    action = f"/v1/orders/BAD-{t}/actions"
    json_headers = {**svc.auth("clerk"), "Content-Type": "application/json"}
    cases: list[tuple[str, str, dict[str, Any], int, str | None]] = [
        ("POST", f"{action}/approve", {"content": b"{oops"}, 422, "body"),
        ("POST", f"{action}/approve", {"json": [1, 2]}, 422, "body"),
        ("POST", f"{action}/approve", {"json": {"note": 5}}, 422, "note"),
        ("POST", f"{action}/approve", {"json": {"note": "x" * 100_000}}, 422, "note"),
        ("POST", f"{action}/approve", {"json": {"nonsense": 1}}, 422, "nonsense"),
        ("POST", f"{action}/approve", {"json": {"reason": "wrong action's field"}}, 422, "reason"),
        ("POST", f"{action}/shipped", {"json": {"shipment": "one"}}, 422, "shipment"),
        ("POST", f"{action}/shipped", {"json": {"shipment": 1.5}}, 422, "shipment"),
        ("POST", f"{action}/pick-exception", {"json": {"qty": -1}}, 422, "qty"),
        ("POST", f"{action}/pay", {"json": {"amount": "lots", "txn": "T"}}, 422, "amount"),
        ("POST", f"{action}/pay", {"json": {"amount": "NaN", "txn": "T"}}, 422, "amount"),
        ("POST", f"{action}/confirm", {"json": {"note": "bad \u0000 byte"}}, 422, "note"),
        ("POST", f"{action}/fly", {"json": {}}, 422, "action"),
        ("POST", "/v1/stock/restock", {"json": {"sku": "TSHIRT-RED-M", "qty": 0}}, 422, "qty"),
        ("POST", "/v1/stock/restock", {"json": {"sku": "TSHIRT-RED-M", "qty": "3"}}, 422, "qty"),
        ("POST", "/v1/stock/restock", {"json": {"sku": "TSHIRT-RED-M", "qty": 2.5}}, 422, "qty"),
        ("POST", "/v1/stock/restock", {"content": b"[]"}, 422, "body"),
        ("POST", "/v1/keys", {"json": {"name": "x y", "role": "king"}}, 422, "name"),
        ("GET", "/v1/events?cursor=%%%", {}, 422, "cursor"),
        ("GET", "/v1/orders/" + "x" * 300, {}, 422, "order_id"),
        ("PUT", "/v1/orders", {}, 405, None),
        ("GET", "/v1/nowhere", {}, 404, None),
    ]
    for method, path, kw, status, field in cases:
        headers = json_headers if "content" in kw else svc.auth("admin" if "keys" in path else "clerk")
        r = await svc.http.request(method, path, headers=headers, **kw)
        assert r.status_code == status, (method, path, r.status_code, r.text[:300])
        body = r.json()
        assert isinstance(body["error"], str) and body["error"]
        if field:
            assert body["field"] == field, (path, body)
    assert await svc.history_length(f"BAD-{t}") == before, "bad input wrote nothing"
    assert (await svc.order(f"BAD-{t}"))["stage"] == "released"


async def test_openapi_documents_every_route(svc: ServiceStack) -> None:
    doc = (await svc.http.get("/openapi.json")).json()
    paths = set(doc["paths"])
    assert {
        "/v1/orders", "/v1/orders/{order_id}", "/v1/orders/{order_id}/actions/{action}",
        "/v1/stock/restock", "/v1/stock", "/v1/transfers/{transfer_id}/arrived", "/v1/events",
        "/healthz", "/metrics", "/codec/decode", "/codec/encode",
    } <= paths
    assert "/login" not in paths and "/" not in paths  # the console is HTML, not API
    assert "OrderDocument" in doc["components"]["schemas"]
    actions = doc["paths"]["/v1/orders/{order_id}/actions/{action}"]["post"]
    assert {"200", "404", "409", "422"} <= set(actions["responses"])


async def test_the_service_is_plain_http_for_any_client(svc: ServiceStack) -> None:
    """Another process's view: a fresh client, keep-alive off, no cookies."""
    async with httpx.AsyncClient(base_url=svc.url, headers={"Connection": "close"}) as other:
        r = await other.get("/v1/orders", headers=svc.auth("platform"), params={"limit": 1})
    assert r.status_code == 200 and set(r.json()) == {"orders", "next_cursor"}
