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
        receiver=receiver,
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
