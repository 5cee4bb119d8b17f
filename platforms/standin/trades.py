"""Trades in each platform's own shape (SPEC §5.10), for the stand-ins, tests and demo.

`taobao_trade` and `pdd_order` build one platform order from the few things a
test cares about (lines, buyer, times); the receiver goes in masked (Taobao,
with an ``oaid``) or as ``~ciphertext~`` (Pinduoduo), while its plaintext is
kept by the stand-in shop for the platform's decryption call.
`generate` spreads many such orders over a time span for the benchmark and
the demo.
"""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

CHINA = timezone(timedelta(hours=8), "Asia/Shanghai")
FMT = "%Y-%m-%d %H:%M:%S"

RECEIVER = {
    "name": "张三",
    "phone": "13812345678",
    "state": "浙江省",
    "city": "杭州市",
    "district": "西湖区",
    "address": "文三路100号3幢501室",
    "zip": "310000",
}


def china(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).astimezone(CHINA).strftime(FMT)


def stamp(platform: str, trade: dict[str, Any], ts: float) -> None:
    """Set the trade's modified time (``modified`` / ``updated_at``) to `ts`."""
    trade["modified" if platform == "taobao" else "updated_at"] = china(ts)


def modified_ts(platform: str, trade: dict[str, Any]) -> float | None:
    text = trade.get("modified" if platform == "taobao" else "updated_at")
    try:
        return datetime.strptime(str(text), FMT).replace(tzinfo=CHINA).timestamp()
    except ValueError:
        return None


def _mask_name(name: str) -> str:
    return name[:1] + "*" * max(1, len(name) - 1)


def _mask_phone(phone: str) -> str:
    return "*" * max(0, len(phone) - 4) + phone[-4:]


def _mask_detail(detail: str) -> str:
    return detail[:3] + "**" if len(detail) > 3 else "**"


def _cipher(key: str, field: str, value: str, version: int) -> str:
    digest = hashlib.sha256(f"{key}|{field}|{value}|{version}".encode()).hexdigest()
    return f"~{digest[:24]}~"


def receiver_fields(
    platform: str, key: str, receiver: dict[str, str], *, version: int = 0
) -> dict[str, Any]:
    """The receiver as the platform hands it out: masked (Taobao) or ciphertext (PDD)."""
    if platform == "taobao":
        return {
            "oaid": "oaid-" + hashlib.sha1(f"{key}|{receiver}|{version}".encode()).hexdigest()[:16],
            "receiver_name": _mask_name(receiver["name"]),
            "receiver_mobile": _mask_phone(receiver["phone"]),
            "receiver_phone": "",
            "receiver_address": _mask_detail(receiver["address"]),
            "receiver_state": receiver["state"],
            "receiver_city": receiver["city"],
            "receiver_district": receiver["district"],
            "receiver_town": "",
            "receiver_zip": receiver.get("zip", ""),
        }
    return {
        "province": receiver["state"],
        "city": receiver["city"],
        "town": receiver["district"],
        "address": _cipher(key, "address", receiver["address"], version),
        "receiver_address": _cipher(key, "receiver_address", receiver["address"], version),
        "receiver_name": _cipher(key, "receiver_name", receiver["name"], version),
        "receiver_phone": _cipher(key, "receiver_phone", receiver["phone"], version),
        "receiver_name_mask": _mask_name(receiver["name"]),
        "receiver_phone_mask": _mask_phone(receiver["phone"]),
        "receiver_address_mask": _mask_detail(receiver["address"]),
        "open_address_id": "addr-" + hashlib.sha1(f"{key}|{version}".encode()).hexdigest()[:12],
    }


def pdd_plain(receiver: dict[str, str]) -> dict[str, str]:
    """The plaintext a PDD stand-in keeps per ciphertext field."""
    return {
        "name": receiver["name"],
        "phone": receiver["phone"],
        "address": receiver["address"],
    }


