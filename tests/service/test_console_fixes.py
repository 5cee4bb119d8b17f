"""Issue 21's fixes through the real service on the real dev server: an empty confirm is
refused by the update's validator (nothing written, the buyer not asked again), the timeline
reads as sentences, times are on the merchant's clock with the zone named."""

from __future__ import annotations

import io
import json
import os
import re
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import structlog

from models.settings import Settings
from reads import localtime
from runtime.logs import configure_logging
from service import timeline
from tests.harness import codec_keys
from tests.harness.documents import HOT
from tests.harness.service import ServiceStack, running_service

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def svc(dev_env: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServiceStack]:
    async with running_service(dev_env, tmp_path_factory.mktemp("svc-fixes")) as stack:
        yield stack


def tag() -> str:
    return uuid.uuid4().hex[:6]


async def waiting_for_buyer(svc: ServiceStack) -> str:
    order_id = f"FIX-BUYER-{tag()}"
    doc = svc.doc(order_id)
    doc["address"]["detail"] = "世纪大道"  # no door number: the buyer is asked
    await svc.submit(doc)
    await svc.wait_stage(order_id, "awaiting_buyer")
    return order_id


async def test_an_empty_confirm_is_refused_and_writes_nothing(svc: ServiceStack, tmp_path: Path) -> None:
    order_id = await waiting_for_buyer(svc)
    before = await svc.settled_history(order_id)
    contacts = len((await svc.order(order_id))["contacts"])
    same = {"detail": "世纪大道", "province": "浙江省", "channel": "phone"}
    for body in ({}, {"channel": "im"}, same, {"note": "   "}):
        r = await svc.post(f"/v1/orders/{order_id}/actions/confirm", json=body)
        assert r.status_code == 409, (body, r.text)
        assert r.json()["accepted"] is False
        assert "nothing to confirm" in r.json()["reason"]
    assert await svc.settled_history(order_id) == before  # a validator refusal writes nothing
    status = await svc.order(order_id)
    assert status["stage"] == "awaiting_buyer"
    assert len(status["contacts"]) == contacts  # the buyer was not asked again

    # a note alone is something to confirm (the clerk says what the buyer said)
    r = await svc.post(f"/v1/orders/{order_id}/actions/confirm",
                       json={"note": "买家电话确认地址无误", "channel": "phone"})
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] is True


# ------------------------------------------------------------- the console over HTTP


async def console(svc: ServiceStack) -> httpx.AsyncClient:
    """A clerk signed in to the console (cookies kept), as a browser would be."""
    http = httpx.AsyncClient(base_url=svc.url, timeout=60, follow_redirects=True)
    page = await http.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, page.text[:500]
    r = await http.post("/login", data={"csrf_token": token.group(1), "key": svc.keys["clerk"],
                                        "next": "/"})
    assert r.status_code == 200 and "test-clerk" in r.text
    return http


def csrf(html: str) -> str:
    token = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert token
    return token.group(1)


async def test_the_console_refuses_an_empty_confirm_and_tells_the_timeline_in_sentences(
    svc: ServiceStack,
) -> None:
    order_id = await waiting_for_buyer(svc)
    http = await console(svc)
    try:
        page = await http.get(f"/orders/{order_id}")
        before = await svc.settled_history(order_id)
        r = await http.post(f"/orders/{order_id}/actions/confirm",
                            data={"csrf_token": csrf(page.text), "channel": "phone", "detail": ""})
        assert 'data-answer="refused"' in r.text and "nothing to confirm" in r.text
        assert await svc.settled_history(order_id) == before

        r = await http.post(f"/orders/{order_id}/actions/confirm",
                            data={"csrf_token": csrf(page.text), "detail": "世纪大道100号2幢301室",
                                  "note": "买家电话确认门牌号", "channel": "phone"})
        assert 'data-answer="accepted"' in r.text
        await svc.wait_stage(order_id, "released")
        page = await http.get(f"/orders/{order_id}")
        timeline = page.text.split('class="timeline"', 1)[1].split("</table>", 1)[0]
        # sentences, not key=value data; the release told once (not again as a stage change)
        assert "=" not in re.sub(r"<[^>]+>", "", timeline)
        assert "已下发仓库，1 个包裹" in timeline and "Released to the warehouse" in timeline
        assert "Now released" not in timeline
        assert "操作员登记买家确认" in timeline and "买家电话确认门牌号" in timeline
        assert 'data-event="contact_outcome"' not in timeline  # the note told once, with the confirm
        assert timeline.count("买家电话确认门牌号") == 2  # in its Chinese and English sentence
        assert "详细地址由" in timeline  # the correction, masked as the workflow recorded it
        assert "世纪大道100号2幢301室" not in timeline
        # times on the merchant's clock, the zone named once
        assert page.text.count("Asia/Shanghai (UTC+08:00)") == 1
        status = await svc.order(order_id)
        released = next(e for e in status["events"] if e["type"] == "released")
        at = datetime.fromisoformat(released["at"])  # the API keeps ISO 8601 with an offset
        assert at.utcoffset() is not None
        assert at.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%m-%d %H:%M:%S") in timeline
    finally:
        await http.aclose()


