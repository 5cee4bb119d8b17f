"""The TOP and Pinduoduo clients against a real HTTP server on localhost.

The server records each form it receives and answers from a script, so each
test says exactly what the gateway answered and checks what the client made
of it.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

import httpx
import pytest

from platforms.errors import (
    BadSign,
    CallRefused,
    GatewayUnavailable,
    PlatformError,
    RateLimited,
    SessionExpired,
)
from platforms.gateway import md5_sign
from platforms.pdd import PddClient
from platforms.top import TopClient, listed, parse_top_time, response_key, top_time


class Scripted:
    """A real HTTP server answering each POST with the next scripted (status, body)."""

    def __init__(self) -> None:
        self.forms: list[dict[str, str]] = []
        self.content_types: list[str] = []
        self.answers: list[tuple[int, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                outer.forms.append(dict(parse_qsl(raw, keep_blank_values=True)))
                outer.content_types.append(self.headers.get("Content-Type", ""))
                status, body = outer.answers.pop(0) if outer.answers else (200, "{}")
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json;charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/router/rest"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, body: object, status: int = 200) -> None:
        self.answers.append((status, body if isinstance(body, str) else json.dumps(body)))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway() -> Iterator[Scripted]:
    server = Scripted()
    try:
        yield server
    finally:
        server.close()


NOW = datetime(2026, 11, 26, 2, 0, 0, tzinfo=UTC).timestamp()  # 10:00 in China


def top(gateway: Scripted, **kw: object) -> TopClient:
    return TopClient(
        api_url=gateway.url,
        app_key="12345678",
        app_secret="top-secret",
        session="sess-1",
        clock=lambda: NOW,
        **kw,  # type: ignore[arg-type]
    )


def pdd(gateway: Scripted, **kw: object) -> PddClient:
    return PddClient(
        api_url=gateway.url,
        app_key="client-1",
        app_secret="pdd-secret",
        session="token-1",
        clock=lambda: NOW,
        **kw,  # type: ignore[arg-type]
    )


def test_sign_is_uppercase_md5_of_secret_sorted_pairs_secret() -> None:
    expected = hashlib.md5(b"Sa1b2cxyzS").hexdigest().upper()
    assert md5_sign("S", {"c": "xyz", "a": "1", "b": "2"}) == expected
    assert md5_sign("S", {"c": "xyz", "a": "1", "b": "2", "sign": "old"}) == expected
    chinese = hashlib.md5("Sname张三S".encode()).hexdigest().upper()
    assert md5_sign("S", {"name": "张三"}) == chinese


def test_top_posts_a_signed_form_and_unwraps_the_response(gateway: Scripted) -> None:
    gateway.answer(
        {
            "trades_sold_increment_get_response": {
                "total_results": 1,
                "has_next": False,
                "trades": {"trade": [{"tid": 7}]},
            }
        }
    )
    with top(gateway) as client:
        body = client.call(
            "taobao.trades.sold.increment.get",
            {
                "fields": "tid,status",
                "page_no": 1,
                "page_size": 100,
                "use_has_next": True,
                "absent": None,
            },
        )
    assert body["total_results"] == 1
    assert listed(body["trades"], "trade") == [{"tid": 7}]
    form = gateway.forms[0]
    assert gateway.content_types[0].startswith("application/x-www-form-urlencoded")
    assert form["method"] == "taobao.trades.sold.increment.get"
    assert form["app_key"] == "12345678"
    assert form["session"] == "sess-1"
    assert form["timestamp"] == "2026-11-26 10:00:00"
    assert (form["format"], form["v"], form["sign_method"]) == ("json", "2.0", "md5")
    assert (form["page_no"], form["page_size"], form["use_has_next"]) == ("1", "100", "true")
    assert "absent" not in form
    pairs = "".join(f"{k}{form[k]}" for k in sorted(form) if k != "sign")
    assert form["sign"] == hashlib.md5(f"top-secret{pairs}top-secret".encode()).hexdigest().upper()


def test_top_sends_json_parameters_compactly_and_unwraps_non_taobao_methods(
    gateway: Scripted,
) -> None:
    gateway.answer(
        {
            "cainiao_waybill_ii_get_response": {
                "modules": {"waybill_cloud_print_response": [{"waybill_code": "SF1"}]}
            }
        }
    )
    request = {"cp_code": "SF", "trade_order_info_dtos": [{"object_id": "p1"}]}
    body = top(gateway).call(
        "cainiao.waybill.ii.get", {"param_waybill_cloud_print_apply_new_request": request}
    )
    assert body["modules"]["waybill_cloud_print_response"][0]["waybill_code"] == "SF1"
    sent = gateway.forms[0]["param_waybill_cloud_print_apply_new_request"]
    assert json.loads(sent) == request
    assert " " not in sent


def test_response_names() -> None:
    assert response_key("taobao.trades.sold.increment.get") == "trades_sold_increment_get_response"
    assert response_key("taobao.top.oaid.decrypt") == "top_oaid_decrypt_response"
    assert response_key("taobao.logistics.offline.send") == "logistics_offline_send_response"
    assert response_key("cainiao.waybill.ii.get") == "cainiao_waybill_ii_get_response"


def test_top_times_are_china_time() -> None:
    at = datetime(2026, 11, 26, 16, 30, tzinfo=UTC)
    assert top_time(at) == "2026-11-27 00:30:00"
    assert parse_top_time("2026-11-27 00:30:00") == at
    with pytest.raises(ValueError):
        top_time(datetime(2026, 11, 26, 16, 30))


@pytest.mark.parametrize(
    ("error", "cls", "retryable"),
    [
        (
            {
                "code": 7,
                "msg": "App Call Limited",
                "sub_code": "accesscontrol.limited-by-app-access-count",
            },
            RateLimited,
            True,
        ),
        (
            {"code": 27, "msg": "Invalid session", "sub_code": "invalid-sessionkey"},
            SessionExpired,
            False,
        ),
        ({"code": 25, "msg": "Invalid signature"}, BadSign, False),
        (
            {
                "code": 15,
                "msg": "Remote service error",
                "sub_code": "isv.logistics-offline-service-error:B04",
                "sub_msg": "订单已退款",
            },
            CallRefused,
            False,
        ),
        (
            {
                "code": 15,
                "msg": "Remote service error",
                "sub_code": "isp.top-remote-connection-timeout",
            },
            GatewayUnavailable,
            True,
        ),
        ({"code": 11, "msg": "Insufficient isv permissions"}, PlatformError, False),
    ],
)
def test_top_errors_are_classified_by_code(
    gateway: Scripted, error: dict[str, object], cls: type[PlatformError], retryable: bool
) -> None:
    gateway.answer({"error_response": error})
    with pytest.raises(PlatformError) as caught:
        top(gateway).call("taobao.logistics.offline.send", {"tid": "1"})
    assert type(caught.value) is cls
    assert caught.value.retryable is retryable
    assert caught.value.code == str(error["code"])
    assert str(error["msg"]) in caught.value.reason()
    if "sub_msg" in error:
        assert "订单已退款" in caught.value.reason()
        assert caught.value.details()["sub_code"] == error["sub_code"]


def test_gateway_down_or_garbled_is_unavailable_and_retryable(gateway: Scripted) -> None:
    gateway.answer("<html>bad gateway</html>", status=502)
    gateway.answer("<html>ok?</html>", status=200)
    gateway.answer({"something_else": {}})
    client = top(gateway)
    for _ in range(3):
        with pytest.raises(GatewayUnavailable) as caught:
            client.call("taobao.trades.sold.increment.get")
        assert caught.value.retryable
    dead = TopClient(api_url="http://127.0.0.1:9/router/rest", app_key="k", app_secret="s")
    with pytest.raises(GatewayUnavailable) as caught:
        dead.call("taobao.trades.sold.increment.get")
    assert "network error" in caught.value.reason()


def test_retries_rate_limits_with_backoff_then_succeeds(gateway: Scripted) -> None:
    limited = {"error_response": {"code": 7, "msg": "App Call Limited"}}
    gateway.answer(limited)
    gateway.answer(limited)
    gateway.answer({"logistics_offline_send_response": {"shipping": {"is_success": True}}})
    slept: list[float] = []
    client = top(gateway, attempts=4, backoff=0.5, sleep=slept.append)
    body = client.call("taobao.logistics.offline.send", {"tid": "1", "out_sid": "SF1"})
    assert body == {"shipping": {"is_success": True}}
    assert slept == [0.5, 1.0]
    assert client.calls == 3
    # an expired session is never retried: the token must be renewed first
    gateway.answer({"error_response": {"code": 27, "msg": "Invalid session"}})
    with pytest.raises(SessionExpired):
        client.call("taobao.logistics.offline.send", {"tid": "1"})
    assert client.calls == 4 and slept == [0.5, 1.0]


def test_secret_and_session_never_in_repr(gateway: Scripted) -> None:
    client = top(gateway)
    assert "top-secret" not in repr(client) and "sess-1" not in repr(client)


def test_system_parameters_cannot_be_overridden(gateway: Scripted) -> None:
    with pytest.raises(ValueError, match="sign"):
        top(gateway).call("taobao.trades.sold.increment.get", {"sign": "forged"})
    with pytest.raises(ValueError, match="app_key"):
        top(gateway).call("taobao.trades.sold.increment.get", {"app_key": "other"})


def test_missing_credentials_name_the_field() -> None:
    with pytest.raises(ValueError, match="app_secret"):
        TopClient(api_url="http://x", app_key="k", app_secret="")
    with pytest.raises(ValueError, match="api_url"):
        PddClient(api_url="", app_key="k", app_secret="s")


async def test_top_async_call_on_a_shared_httpx_client(gateway: Scripted) -> None:
    gateway.answer(
        {"top_oaid_decrypt_response": {"receiver_list": {"receiver": [{"name": "张三"}]}}}
    )
    async with httpx.AsyncClient() as http:
        client = top(gateway, ahttp=http)
        body = await client.acall(
            "taobao.top.oaid.decrypt",
            {"query_list": [{"tid": "1", "oaid": "o1", "scene": "1001"}]},
        )
        await client.aclose()  # the shared client stays open for its owner
        assert not http.is_closed
    assert listed(body["receiver_list"], "receiver") == [{"name": "张三"}]
    assert json.loads(gateway.forms[0]["query_list"])[0]["oaid"] == "o1"


async def test_async_retries_then_gives_up_with_the_last_error(gateway: Scripted) -> None:
    for _ in range(2):
        gateway.answer("down", status=503)
    client = top(gateway, attempts=2, backoff=0.01)
    with pytest.raises(GatewayUnavailable, match="http 503"):
        await client.acall("taobao.trades.sold.increment.get")
    assert client.calls == 2
    await client.aclose()


def test_pdd_posts_a_signed_form_and_unwraps_the_single_response(gateway: Scripted) -> None:
    gateway.answer(
        {
            "order_sn_increment_get_response": {
                "total_count": 0,
                "has_next": False,
                "order_sn_list": [],
            }
        }
    )
    body = pdd(gateway).call(
        "pdd.order.number.list.increment.get",
        {
            "start_updated_at": 1764100000,
            "end_updated_at": 1764101800,
            "order_status": 5,
            "refund_status": 5,
            "is_lucky_flag": 0,
            "page": 1,
            "page_size": 100,
        },
    )
    assert body == {"total_count": 0, "has_next": False, "order_sn_list": []}
    form = gateway.forms[0]
    assert form["type"] == "pdd.order.number.list.increment.get"
    assert form["client_id"] == "client-1"
    assert form["access_token"] == "token-1"
    assert form["timestamp"] == str(int(NOW))
    assert form["data_type"] == "JSON"
    assert form["start_updated_at"] == "1764100000"
    pairs = "".join(f"{k}{form[k]}" for k in sorted(form) if k != "sign")
    assert form["sign"] == hashlib.md5(f"pdd-secret{pairs}pdd-secret".encode()).hexdigest().upper()


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (10019, SessionExpired),
        (70031, RateLimited),
        (10016, BadSign),
        (20004, CallRefused),
        (10000, PlatformError),
    ],
)
def test_pdd_errors_are_classified_by_code(
    gateway: Scripted, code: int, cls: type[PlatformError]
) -> None:
    gateway.answer(
        {
            "error_response": {
                "error_code": code,
                "error_msg": "错误",
                "sub_code": "x",
                "sub_msg": "说明",
            }
        }
    )
    with pytest.raises(PlatformError) as caught:
        pdd(gateway).call("pdd.logistics.online.send", {"order_sn": "1"})
    assert type(caught.value) is cls
    assert caught.value.platform == "pdd" and caught.value.code == str(code)
    assert "说明" in caught.value.reason()
