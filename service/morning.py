"""A morning's work for the console, left by `demo --keep` (issue 21).

The demo's own orders run on a fast-forwarded policy and are all done within a minute; a clerk
who then opens the console would find an empty queue. These twelve orders run on the
merchant's NORMAL policy (hours, not seconds), so they stay where a real morning leaves them:
three wait for the buyer (an address without a door number), three for payment, three for
stock (longjing tea, of which there is none), three for approval (over the threshold).
Buyers and addresses are made up; the totals add up, so nothing else is flagged.
"""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

from models.documents import OrderDocument
from models.settings import Settings

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample"

# (kind, buyer, phone, (province, city, district, detail), sku, qty, paid)
MORNING: tuple[tuple[str, str, str, tuple[str, str, str, str], str, int, bool], ...] = (
    ("buyer", "周晓梅", "13605711234", ("浙江省", "杭州市", "拱墅区", "湖墅南路"), "TSHIRT-RED-M", 1, True),
    ("buyer", "陈建国", "13917702345", ("上海市", "上海市", "静安区", "南京西路"), "MUG-WHITE", 2, True),
    ("buyer", "林雨桐", "13760213456", ("广东省", "广州市", "天河区", "体育西路"), "TSHIRT-BLUE-L", 1, True),
    ("payment", "王磊", "13502104567", ("江苏省", "南京市", "鼓楼区", "中山北路88号2幢301室"),
     "TSHIRT-RED-M", 2, False),
    ("payment", "赵敏", "13801015678", ("北京市", "北京市", "朝阳区", "建国路88号5号楼1203"), "MUG-WHITE", 1, False),
    ("payment", "孙浩", "13308816789", ("四川省", "成都市", "武侯区", "人民南路四段9号12栋2单元801"),
     "TSHIRT-BLUE-L", 1, False),
    ("stock", "刘芳", "13971237890", ("湖北省", "武汉市", "洪山区", "珞喻路1037号8栋502室"),
     "TEA-LONGJING-250G", 2, True),
    ("stock", "黄志强", "15005918901", ("福建省", "福州市", "鼓楼区", "五四路128号3幢1101室"),
     "TEA-LONGJING-250G", 1, True),
    ("stock", "吴静", "18653219012", ("山东省", "青岛市", "市南区", "香港中路76号6号楼1502"),
     "TEA-LONGJING-250G", 3, True),
    ("approval", "郑伟", "13770830123", ("江苏省", "苏州市", "姑苏区", "人民路1208号2幢1801室"),
     "PHONE-X1", 1, True),
    ("approval", "马丽", "18912341234", ("浙江省", "宁波市", "鄞州区", "天童南路588号1幢2203室"),
     "PHONE-X1", 1, True),
    ("approval", "何涛", "15821232345", ("上海市", "上海市", "浦东新区", "张江路88弄5号601室"),
     "PHONE-X1", 1, True),
)


def morning_orders(run_id: str, settings: Settings,
                   free: dict[str, int] | None = None) -> list[tuple[str, OrderDocument]]:
    """(what it waits for, the order) for each of the morning's orders, priced from the catalog.
    `free`: units of a SKU free in all warehouses now; an order meant to wait for stock asks
    for that many more, so that whatever the demo's own restocks left over cannot serve it."""
    from pricing.rules import compute_totals

    catalog = {c["sku"]: c for c in json.loads((SAMPLE_DIR / "catalog.json").read_text("utf-8"))}
    out = []
    for n, (kind, name, phone, (province, city, district, detail), sku, qty, paid) in enumerate(
        MORNING, start=1
    ):
        if kind == "stock":
            qty += (free or {}).get(sku, 0)
        price = Decimal(catalog[sku]["price"])
        totals = compute_totals([(sku, qty, price)], coupon_codes=[], province=province,
                                weight_g=int(catalog[sku]["weight_g"]) * qty,
                                policy=settings.policy.pricing)
        order_id = f"AM-{run_id}-{n:02d}".upper()
        payment: dict[str, Any] = {"status": "pending", "method": "alipay"}
        if paid:
            payment = {"status": "paid", "method": "alipay", "amount": str(totals.total),
                       "transaction_id": f"TX-{order_id}"}
        doc = OrderDocument.model_validate({
            "order_id": order_id, "platform": "taobao",
            "buyer": {"name": name, "phone": phone, "id": f"buyer-{order_id}"},
            "address": {"country": "CN", "province": province, "city": city,
                        "district": district, "detail": detail},
            "lines": [{"sku": sku, "qty": qty, "unit_price": str(price)}],
            "discount": str(totals.discount), "shipping_fee": str(totals.shipping_fee),
            "total": str(totals.total), "payment": payment,
        })
        out.append((kind, doc))
    return out


def free_units(factory: Any) -> dict[str, int]:
    """Units free now, by SKU, over every warehouse (the demo's restocks may leave some over:
    two of its orders short of one SKU at once each restock what the other waits for too)."""
    from models.db import transaction
    from reads.queries import stock_rows

    free: dict[str, int] = {}
    with transaction(factory) as session:
        for row in stock_rows(session):
            free[row["sku"]] = free.get(row["sku"], 0) + max(0, int(row["available"]))
    return free


async def leave_a_morning(client: Any, settings: Settings, run_id: str,
                          factory: Any = None) -> Counter[str]:
    """Submit the morning's orders on `settings`' own (normal) policy; how many wait for what."""
    import asyncio

    from commands.intake import submit_one

    free = await asyncio.to_thread(free_units, factory) if factory is not None else {}
    started: Counter[str] = Counter()
    for kind, doc in morning_orders(run_id, settings, free):
        if await submit_one(client, settings, doc) == "started":
            started[kind] += 1
    return started