async def test_the_stock_tab_names_the_sku_and_warehouse_waited_for(svc: ServiceStack) -> None:
    order_id = f"FIX-SHORT-{tag()}"
    await svc.submit(svc.doc(order_id, [(HOT, 2)]))  # none in stock: backordered
    await svc.wait_stage(order_id, "backordered")
    http = await console(svc)
    try:
        page = await http.get("/?tab=stock")
        row = page.text.split(f'data-order="{order_id}"', 1)[1].split("</tr>", 1)[0]
        assert re.search(rf"{HOT}@(HZ|SH) x2", row), row
    finally:
        await http.aclose()


# ------------------------------------------------------------------ the CLI in-process


def env_for(home: Path, db_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMS_", "TEMPORAL_"))}
    env.update({"OMS_HOME": str(home), "OMS_DATABASE_URL": db_url, "OMS_LOG_FORMAT": "json",
                "OMS_SDK_METRICS_ADDRESS": "", **codec_keys.ENV, **extra})
    return env


def in_process(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
               env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """`oms ARGS` run in this process (the same `starter.run`), in `env`."""
    import starter

    for key in [k for k in os.environ if k.startswith(("OMS_", "TEMPORAL_"))]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith(("OMS_", "TEMPORAL_")):
            monkeypatch.setenv(key, value)
    capsys.readouterr()
    try:
        code = starter.run(list(args))
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def seed_one(factory: Any, order_id: str, *, search_key: bytes | None = None) -> str:
    """An order waiting for the buyer, written by the project's own persistence code."""
    from datetime import UTC, timedelta

    from benchmarks.seed import seed_order
    from models.db import transaction
    from tests.harness.documents import make_order

    at = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
    with transaction(factory) as session:
        doc = make_order(order_id, [("TSHIRT-RED-M", 1)])
        seed_order(session, doc, stage="awaiting_buyer", submitted_at=at,
                   stage_since=at + timedelta(minutes=5), search_key=search_key)
    return order_id


# ------------------------------------------------------------------ pure parts


def test_times_are_shown_on_the_merchants_clock_with_the_zone_named() -> None:
    assert localtime.local("2026-12-05T16:30:00+00:00") == "12-06 00:30:00"
    assert localtime.local("2026-12-05T16:30:00", "Europe/Berlin") == "12-05 17:30:00"
    assert localtime.local(None) == "—"
    assert localtime.label() == "Asia/Shanghai (UTC+08:00)"
    assert Settings(timezone="America/New_York").timezone == "America/New_York"
    with pytest.raises(ValueError, match="OMS_TIMEZONE"):
        Settings(timezone="Mars/Olympus")


def test_each_timeline_entry_is_a_sentence_in_both_languages_and_told_once() -> None:
    at = "2026-12-05T01:00:00+00:00"
    events = [
        {"at": at, "type": "received", "platform": "taobao", "lines": 2},
        {"at": at, "type": "stage", "stage": "checking", "previous": "received", "waiting_for": None},
        {"at": at, "type": "signal", "signal": "approve", "note": "已核实", "via": "update"},
        {"at": at, "type": "released", "shipments": ["A-1", "A-2"]},
        {"at": at, "type": "stage", "stage": "released", "previous": "reviewing", "waiting_for": "warehouse"},
        {"at": at, "type": "shipped", "shipment": "A-1", "carrier": "SF", "tracking_no": "SF1"},
        {"at": at, "type": "shipped", "shipment": "A-1", "carrier": "SF", "tracking_no": "SF1"},
        {"at": at, "type": "something_new", "x": 1},
    ]
    told = timeline.sentences(events)
    assert [t["type"] for t in told] == ["received", "stage", "signal", "released", "shipped",
                                         "something_new"]
    assert told[0]["zh"] == "收到 taobao 订单，共 2 行。"
    assert told[2]["zh"] == "操作员登记批准：备注 已核实。"
    assert told[2]["en"] == "Approval recorded by an operator: note 已核实."
    assert told[3]["en"] == "Released to the warehouse in 2 shipment(s)."
    assert told[4]["zh"] == "包裹 A-1 已发货，SF SF1。"
    assert all(t["zh"] and t["en"] for t in told)


def test_the_log_masker_masks_buyer_data_but_not_host_addresses() -> None:
    stream = io.StringIO()
    configure_logging(Settings(log_format="json", log_level="INFO"), stream=stream)
    log = structlog.get_logger("test")
    log.info("http service ready", address="127.0.0.1:8080")
    log.info("ui", address="http://localhost:8233/namespaces/default")
    log.info("buyer", phone="13812345678", detail="文三路100号3幢501室")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["address"] == "127.0.0.1:8080"
    assert lines[1]["address"] == "http://localhost:8233/namespaces/default"
    assert "文三路100号" not in stream.getvalue() and "13812345678" not in stream.getvalue()
    assert lines[2]["phone"] == "138****5678"


def test_list_status_and_report_show_times_in_the_merchants_zone(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from commands.report import write_report
    from models.db import make_engine, migrate, session_factory, transaction

    migrate(sqlite_url)
    engine = make_engine(sqlite_url)
    factory = session_factory(engine)
    order_id = seed_one(factory, "TZ-00000")  # created 2026-11-26 02:00 UTC
    env = env_for(tmp_path, sqlite_url)
    code, out, _ = in_process(monkeypatch, capsys, env, "list")
    assert code == 0
    assert "Asia/Shanghai (UTC+08:00)" in out and out.count("Asia/Shanghai") == 1
    assert f"{order_id:<24} 2026-11-26 10:00" in out
    code, out, _ = in_process(monkeypatch, capsys, env, "status", order_id)
    assert code == 0 and "created 2026-11-26 10:00:00  (times in Asia/Shanghai (UTC+08:00))" in out
    timeline_text = out.split("timeline:", 1)[1]  # sentences on the merchant's clock, not data
    assert "11-26 10:00:00  收到 " in timeline_text and "进入「待买家确认」，等待买家。" in timeline_text
    assert "Now awaiting buyer, waiting for buyer." in timeline_text and "{" not in timeline_text
    env["OMS_TIMEZONE"] = "Europe/London"
    code, out, _ = in_process(monkeypatch, capsys, env, "list")
    assert f"{order_id:<24} 2026-11-26 02:00" in out and "Europe/London (UTC+00:00)" in out
    env["OMS_TIMEZONE"] = "Nowhere/Else"
    code, _, err = in_process(monkeypatch, capsys, env, "list")
    assert code != 0 and "OMS_TIMEZONE" in err and "Traceback" not in err
    monkeypatch.delenv("OMS_TIMEZONE")

    with transaction(factory) as session:
        page = write_report(session, tmp_path / "report", tz="Asia/Shanghai").read_text("utf-8")
    engine.dispose()
    assert "times in Asia/Shanghai (UTC+08:00)" in page


async def test_the_cli_refuses_an_empty_confirm_too(dev_env: Any, tmp_path: Path) -> None:
    from tests.harness.documents import order_doc
    from tests.harness.stack import OmsStack, write_orders

    oms = OmsStack.for_env(dev_env, tmp_path / "oms")
    await oms.start_worker()
    try:
        await oms.load_sample()
        doc = order_doc("fixcli", address={"detail": "世纪大道"})
        order_id = doc["order_id"]
        path = write_orders(tmp_path / "orders.json", [doc])
        await oms.ok("submit", str(path))
        await oms.wait_for_stage(order_id, "awaiting_buyer")
        contacts = len((await oms.status(order_id))["contacts"])
        refused = await oms.cli("confirm", order_id, "--channel", "phone")
        assert refused.code == 1 and "nothing to confirm" in refused.out + refused.err, refused
        assert len((await oms.status(order_id))["contacts"]) == contacts
        await oms.ok("confirm", order_id, "--detail", "世纪大道100号2幢301室", "--note", "电话确认")
        await oms.wait_for_stage(order_id, "released")
    finally:
        oms.close()


def test_the_shipping_desks_entries_read_as_sentences_too() -> None:
    at = "2026-12-05T01:00:00+00:00"
    told = timeline.sentences([
        {"at": at, "type": "parcel", "shipment": "A-1", "parcel": "P1", "carrier": "SF",
         "waybill": "SF100", "hold": None, "reason": None},
        {"at": at, "type": "parcel", "shipment": "A-2", "carrier": None, "hold": "address",
         "reason": "the address is not confirmed"},
        {"at": at, "type": "parcel_failed", "shipment": "A-3", "error": "cainiao down"},
        {"at": at, "type": "waybills_voided", "waybills": ["SF100", "SF101"], "cancelled": []},
    ])
    assert [t["zh"] for t in told] == [
        "包裹 A-1 选定承运 SF，运单号 SF100。",
        "包裹 A-2 暂缓出单：the address is not confirmed。",
        "包裹 A-3 出单失败：cainiao down。",
        "作废 2 个运单号：SF100、SF101。",
    ]
    assert told[3]["en"] == "2 waybill(s) voided: SF100, SF101."
    told = timeline.sentences([
        {"at": at, "type": "parcel_readdressed", "parcel": "P1", "carrier": "ZTO",
         "old_waybill": "731001", "waybill": "731001", "hold": None, "reason": ""},
        {"at": at, "type": "parcel_readdressed", "parcel": "P2", "carrier": "YUNDA",
         "old_waybill": "YUNDA77001", "waybill": "YUNDA77002", "hold": None, "reason": ""},
        {"at": at, "type": "parcel_readdressed", "parcel": "P3", "carrier": None,
         "old_waybill": "731002", "waybill": None, "hold": "no_carrier",
         "reason": "no carrier serves this shipment"},
    ])
    assert [t["en"] for t in told] == [
        "Address changed: parcel P1 keeps waybill 731001 (not printed yet); its label prints the new address.",
        "Address changed: parcel P2: waybill YUNDA77001 voided, new waybill YUNDA77002 (YUNDA); "
        "print its label again.",
        "Parcel P3 held after the address change: no carrier serves this shipment.",
    ]
    assert told[1]["zh"] == "改址：包裹 P2 原运单号 YUNDA77001 作废，新运单号 YUNDA77002（YUNDA），请重新打印面单。"


def test_search_reindex_indexes_the_orders_kept_before_and_a_new_key(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`oms search reindex`: orders written without a key become findable by the buyer's
    name and phone once it is set; a new key replaces the old one's hashes."""
    from models.db import make_engine, migrate, session_factory, transaction
    from reads.search import Filters, search_orders

    migrate(sqlite_url)
    engine = make_engine(sqlite_url)
    factory = session_factory(engine)
    order_id = seed_one(factory, "RX-00001")  # no key: no name or phone in the index

    def by(q: str, key: bytes) -> list[str]:
        with transaction(factory) as session:
            found, _ = search_orders(session, q=q, filters=Filters(), secret=key)
        return [o["order_id"] for o in found]

    first, second = "first-key-" + "a" * 24, "second-key-" + "b" * 24
    assert by("张三", first.encode()) == []
    code, out, _ = in_process(monkeypatch, capsys, env_for(tmp_path, sqlite_url,
                                                           OMS_SEARCH_KEY=first), "search", "reindex")
    assert code == 0 and "1 order(s) indexed, with buyers' names" in out, out
    assert by("张三", first.encode()) == [order_id] and by("5678", first.encode()) == [order_id]
    code, out, _ = in_process(monkeypatch, capsys, env_for(tmp_path, sqlite_url,
                                                           OMS_SEARCH_KEY=second), "search", "reindex")
    assert code == 0
    assert by("张三", second.encode()) == [order_id] and by("张三", first.encode()) == []
    engine.dispose()
