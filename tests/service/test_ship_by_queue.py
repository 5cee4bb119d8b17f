"""The queue by ship-by deadline (issue 19, SPEC §3.9) through the real service, on SQLite and
PostgreSQL: the console's tab lists the late order first, then the soonest deadline, then the
orders without one oldest first, each with the time left marked soon or late; `GET /v1/orders`
gives each item's `ship_by` and pages `sort=ship_by` the same way; a bad `sort` is a 422 naming
the field. Orders are seeded by the project's own persistence code (no workflow needs to run)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from benchmarks.seed import seed_order
from models.db import transaction
from models.documents import OrderDocument
from tests.conftest import _postgres_database
from tests.harness.documents import make_order
from tests.harness.service import ServiceStack, running_service

pytestmark = pytest.mark.e2e

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
# order id, ship-by from now (None: none); all wait for the buyer, created in this order
ORDERS = [("SQ-none-1", None), ("SQ-in-9h", timedelta(hours=9)), ("SQ-late", -timedelta(hours=2)),
          ("SQ-none-2", None), ("SQ-in-3h", timedelta(hours=3))]
QUEUE = ["SQ-late", "SQ-in-3h", "SQ-in-9h", "SQ-none-1", "SQ-none-2"]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('shipby-sqlite') / 'oms.db'}"
    else:
        yield from _postgres_database()


@pytest.fixture(scope="module")
async def svc(dev_env: Any, db: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServiceStack]:
    async with running_service(dev_env, tmp_path_factory.mktemp("svc-shipby"), db, worker=False) as stack:
        now = datetime.now(UTC)
        with transaction(stack.factory) as session:
            for i, (order_id, left) in enumerate(ORDERS):
                doc = make_order(order_id, [("TSHIRT-RED-M", 1)], minutes=i)
                if left is not None:  # as a platform's sync writes it (+08:00)
                    doc = OrderDocument.model_validate({
                        **doc.model_dump(mode="json"),
                        "ship_by": (now + left).astimezone(SHANGHAI).isoformat(timespec="seconds")})
                seed_order(session, doc, stage="awaiting_buyer", submitted_at=T0 + timedelta(minutes=i))
        yield stack


async def console(svc: ServiceStack) -> httpx.AsyncClient:
    http = httpx.AsyncClient(base_url=svc.url, timeout=60, follow_redirects=True)
    page = await http.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, page.text[:500]
    r = await http.post("/login", data={"csrf_token": token.group(1), "key": svc.keys["clerk"], "next": "/"})
    assert r.status_code == 200, r.text[:500]
    return http


async def test_the_console_queue_sorts_by_deadline_and_shows_the_time_left(svc: ServiceStack) -> None:
    http = await console(svc)
    try:
        page = await http.get("/?tab=buyer")
    finally:
        await http.aclose()
    assert page.status_code == 200
    rows = re.findall(r'<tr class="[^"]*" data-order="([^"]+)">(.*?)</tr>', page.text, re.S)
    assert [order_id for order_id, _ in rows] == QUEUE
    cells = {order_id: row for order_id, row in rows}
    assert "发货截止 Ship by" in page.text
    late = cells["SQ-late"]
    assert 'data-ship-by="late"' in late and 'class="due late"' in late
    assert re.search(r"超时 (1h 5\dm|2h 0\dm)", late) and re.search(r"late by (1h 5\dm|2h 0\dm)", late)
    soon = cells["SQ-in-3h"]  # within ship_by.warn (6 h by default)
    assert 'data-ship-by="soon"' in soon and re.search(r"剩 2h 5\dm|剩 3h 00m", soon)
    assert re.search(r"(2h 5\dm|3h 00m) left", soon)
    later = cells["SQ-in-9h"]
    assert 'data-ship-by="ok"' in later and re.search(r"(8h 5\dm|9h 00m) left", later)
    assert 'class="due' not in cells["SQ-none-1"] and 'data-ship-by=""' in cells["SQ-none-1"]


async def test_the_api_lists_ship_by_and_pages_the_deadline_order(svc: ServiceStack) -> None:
    seen: list[str] = []
    items: dict[str, Any] = {}
    cursor = None
    while True:
        params = {"waiting_for": "buyer", "sort": "ship_by", "limit": 2} | ({"cursor": cursor} if cursor else {})
        r = await svc.get("/v1/orders", params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        seen += [i["order_id"] for i in body["orders"]]
        items |= {i["order_id"]: i for i in body["orders"]}
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == QUEUE
    late = datetime.fromisoformat(items["SQ-late"]["ship_by"])
    assert late.utcoffset() == timedelta(0) and late < datetime.now(UTC)
    assert items["SQ-none-1"]["ship_by"] is None
    # the default stays oldest first (SPEC §5.6), with ship_by on each item
    r = await svc.get("/v1/orders", params={"waiting_for": "buyer"}, role="platform")
    assert [i["order_id"] for i in r.json()["orders"]] == [o for o, _ in ORDERS]
    assert all("ship_by" in i for i in r.json()["orders"])


@pytest.mark.parametrize("params", [{"sort": "deadline"}, {"sort": ""}, {"sort": "ship_by", "q": "SQ-late"}])
async def test_a_bad_sort_is_a_422_naming_the_field(svc: ServiceStack, params: dict[str, str]) -> None:
    r = await svc.get("/v1/orders", params=params)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "sort" and r.json()["error"].startswith("sort")


async def test_a_cursor_of_the_other_order_is_a_422_naming_the_cursor(svc: ServiceStack) -> None:
    r = await svc.get("/v1/orders", params={"waiting_for": "buyer", "limit": 1})
    cursor = r.json()["next_cursor"]
    assert cursor
    r = await svc.get("/v1/orders", params={"waiting_for": "buyer", "limit": 1, "cursor": cursor,
                                            "sort": "ship_by"})
    assert r.status_code == 422 and r.json()["field"] == "cursor", r.text
