"""Taobao / Tmall: a TRADE (SPEC §5.10) mapped to an order document (SPEC §3.9, §5.1).

* ``order_id`` ``taobao-<tid>``; each ORDER a line whose SKU is the merchant's code,
  ``outer_sku_id``, else ``outer_iid`` (an ORDER with neither cannot be imported);
* money from yuan strings, exactly: ``price`` per unit, the trade's ``discount_fee``,
  ``post_fee`` and ``payment`` (what the buyer paid) as discount, shipping fee and total,
  so that the review's arithmetic checks what the platform charged;
* ``buyer_message`` -> ``remarks``; ``seller_memo`` and ``seller_flag`` -> ``clerk_note``;
* ``ship_by`` = ``pay_time`` + the shop's ``ship_within`` (default 48 h);
* the receiver: state, city and district are plaintext; name, mobile and street come
  masked and are decrypted by ``taobao.top.oaid.decrypt`` with the trade's ``oaid``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from platforms.mapping import (
    Mapped,
    MappingProblem,
    PlatformView,
    Problem,
    Sealed,
    china_time,
    fingerprint,
    money_text,
    problem_from,
    text,
    yuan,
)

PLATFORM = "taobao"
DEFAULT_SHIP_WITHIN = timedelta(hours=48)
UNPAID = {"WAIT_BUYER_PAY", "TRADE_NO_CREATE_PAY", "PAY_PENDING"}
CLOSED = {"TRADE_CLOSED", "TRADE_CLOSED_BY_TAOBAO"}
SHIPPED = {"WAIT_BUYER_CONFIRM_GOODS", "TRADE_BUYER_SIGNED", "TRADE_FINISHED"}
REFUND = {
    "NO_REFUND": "none",
    "WAIT_SELLER_AGREE": "requested",
    "WAIT_BUYER_RETURN_GOODS": "requested",
    "WAIT_SELLER_CONFIRM_GOODS": "requested",
    "SELLER_REFUSE_BUYER": "none",
    "CLOSED": "closed",
    "SUCCESS": "refunded",
}
FLAGS = {0: "", 1: "红旗", 2: "黄旗", 3: "绿旗", 4: "蓝旗", 5: "紫旗"}


def order_id(tid: Any) -> str:
    return f"{PLATFORM}-{tid}"


def _sku(line: dict[str, Any], index: int) -> str:
    for name in ("outer_sku_id", "outer_iid"):
        value = line.get(name)
        if isinstance(value, str | int) and str(value).strip():
            return str(value).strip()
    raise MappingProblem(
        f"orders.order[{index}].outer_sku_id",
        "no merchant SKU code (商家编码): neither outer_sku_id nor outer_iid is set",
    )


def _qty(line: dict[str, Any], index: int) -> int:
    num = line.get("num")
    if isinstance(num, str) and num.strip().isdigit():
        num = int(num)
    if not isinstance(num, int) or isinstance(num, bool) or num <= 0:
        raise MappingProblem(f"orders.order[{index}].num", f"is not a positive count: {num!r}")
    return num


def _lines(trade: dict[str, Any]) -> list[dict[str, Any]]:
    orders = trade.get("orders")
    items = orders.get("order") if isinstance(orders, dict) else None
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list) or not items:
        raise MappingProblem("orders.order", "the trade has no lines")
    if not all(isinstance(i, dict) for i in items):
        raise MappingProblem("orders.order", "a line is not an object")
    return items


def _note(trade: dict[str, Any]) -> str | None:
    memo = text(trade.get("seller_memo"), 400)
    flag = trade.get("seller_flag")
    flag_name = FLAGS.get(flag, f"旗帜 {flag}") if isinstance(flag, int) else ""
    if not memo and not flag_name:
        return None
    parts = ["卖家备注"]
    if flag_name:
        parts.append(f"({flag_name})")
    return " ".join(parts) + (f": {memo}" if memo else "")


def view(trade: dict[str, Any], lines: list[dict[str, Any]]) -> PlatformView:
    status = str(trade.get("status") or "")
    refunds = {
        str(line.get("oid")): REFUND.get(str(line.get("refund_status") or "NO_REFUND"), "none")
        for line in lines
    }
    receiver = "|".join(
        str(trade.get(k) or "")
        for k in (
            "oaid",
            "receiver_state",
            "receiver_city",
            "receiver_district",
            "receiver_address",
        )
    )
    return PlatformView(
        status=status,
        paid=status not in UNPAID and status not in CLOSED and bool(trade.get("pay_time")),
        closed=status in CLOSED,
        shipped=status in SHIPPED,
        refunds=refunds,
        receiver=fingerprint(receiver),
        modified=str(trade.get("modified") or ""),
    )


def map_trade(trade: Any, *, shop: str, ship_within: timedelta = DEFAULT_SHIP_WITHIN) -> Mapped:
    """One TRADE -> `Mapped` (never raises; problems name the trade's field)."""
    if not isinstance(trade, dict):
        return Mapped("", PLATFORM, "", None, [Problem("(trade)", "is not a JSON object")])
    tid = trade.get("tid")
    if isinstance(tid, bool) or not isinstance(tid, int | str) or not str(tid).strip().isdigit():
        return Mapped("", PLATFORM, "", None, [Problem("tid", f"is not a trade id: {tid!r}")])
    tid = str(tid).strip()
    problems: list[Problem] = []
    doc: dict[str, Any] = {}

    def attempt(fn: Any, *args: Any, **kw: Any) -> Any:
        try:
            return fn(*args, **kw)
        except Exception as exc:  # every field problem is recorded, the others still read
            problems.append(problem_from(exc))
            return None

    items = attempt(_lines, trade) or []
    lines = []
    for i, line in enumerate(items):
        sku = attempt(_sku, line, i)
        qty = attempt(_qty, line, i)
        price = attempt(yuan, line.get("price"), f"orders.order[{i}].price")
        if sku is None or qty is None or price is None:
            continue
        entry: dict[str, Any] = {"sku": sku, "qty": qty, "unit_price": money_text(price)}
        if line.get("title"):
            entry["name"] = text(line.get("title"), 200)
        entry["platform_line_id"] = str(line.get("oid") or "")
        lines.append(entry)
    created = attempt(china_time, trade.get("created"), "created")
    pay_time = attempt(china_time, trade.get("pay_time"), "pay_time", required=False)
    discount = attempt(yuan, trade.get("discount_fee"), "discount_fee", required=False)
    post_fee = attempt(yuan, trade.get("post_fee"), "post_fee", required=False)
    payment = attempt(yuan, trade.get("payment"), "payment")
    the_view = view(trade, items) if items else None
    if problems:
        return Mapped(order_id(tid), PLATFORM, tid, None, problems, the_view)
    assert the_view is not None and created is not None and payment is not None
    cod = str(trade.get("type") or "") == "cod"
    doc = {
        "order_id": order_id(tid),
        "platform": PLATFORM,
        "shop": shop,
        "platform_order_id": tid,
        "created_at": created.isoformat(),
        "buyer": {"name": None, "phone": None, "id": text(trade.get("buyer_open_uid"), 100)},
        "address": {
            "country": "CN",
            "province": text(trade.get("receiver_state"), 50),
            "city": text(trade.get("receiver_city"), 50),
            "district": text(trade.get("receiver_district"), 50),
            "detail": None,
            "postal_code": text(trade.get("receiver_zip"), 20),
        },
        "lines": lines,
        "discount": money_text(discount or 0),
        "shipping_fee": money_text(post_fee or 0),
        "total": money_text(payment),
        "payment": {
            "status": "cod" if cod else ("paid" if the_view.paid else "pending"),
            "method": "cod" if cod else "alipay",
            "amount": money_text(payment) if the_view.paid else None,
            "transaction_id": text(trade.get("alipay_no"), 100) if the_view.paid else None,
        },
        "remarks": text(trade.get("buyer_message"), 500),
        "clerk_note": _note(trade),
        "receiver_masked": {
            "name": text(trade.get("receiver_name"), 100),
            "mobile": text(trade.get("receiver_mobile") or trade.get("receiver_phone"), 40),
            "detail": text(trade.get("receiver_address"), 200),
        },
    }
    if pay_time is not None:
        doc["ship_by"] = (pay_time + ship_within).isoformat()
    oaid = text(trade.get("oaid"), 200)
    sealed = Sealed(tid, oaid=oaid) if oaid else None
    mapped = Mapped(order_id(tid), PLATFORM, tid, doc, [], the_view, sealed)
    if sealed is None and mapped.importable:
        mapped.problems.append(Problem("oaid", "the trade carries no oaid to decrypt"))
        mapped.document = None
    return mapped


# ------------------------------------------------------------------ the gateway calls

INCREMENT = "taobao.trades.sold.increment.get"
DECRYPT = "taobao.top.oaid.decrypt"
SHIP = "taobao.logistics.offline.send"
DECRYPT_BATCH = 20  # taobao.top.oaid.decrypt takes at most 20 per call
PAGE_SIZE = 100
SCENE = "1001"  # the decryption's purpose as the platform asks for it: order fulfilment
FIELDS = (
    "tid,status,type,created,modified,pay_time,payment,post_fee,total_fee,discount_fee,"
    "alipay_no,buyer_open_uid,buyer_nick,buyer_message,seller_memo,seller_flag,oaid,"
    "receiver_name,receiver_mobile,receiver_phone,receiver_address,receiver_state,"
    "receiver_city,receiver_district,receiver_town,receiver_zip,orders"
)


def read_window(
    client: Any, start: str, end: str, *, page_size: int = PAGE_SIZE, on_page: Any = None
) -> list[Any]:
    """Every trade modified in [start, end] (China-time strings), read from the last page back.

    The list is newest first; a trade that changes while the window is read leaves it for a
    later window, moving those behind it one place forward, onto pages not read yet.
    """
    base = {"fields": FIELDS, "start_modified": start, "end_modified": end, "use_has_next": False}
    first = client.call(INCREMENT, base | {"page_no": 1, "page_size": page_size})
    total = int(first.get("total_results") or 0)
    pages = max(1, -(-total // page_size))
    if pages == 1:
        return listed_trades(first)
    seen: dict[str, Any] = {}
    for page in range(pages, 0, -1):
        body = client.call(INCREMENT, base | {"page_no": page, "page_size": page_size})
        for trade in listed_trades(body):
            key = str(trade.get("tid")) if isinstance(trade, dict) else repr(trade)
            seen.setdefault(key, trade)
        if on_page is not None:
            on_page(page)
    return list(seen.values())


def listed_trades(body: dict[str, Any]) -> list[Any]:
    from platforms.top import listed

    return listed(body.get("trades"), "trade")


def decrypt(client: Any, sealed: list[Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Receivers by tid, and the platform's reason per tid it refused.

    Batches of 20; a refused batch is asked again one by one, so one refused order never
    holds the others.
    """
    from platforms.errors import CallRefused
    from platforms.mapping import Receiver
    from platforms.top import listed

    got: dict[str, Receiver] = {}
    refused: dict[str, str] = {}

    def ask(batch: list[Any]) -> None:
        query = [{"tid": s.platform_order_id, "oaid": s.oaid, "scene": SCENE} for s in batch]
        try:
            body = client.call(DECRYPT, {"query_list": query})
        except CallRefused as exc:
            if len(batch) > 1:
                for one in batch:
                    ask([one])
                return
            refused[batch[0].platform_order_id] = exc.reason()
            return
        for r in listed(body.get("receiver_list"), "receiver"):
            tid = str(r.get("order_id") or r.get("tid") or "")
            if not r.get("name") or not (r.get("mobile") or r.get("phone")):
                continue
            got[tid] = Receiver(
                name=str(r["name"]),
                phone=str(r.get("mobile") or r.get("phone")),
                detail=str(r.get("address_detail") or ""),
                province=r.get("state") or None,
                city=r.get("city") or None,
                district=r.get("district") or None,
            )
        for s in batch:
            if s.platform_order_id not in got:
                refused.setdefault(
                    s.platform_order_id, "taobao.top.oaid.decrypt returned no receiver for it"
                )

    for i in range(0, len(sealed), DECRYPT_BATCH):
        ask(sealed[i : i + DECRYPT_BATCH])
    return got, refused
