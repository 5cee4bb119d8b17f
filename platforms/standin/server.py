"""A local stand-in of the TOP and Pinduoduo gateways (SPEC §5.10), for tests and the demo.

`StandinGateway(shop).start()` serves one `StandinShop` over real HTTP on
127.0.0.1 (port 0 by default: a free one) from a background thread;
``python -m platforms.standin`` runs one from the command line. It checks
what the real gateways check (the app key, the MD5 sign, the session, each
call's windows and sizes) and answers in their shapes, from the shop's
in-memory trades, with the shop's faults.

Calls are dispatched through two small registries, `TOP_METHODS` and
`PDD_METHODS`: ``@top_method("cainiao.waybill.ii.get")`` on a function
``(shop, params) -> dict`` adds a TOP call (the shipping desk adds its
waybill calls so). A handler raises `Refuse` for an error answer.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

from platforms.gateway import md5_sign
from platforms.standin.shop import Shipment, StandinShop, trade_key
from platforms.standin.trades import CHINA, FMT, modified_ts

Handler = Callable[[StandinShop, dict[str, str]], dict[str, Any]]
TOP_METHODS: dict[str, Handler] = {}
PDD_METHODS: dict[str, tuple[str, Handler]] = {}  # type -> (response name, handler)


class Refuse(Exception):  # noqa: N818 (an answer, not a failure of the stand-in)
    """An error answer: TOP ``code``/``msg``/``sub_code``/``sub_msg`` (PDD ``error_*``)."""

    def __init__(self, code: int, msg: str, sub_code: str = "", sub_msg: str = "") -> None:
        super().__init__(msg)
        self.code, self.msg, self.sub_code, self.sub_msg = code, msg, sub_code, sub_msg


def top_method(name: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        TOP_METHODS[name] = fn
        return fn

    return register


def pdd_method(name: str, response: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        PDD_METHODS[name] = (response, fn)
        return fn

    return register


# error codes of each platform (the clients classify the same ones)
TOP_ERRORS = {"limited": 7, "session": 27, "sign": 25, "refused": 15, "app_key": 29, "args": 41}
PDD_ERRORS = {
    "limited": 70031,
    "session": 10019,
    "sign": 10016,
    "refused": 20004,
    "app_key": 10016,
    "args": 10000,
}


def _int(
    params: dict[str, str], name: str, *, default: int | None = None, high: int = 10**12
) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        if default is None:
            raise Refuse(41, "Invalid arguments", f"isv.missing-parameter:{name}", f"{name} 必填")
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Refuse(
            41, "Invalid arguments", f"isv.invalid-parameter:{name}", f"{name} 非整数"
        ) from None
    if not 0 < value <= high:
        raise Refuse(41, "Invalid arguments", f"isv.invalid-parameter:{name}", f"{name} 超出范围")
    return value


def _top_time(params: dict[str, str], name: str) -> float:
    try:
        return datetime.strptime(params[name], FMT).replace(tzinfo=CHINA).timestamp()
    except (KeyError, ValueError):
        raise Refuse(
            41,
            "Invalid arguments",
            f"isv.invalid-parameter:{name}",
            f"{name} 须为 yyyy-MM-dd HH:mm:ss",
        ) from None


def _window(shop: StandinShop, start: float, end: float) -> list[dict[str, Any]]:
    """Trades modified in [start, end], newest first (ties: larger id first)."""
    with shop.lock:
        chosen = []
        for key, trade in shop.trades.items():
            at = shop.modified_at.get(key) if key in shop.modified_at else None
            if at is None:  # a trade a test put in by hand
                at = modified_ts(shop.platform, trade)
            if at is not None and start <= at <= end:
                chosen.append((at, key, trade))
    chosen.sort(key=lambda item: (item[0], item[1]), reverse=True)
    return [json.loads(json.dumps(t)) for _, _, t in chosen]


def _page(
    shop: StandinShop, rows: list[dict[str, Any]], page: int, size: int
) -> list[dict[str, Any]]:
    served = rows[(page - 1) * size : page * size]
    hook = shop.faults.after_page
    if hook is not None:
        hook(page, [trade_key(shop.platform, t) for t in served])
    return served


@top_method("taobao.trades.sold.increment.get")
def _tb_increment(shop: StandinShop, params: dict[str, str]) -> dict[str, Any]:
    start, end = _top_time(params, "start_modified"), _top_time(params, "end_modified")
    if end < start or end - start > 86400:
        raise Refuse(
            15,
            "Remote service error",
            "isv.invalid-parameter:end_modified",
            "end_modified - start_modified 不能超过一天",
        )
    size = _int(params, "page_size", default=40, high=100)
    page = _int(params, "page_no", default=1)
    rows = _window(shop, start, end)
    served = _page(shop, rows, page, size)
    return {
        "total_results": len(rows),
        "has_next": page * size < len(rows),
        "trades": {"trade": served},
    }


@top_method("taobao.top.oaid.decrypt")
def _tb_decrypt(shop: StandinShop, params: dict[str, str]) -> dict[str, Any]:
    try:
        queries = json.loads(params["query_list"])
        assert isinstance(queries, list) and all(isinstance(q, dict) for q in queries)
    except (KeyError, ValueError, AssertionError):
        raise Refuse(
            41, "Invalid arguments", "isv.invalid-parameter:query_list", "query_list 须为 JSON 数组"
        ) from None
    if not 0 < len(queries) <= 20:
        raise Refuse(
            41, "Invalid arguments", "isv.invalid-parameter:query_list", "query_list 最多 20 条"
        )
    out = []
    with shop.lock:
        for q in queries:
            tid, oaid = str(q.get("tid")), q.get("oaid")
            reason = shop.faults.refuse_decrypt.get(tid)
            if reason:
                raise Refuse(15, "Remote service error", "isv.oaid-decrypt-refused", reason)
            trade = shop.trades.get(tid)
            if trade is None or trade.get("oaid") != oaid or tid not in shop.plain:
                raise Refuse(
                    15, "Remote service error", "isv.oaid-invalid", f"oaid 与订单 {tid} 不符"
                )
            p = shop.plain[tid]
            shop.decrypted.append((tid, str(q.get("scene"))))
            out.append(
                {
                    "order_id": tid,
                    "oaid": oaid,
                    "name": p["name"],
                    "mobile": p["phone"],
                    "phone": "",
                    "state": p["state"],
                    "city": p["city"],
                    "district": p["district"],
                    "town": "",
                    "address_detail": p["address"],
                }
            )
    return {"receiver_list": {"receiver": out}}


def _ship(shop: StandinShop, tid: str, tracking: str, carrier: str, sub: list[str]) -> None:
    with shop.lock:
        trade = shop.trades.get(tid)
        if trade is None:
            raise Refuse(
                15,
                "Remote service error",
                "isv.logistics-offline-service-error:B01",
                f"订单 {tid} 不存在",
            )
        reason = shop.faults.refuse_ship.get(tid)
        if reason:
            raise Refuse(
                15, "Remote service error", "isv.logistics-offline-service-error:B04", reason
            )
        if shop.platform == "taobao":
            refunding = [
                o
                for o in trade["orders"]["order"]
                if o.get("refund_status")
                not in (None, "NO_REFUND", "CLOSED", "SELLER_REFUSE_BUYER")
            ]
            if refunding:
                raise Refuse(
                    15,
                    "Remote service error",
                    "isv.logistics-offline-service-error:B04",
                    "订单退款中，不能发货",
                )
            done = [s for s in shop.shipments if s.tid == tid]
            whole_done = any(not s.sub_tids for s in done)
            shipped_oids = {o for s in done for o in s.sub_tids}
            if done and (whole_done or not sub or set(sub) <= shipped_oids):
                raise Refuse(
                    15,
                    "Remote service error",
                    "isv.logistics-offline-service-error:B27",
                    "订单已发货",
                )
        else:
            if trade.get("refund_status") in (2, 3, 4):
                raise Refuse(20004, "业务错误", "order_refunding", "订单退款中，不能发货")
            if any(s.tid == tid for s in shop.shipments):
                raise Refuse(20004, "业务错误", "order_already_shipped", "订单已发货")
        shop.shipments.append(Shipment(tid, tracking, carrier, sub, shop.clock()))
        if shop.platform == "taobao":
            all_oids = {str(o["oid"]) for o in trade["orders"]["order"]}
            shipped = {o for s in shop.shipments if s.tid == tid for o in s.sub_tids}
            whole = not sub or all_oids <= shipped
            trade["status"] = "WAIT_BUYER_CONFIRM_GOODS" if whole else "SELLER_CONSIGNED_PART"
        else:
            trade["order_status"] = 2


@top_method("taobao.logistics.offline.send")
def _tb_send(shop: StandinShop, params: dict[str, str]) -> dict[str, Any]:
    for name in ("tid", "out_sid", "company_code"):
        if not params.get(name):
            raise Refuse(41, "Invalid arguments", f"isv.missing-parameter:{name}", f"{name} 必填")
    sub: list[str] = []
    if params.get("is_split") in ("1", "true"):
        sub = [s for s in params.get("sub_tid", "").split(",") if s]
        if not sub:
            raise Refuse(
                41, "Invalid arguments", "isv.missing-parameter:sub_tid", "拆单发货须给出 sub_tid"
            )
    _ship(shop, params["tid"], params["out_sid"], params["company_code"], sub)
    return {"shipping": {"is_success": True}}


@pdd_method("pdd.order.number.list.increment.get", "order_sn_increment_get_response")
def _pdd_increment(shop: StandinShop, params: dict[str, str]) -> dict[str, Any]:
    start = _int(params, "start_updated_at")
    end = _int(params, "end_updated_at")
    if end < start or end - start > 1800:
        raise Refuse(10000, "参数错误", "invalid_time_range", "时间范围不能超过30分钟")
    if end > shop.clock() - 180:
        raise Refuse(10000, "参数错误", "invalid_end_time", "结束时间须早于当前时间3分钟")
    size = _int(params, "page_size", default=100, high=100)
    page = _int(params, "page", default=1)
    rows = _window(shop, start, end)
    return {
        "total_count": len(rows),
        "has_next": page * size < len(rows),
        "order_sn_list": _page(shop, rows, page, size),
    }


@pdd_method("pdd.open.decrypt.batch", "open_decrypt_batch_response")
def _pdd_decrypt(shop: StandinShop, params: dict[str, str]) -> dict[str, Any]:
    try:
        items = json.loads(params["data_list"])
        assert isinstance(items, list) and all(isinstance(i, dict) for i in items)
    except (KeyError, ValueError, AssertionError):
        raise Refuse(10000, "参数错误", "invalid_data_list", "data_list 须为 JSON 数组") from None
    if not 0 < len(items) <= 100:
        raise Refuse(10000, "参数错误", "invalid_data_list", "data_list 最多 100 条")
    out = []
    with shop.lock:
        for item in items:
            tag, data = str(item.get("data_tag")), str(item.get("encrypted_data"))
            plain = shop.ciphertexts.get(data)
            refused = shop.faults.refuse_decrypt.get(tag)
            if refused or plain is None:
                out.append(
                    {
                        "data_tag": tag,
                        "encrypted_data": data,
                        "decrypted_data": None,
                        "error_code": 1000,
                        "error_msg": refused or "密文无效",
                    }
                )
                continue
            shop.decrypted.append((tag, data))
            out.append(
                {"data_tag": tag, "encrypted_data": data, "decrypted_data": plain, "error_code": 0}
            )
    return {"data_decrypt_list": out}


@pdd_method("pdd.logistics.online.send", "logistics_online_send_response")
def _pdd_send(shop: StandinShop, params: dict[str, str]) -> dict[str, Any]:
    for name in ("order_sn", "logistics_id", "tracking_number"):
        if not params.get(name):
            raise Refuse(10000, "参数错误", f"missing_{name}", f"{name} 必填")
    _ship(shop, params["order_sn"], params["tracking_number"], params["logistics_id"], [])
    return {"is_success": True}


class StandinGateway:
    """One stand-in shop served over HTTP (see the module's docstring)."""

    def __init__(self, shop: StandinShop, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.shop = shop
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body leave in two writes: without this, Nagle's algorithm and the
            # client's delayed ACK add ~40 ms to every call on a kept-alive connection
            disable_nagle_algorithm = True

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8", errors="replace")
                status, body = gateway.answer(dict(parse_qsl(raw, keep_blank_values=True)))
                data = body.encode()
                self.send_response(status)
                ctype = "application/json" if status == 200 else "text/html"
                self.send_header("Content-Type", f"{ctype};charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/router/rest"

    def start(self) -> StandinGateway:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> StandinGateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- one call ---------------------------------------------------------------------
    def answer(self, form: dict[str, str]) -> tuple[int, str]:
        shop = self.shop
        taobao = shop.platform == "taobao"
        method = form.get("method" if taobao else "type", "")
        errors = TOP_ERRORS if taobao else PDD_ERRORS
        with shop.lock:
            shop.calls[method] += 1
            faults = shop.faults
            if faults.down_next > 0 or faults.down_until > shop.clock():
                faults.down_next = max(0, faults.down_next - 1)
                return 502, "<html><body>502 Bad Gateway</body></html>"
        try:
            if form.get("app_key" if taobao else "client_id") != shop.app_key:
                raise Refuse(errors["app_key"], "Invalid app Key", "isv.appkey-not-exists")
            if form.get("sign") != md5_sign(shop.app_secret, form):
                raise Refuse(errors["sign"], "Invalid signature", "isv.invalid-signature")
            with shop.lock:
                if faults.rate_limit_next > 0:
                    faults.rate_limit_next -= 1
                    raise Refuse(
                        errors["limited"],
                        "App Call Limited",
                        "accesscontrol.limited-by-app-access-count",
                        "This ban will last for 1 more seconds",
                    )
                token = form.get("session" if taobao else "access_token")
                if faults.session_expired or token != shop.session:
                    raise Refuse(
                        errors["session"],
                        "Invalid session",
                        "invalid-sessionkey",
                        "SessionKey非法或已过期",
                    )
            if taobao:
                handler = TOP_METHODS.get(method)
                if handler is None:
                    raise Refuse(22, "Invalid method", "isv.invalid-method", method)
                body = handler(shop, form)
                name = method.removeprefix("taobao.").replace(".", "_") + "_response"
                return 200, json.dumps({name: body}, ensure_ascii=False)
            entry = PDD_METHODS.get(method)
            if entry is None:
                raise Refuse(10000, "type 不存在", "invalid_type", method)
            response_name, handler = entry
            return 200, json.dumps({response_name: handler(shop, form)}, ensure_ascii=False)
        except Refuse as refused:
            code = refused.code
            if not taobao and code == 41:  # argument errors of shared helpers
                code = errors["args"]
            if taobao:
                error = {
                    "code": code,
                    "msg": refused.msg,
                    "sub_code": refused.sub_code,
                    "sub_msg": refused.sub_msg,
                }
            else:
                error = {
                    "error_code": code,
                    "error_msg": refused.msg,
                    "sub_code": refused.sub_code,
                    "sub_msg": refused.sub_msg,
                }
            return 200, json.dumps({"error_response": error}, ensure_ascii=False)