def taobao_trade(
    tid: str,
    *,
    lines: list[tuple[str, int, str]],
    modified: float,
    status: str = "WAIT_SELLER_SEND_GOODS",
    post_fee: str = "0.00",
    discount_fee: str = "0.00",
    receiver: dict[str, str] | None = None,
    buyer_message: str = "",
    seller_memo: str = "",
    seller_flag: int = 0,
    created: float | None = None,
    pay_time: float | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """One TRADE (and its plaintext receiver); lines are (outer_sku_id, num, price yuan)."""
    receiver = dict(receiver or RECEIVER)
    created = modified - 60 if created is None else created
    paid = status not in ("WAIT_BUYER_PAY", "TRADE_CLOSED_BY_TAOBAO")
    orders = []
    goods = Decimal("0")
    for i, (sku, num, price) in enumerate(lines, start=1):
        line_total = Decimal(price) * num
        goods += line_total
        orders.append(
            {
                "oid": f"{tid}{i:02d}",
                "num_iid": 600000000000 + i,
                "sku_id": str(500000000 + i),
                "outer_iid": sku.split("-")[0],
                "outer_sku_id": sku,
                "title": f"商品 {sku}",
                "price": price,
                "num": num,
                "total_fee": f"{line_total:.2f}",
                "payment": f"{line_total:.2f}",
                "status": status,
                "refund_status": "NO_REFUND",
            }
        )
    payment = goods - Decimal(discount_fee) + Decimal(post_fee)
    trade: dict[str, Any] = {
        "tid": int(tid),
        "status": status,
        "type": "fixed",
        "created": china(created),
        "modified": china(modified),
        "pay_time": china(pay_time if pay_time is not None else created + 30) if paid else None,
        "payment": f"{payment:.2f}",
        "post_fee": post_fee,
        "total_fee": f"{goods:.2f}",
        "discount_fee": discount_fee,
        "alipay_no": f"2026{tid[-12:]}" if paid else None,
        "buyer_open_uid": f"AAH{tid[-8:]}",
        "buyer_nick": "t**1",
        "buyer_message": buyer_message,
        "seller_memo": seller_memo,
        "seller_flag": seller_flag,
        "orders": {"order": orders},
    }
    trade.update(receiver_fields("taobao", tid, receiver))
    return trade, receiver


def pdd_order(
    order_sn: str,
    *,
    lines: list[tuple[str, int, str]],
    modified: float,
    order_status: int = 1,
    refund_status: int = 1,
    postage: str = "0",
    discount: str = "0",
    receiver: dict[str, str] | None = None,
    buyer_memo: str = "",
    remark: str = "",
    last_ship_hours: float = 48,
) -> tuple[dict[str, Any], dict[str, str]]:
    """One PDD_ORDER (and its plaintext receiver); money goes out as yuan numbers."""
    receiver = dict(receiver or RECEIVER)
    created = modified - 60
    goods = Decimal("0")
    items = []
    for i, (sku, num, price) in enumerate(lines, start=1):
        goods += Decimal(price) * num
        items.append(
            {
                "goods_id": 100000 + i,
                "sku_id": 200000 + i,
                "outer_id": sku,
                "outer_goods_id": sku.split("-")[0],
                "goods_name": f"商品 {sku}",
                "goods_price": float(Decimal(price)),
                "goods_count": num,
            }
        )
    pay = goods - Decimal(discount) + Decimal(postage)
    order: dict[str, Any] = {
        "order_sn": order_sn,
        "order_status": order_status,
        "refund_status": refund_status,
        "confirm_time": china(created + 30),
        "created_time": china(created),
        "pay_time": china(created + 30),
        "updated_at": china(modified),
        "last_ship_time": china(created + last_ship_hours * 3600),
        "buyer_memo": buyer_memo,
        "remark": remark,
        "pay_amount": float(pay),
        "goods_amount": float(goods),
        "discount_amount": float(Decimal(discount)),
        "postage": float(Decimal(postage)),
        "pay_no": f"PAY{order_sn[-10:]}",
        "item_list": items,
    }
    order.update(receiver_fields("pdd", order_sn, receiver))
    return order, receiver


def generate(
    platform: str,
    count: int,
    *,
    start: float,
    end: float,
    skus: list[tuple[str, str]],
    seed: int = 7,
    first_id: int = 3912345678900000,
) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """`count` orders modified evenly over [start, end); skus are (code, price yuan)."""
    rng = random.Random(seed)
    out = []
    step = (end - start) / max(count, 1)
    for i in range(count):
        at = start + i * step
        chosen = rng.sample(skus, k=min(len(skus), rng.choice((1, 1, 2))))
        lines = [(sku, rng.randint(1, 3), price) for sku, price in chosen]
        if platform == "taobao":
            out.append(taobao_trade(str(first_id + i), lines=lines, modified=at))
        else:
            sn = f"261126-{first_id + i:015d}"
            out.append(pdd_order(sn, lines=lines, modified=at))
    return out
