"""The stand-in gateways, driven by the real clients over real HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from platforms.errors import (
    BadSign,
    CallRefused,
    GatewayUnavailable,
    PlatformError,
    RateLimited,
    SessionExpired,
)
from platforms.pdd import PddClient
from platforms.standin import StandinGateway, StandinShop, top_method
from platforms.standin.trades import china, pdd_order, taobao_trade
from platforms.top import TopClient, listed

NOW = time.time()
HOUR = 3600.0


def tb_shop() -> StandinShop:
    return StandinShop("taobao", app_key="tb-key", app_secret="tb-secret", session="tb-sess")


def pdd_shop() -> StandinShop:
    return StandinShop("pdd", app_key="pdd-key", app_secret="pdd-secret", session="pdd-tok")


@pytest.fixture
def taobao() -> Iterator[StandinGateway]:
    with StandinGateway(tb_shop()) as gateway:
        yield gateway


@pytest.fixture
def pdd() -> Iterator[StandinGateway]:
    with StandinGateway(pdd_shop()) as gateway:
        yield gateway


def top_client(gateway: StandinGateway, **kw: str) -> TopClient:
    args = {"app_key": "tb-key", "app_secret": "tb-secret", "session": "tb-sess"} | kw
    return TopClient(api_url=gateway.url, **args)


def pdd_client(gateway: StandinGateway, **kw: str) -> PddClient:
    args = {"app_key": "pdd-key", "app_secret": "pdd-secret", "session": "pdd-tok"} | kw
    return PddClient(api_url=gateway.url, **args)


def fill_taobao(shop: StandinShop, count: int, start: float, step: float) -> list[str]:
    tids = []
    for i in range(count):
        tid = str(3912345678900000 + i)
        shop.put(
            *taobao_trade(tid, lines=[("TSHIRT-RED-M", 1, "59.00")], modified=start + i * step)
        )
        tids.append(tid)
    return tids


def read_window(client: TopClient, start: float, end: float, size: int) -> list[str]:
    """The window from its last page back, as the sync reads it."""
    params = {"fields": "tid", "start_modified": china(start), "end_modified": china(end)}
    first = client.call(
        "taobao.trades.sold.increment.get", params | {"page_no": 1, "page_size": size}
    )
    pages = max(1, -(-first["total_results"] // size))
    seen = []
    for page in range(pages, 0, -1):
        body = client.call(
            "taobao.trades.sold.increment.get", params | {"page_no": page, "page_size": size}
        )
        seen += [str(t["tid"]) for t in listed(body.get("trades"), "trade")]
    return seen


def test_taobao_window_is_paged_newest_first(taobao: StandinGateway) -> None:
    tids = fill_taobao(taobao.shop, 25, NOW - HOUR, 60)
    client = top_client(taobao)
    body = client.call(
        "taobao.trades.sold.increment.get",
        {
            "fields": "tid",
            "start_modified": china(NOW - HOUR),
            "end_modified": china(NOW),
            "page_no": 1,
            "page_size": 10,
        },
    )
    assert body["total_results"] == 25 and body["has_next"] is True
    assert [str(t["tid"]) for t in body["trades"]["trade"]] == tids[::-1][:10]
    assert sorted(read_window(client, NOW - HOUR, NOW, 10)) == sorted(tids)


def test_taobao_window_longer_than_a_day_is_refused(taobao: StandinGateway) -> None:
    with pytest.raises(CallRefused, match="一天"):
        top_client(taobao).call(
            "taobao.trades.sold.increment.get",
            {"start_modified": china(NOW - 2 * 86400), "end_modified": china(NOW)},
        )


def test_trades_changing_while_the_window_is_read_are_not_missed(taobao: StandinGateway) -> None:
    shop = taobao.shop
    tids = fill_taobao(shop, 30, NOW - HOUR, 60)
    end = NOW - 60
    moved: list[str] = []

    def change_while_read(page: int, served: list[str]) -> None:
        # after the last page is served, three trades of the first page change: they leave
        # this window for a later one, and every trade behind them moves up one place.
        if page == 3 and not moved:
            for tid in tids[-3:]:
                shop.change(tid, buyer_message="请尽快发货", at=NOW)
                moved.append(tid)

    shop.faults.after_page = change_while_read
    seen = read_window(top_client(taobao), NOW - HOUR, end, 10)
    assert moved
    assert set(tids) - set(moved) <= set(seen)  # nothing that stayed in the window was missed
    shop.faults.after_page = None
    later = read_window(top_client(taobao), end, NOW + 1, 10)
    assert set(moved) <= set(later)  # the changed ones are in the next window


def test_a_wrong_secret_is_a_bad_sign(taobao: StandinGateway, pdd: StandinGateway) -> None:
    with pytest.raises(BadSign):
        top_client(taobao, app_secret="wrong").call("taobao.trades.sold.increment.get")
    with pytest.raises(BadSign):
        pdd_client(pdd, app_secret="wrong").call("pdd.open.decrypt.batch")


def test_faults_rate_limit_down_and_expired_session(taobao: StandinGateway) -> None:
    shop = taobao.shop
    fill_taobao(shop, 1, NOW - 100, 1)
    client = top_client(taobao)
    params = {"start_modified": china(NOW - HOUR), "end_modified": china(NOW)}
    shop.faults.rate_limit_next = 1
    with pytest.raises(RateLimited):
        client.call("taobao.trades.sold.increment.get", params)
    shop.faults.down_next = 1
    with pytest.raises(GatewayUnavailable, match="502"):
        client.call("taobao.trades.sold.increment.get", params)
    shop.faults.session_expired = True
    with pytest.raises(SessionExpired):
        client.call("taobao.trades.sold.increment.get", params)
    shop.renew_session("tb-sess-2")
    with pytest.raises(SessionExpired):
        client.call("taobao.trades.sold.increment.get", params)  # the old token stays invalid
    client.session = "tb-sess-2"
    assert client.call("taobao.trades.sold.increment.get", params)["total_results"] == 1


def test_taobao_decrypts_at_most_20_and_refuses_with_a_reason(taobao: StandinGateway) -> None:
    shop = taobao.shop
    tids = fill_taobao(shop, 21, NOW - HOUR, 60)
    query = [{"tid": t, "oaid": shop.trades[t]["oaid"], "scene": "1001"} for t in tids]
    client = top_client(taobao)
    with pytest.raises(PlatformError, match="20"):
        client.call("taobao.top.oaid.decrypt", {"query_list": query})
    body = client.call("taobao.top.oaid.decrypt", {"query_list": query[:20]})
    receivers = listed(body["receiver_list"], "receiver")
    assert len(receivers) == 20
    assert receivers[0]["name"] == "张三" and receivers[0]["mobile"] == "13812345678"
    assert shop.trades[tids[0]]["receiver_name"] == "张*"
    shop.faults.refuse_decrypt[tids[20]] = "风控拦截：该订单不可解密"
    with pytest.raises(CallRefused, match="风控拦截"):
        client.call("taobao.top.oaid.decrypt", {"query_list": query[20:]})


def test_taobao_write_back_once_split_and_refund(taobao: StandinGateway) -> None:
    shop = taobao.shop
    trade, receiver = taobao_trade(
        "3912345678901234", lines=[("A-1", 1, "10.00"), ("B-1", 2, "5.00")], modified=NOW - 60
    )
    shop.put(trade, receiver)
    client = top_client(taobao)
    first_oid = trade["orders"]["order"][0]["oid"]
    split = {
        "tid": "3912345678901234",
        "out_sid": "SF1",
        "company_code": "SF",
        "is_split": 1,
        "sub_tid": first_oid,
    }
    assert client.call("taobao.logistics.offline.send", split) == {"shipping": {"is_success": True}}
    assert shop.trades["3912345678901234"]["status"] == "SELLER_CONSIGNED_PART"
    with pytest.raises(CallRefused, match="已发货"):
        client.call("taobao.logistics.offline.send", split)
    rest = split | {"out_sid": "SF2", "sub_tid": trade["orders"]["order"][1]["oid"]}
    client.call("taobao.logistics.offline.send", rest)
    assert shop.trades["3912345678901234"]["status"] == "WAIT_BUYER_CONFIRM_GOODS"
    assert [s.tracking for s in shop.shipments] == ["SF1", "SF2"]
    other, receiver = taobao_trade("3912345678901235", lines=[("A-1", 1, "10.00")], modified=NOW)
    shop.put(other, receiver)
    shop.change_line("3912345678901235", 0, refund_status="WAIT_SELLER_AGREE")
    with pytest.raises(CallRefused, match="退款"):
        client.call(
            "taobao.logistics.offline.send",
            {"tid": "3912345678901235", "out_sid": "SF3", "company_code": "SF"},
        )


def test_pdd_window_rules_and_paging(pdd: StandinGateway) -> None:
    now = time.time()  # the window rules are about "now": taken when the test runs
    shop = pdd.shop
    for i in range(12):
        shop.put(
            *pdd_order(f"261126-{i:015d}", lines=[("A-1", 1, "9.90")], modified=now - 1500 + i * 60)
        )
    client = pdd_client(pdd)
    with pytest.raises(PlatformError, match="3分钟"):
        client.call(
            "pdd.order.number.list.increment.get",
            {"start_updated_at": int(now - 600), "end_updated_at": int(now - 60)},
        )
    with pytest.raises(PlatformError, match="30分钟"):
        client.call(
            "pdd.order.number.list.increment.get",
            {"start_updated_at": int(now - 4000), "end_updated_at": int(now - 200)},
        )
    window = {
        "start_updated_at": int(now - 1800) + 1,
        "end_updated_at": int(now - 181),
        "order_status": 5,
        "refund_status": 5,
        "is_lucky_flag": 0,
        "page_size": 5,
    }
    in_window = [
        k
        for k, o in shop.trades.items()
        if window["start_updated_at"]
        <= int(now - 1500 + int(k[-2:]) * 60)
        <= window["end_updated_at"]
    ]
    body = client.call("pdd.order.number.list.increment.get", window | {"page": 3})
    assert body["total_count"] == len(in_window) and body["has_next"] is False
    seen = []
    for page in range(3, 0, -1):
        body = client.call("pdd.order.number.list.increment.get", window | {"page": page})
        seen += [o["order_sn"] for o in body["order_sn_list"]]
    assert sorted(seen) == sorted(in_window) and len(seen) >= 10


def test_pdd_decrypts_per_item_and_writes_back_once(pdd: StandinGateway) -> None:
    shop = pdd.shop
    order, _ = pdd_order("261126-000000000000001", lines=[("A-1", 1, "9.90")], modified=NOW - 600)
    shop.put(order, _)
    other, _ = pdd_order("261126-000000000000002", lines=[("A-1", 1, "9.90")], modified=NOW - 600)
    shop.put(other, _)
    assert order["receiver_phone"].startswith("~") and order["receiver_phone"].endswith("~")
    shop.faults.refuse_decrypt["261126-000000000000002"] = "该订单已关闭，无法解密"
    client = pdd_client(pdd)
    data = [
        {"data_tag": o["order_sn"], "encrypted_data": o[f]}
        for o in (order, other)
        for f in ("receiver_name", "receiver_phone")
    ]
    body = client.call("pdd.open.decrypt.batch", {"data_list": data})
    results = body["data_decrypt_list"]
    assert [r["error_code"] for r in results] == [0, 0, 1000, 1000]
    assert results[0]["decrypted_data"] == "张三" and results[1]["decrypted_data"] == "13812345678"
    assert results[2]["error_msg"] == "该订单已关闭，无法解密"
    with pytest.raises(PlatformError, match="100"):
        client.call("pdd.open.decrypt.batch", {"data_list": data * 26})
    send = {"order_sn": order["order_sn"], "logistics_id": 44, "tracking_number": "SF9"}
    assert client.call("pdd.logistics.online.send", send) == {"is_success": True}
    with pytest.raises(CallRefused, match="已发货"):
        client.call("pdd.logistics.online.send", send)


def test_more_top_methods_can_be_registered(taobao: StandinGateway) -> None:
    @top_method("test.echo.get")
    def echo(shop: StandinShop, params: dict[str, str]) -> dict[str, object]:
        return {"echo": params["word"], "shop": shop.app_key}

    assert top_client(taobao).call("test.echo.get", {"word": "你好"}) == {
        "echo": "你好",
        "shop": "tb-key",
    }


def test_runs_from_the_command_line() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "platforms.standin",
            "--platform",
            "taobao",
            "--app-key",
            "k",
            "--app-secret",
            "s",
            "--session",
            "t",
            "--orders",
            "5",
            "--hours",
            "1",
            "--skus",
            "A-1=10.00,B-2=5.50",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        assert line[:2] == ["standin", "taobao"]
        client = TopClient(api_url=line[2], app_key="k", app_secret="s", session="t")
        body = client.call(
            "taobao.trades.sold.increment.get",
            {"start_modified": china(time.time() - 2 * HOUR), "end_modified": china(time.time())},
        )
        assert body["total_results"] == 5
        skus = {o["outer_sku_id"] for t in body["trades"]["trade"] for o in t["orders"]["order"]}
        assert skus <= {"A-1", "B-2"}
        json.dumps(body)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
