"""Throughput of the pure order check on one core.

Generates 10,000 varied orders (deterministic seed; about half clean, the rest
with one or more of the flaws the check looks for), then runs `check_order`
over all of them and prints orders per second and the findings by code.

    .venv/bin/python benchmarks/check_rules.py [--orders N] [--seed S]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from intake import check as check_rules  # noqa: E402
from intake.items import computed_total  # noqa: E402
from models.documents import OrderDocument  # noqa: E402
from models.settings import Policy  # noqa: E402
from models.types import CatalogEntry, FraudContext  # noqa: E402

TARGET_PER_SECOND = 2000

ADDRESSES = [
    ("浙江省", "杭州市", "西湖区", "310000"),
    ("浙江省", "杭州市", "滨江区", "310051"),
    ("浙江省", "宁波市", "鄞州区", "315100"),
    ("江苏省", "南京市", "鼓楼区", "210009"),
    ("江苏省", "苏州市", "吴中区", "215100"),
    ("广东省", "深圳市", "南山区", "518000"),
    ("广东省", "广州市", "天河区", "510630"),
    ("广东省", "东莞市", "长安镇", "523850"),
    ("四川省", "成都市", "武侯区", "610041"),
    ("湖北省", "武汉市", "洪山区", "430070"),
    ("上海市", "上海市", "浦东新区", "200120"),
    ("上海", "上海", "徐汇区", "200030"),
    ("北京市", "北京市", "朝阳区", "100020"),
    ("北京市", "市辖区", "海淀区", "100080"),
    ("重庆市", "重庆市", "渝中区", "400010"),
    ("天津市", "天津市", "南开区", "300100"),
    ("新疆维吾尔自治区", "乌鲁木齐市", "天山区", "830000"),
    ("广西壮族自治区", "南宁市", "青秀区", "530022"),
    ("广西", "桂林", "七星区", "541004"),
    ("内蒙古自治区", "呼和浩特市", "新城区", "010050"),
    ("浙江省", "杭州市", "临平区", "311100"),  # 2021
    ("吉林省", "四平市", "公主岭市", "136100"),  # a former location: 长春市 since 2020
    ("湖北省", "仙桃市", "郑场镇", "433000"),  # run by the province, a town as the district
    ("台湾", "台北市", "大安区", "106"),
]
STREETS = ["文三路", "中山路", "人民大道", "解放路", "建设路", "长江路", "科技园南路", "学院路"]
NAMES = ["张三", "李娜", "王先生", "欧阳娜娜", "陈静", "刘洋", "阿卜杜热合曼·买买提", "赵敏"]
PRODUCTS = [
    CatalogEntry(sku="TSHIRT-RED-M", name="红色纯棉T恤 M码", price=Decimal("59.00"),
                 attributes={"color": "red", "size": "M"}, usual_qty=3),
    CatalogEntry(sku="TSHIRT-BLUE-L", name="蓝色纯棉T恤 L码", price=Decimal("59.00"),
                 attributes={"color": "blue", "size": "L"}, usual_qty=3),
    CatalogEntry(sku="MUG-WHITE", name="白色陶瓷马克杯", price=Decimal("35.50"), usual_qty=2),
    CatalogEntry(sku="TEA-LONGJING-250", name="西湖龙井 250g", price=Decimal("268.00")),
    CatalogEntry(sku="PHONE-X", name="旗舰手机 256GB", price=Decimal("6999.00"), usual_qty=1),
    CatalogEntry(sku="HAT-2019", name="2019款渔夫帽", price=Decimal("39.00"), active=False),
]  # fmt: skip
CATALOG = {p.sku: p for p in PRODUCTS}
ACTIVE = [p for p in PRODUCTS if p.active]


MOBILE_PREFIXES = [
    "130",
    "131",
    "135",
    "136",
    "138",
    "139",
    "150",
    "158",
    "177",
    "186",
    "189",
    "199",
]


def _mobile(rng: random.Random) -> str:
    return f"{rng.choice(MOBILE_PREFIXES)}{rng.randrange(10**8):08d}"


def _clean(rng: random.Random, n: int) -> dict[str, Any]:
    province, city, district, postal = rng.choice(ADDRESSES)
    lines = []
    for product in rng.sample(ACTIVE[:4], rng.randint(1, 3)):
        line: dict[str, Any] = {"sku": product.sku, "qty": rng.randint(1, 3), "name": product.name}
        if rng.random() < 0.7:
            line["unit_price"] = str(product.price)
        if rng.random() < 0.2 and product.attributes:
            line["attributes"] = dict(product.attributes)
        lines.append(line)
    phone = _mobile(rng) if rng.random() < 0.9 else f"0571-8{rng.randrange(10**7):07d}"
    doc: dict[str, Any] = {
        "order_id": f"BM{n:06d}",
        "platform": rng.choice(["taobao", "jd", "pdd"]),
        "buyer": {"name": rng.choice(NAMES), "phone": phone},
        "address": {
            "province": province,
            "city": city,
            "district": district,
            "detail": f"{rng.choice(STREETS)}{rng.randint(1, 999)}号{rng.randint(1, 30)}幢"
            f"{rng.randint(1, 30)}0{rng.randint(1, 4)}室",
            "postal_code": postal,
        },
        "lines": lines,
        "shipping_fee": rng.choice(["0.00", "10.00", "12.00"]),
        "discount": rng.choice([None, "0.00", "5.00"]),
        "payment": {"status": "paid", "method": "alipay"},
    }
    return doc


def _settle(doc: dict[str, Any], short_paid: bool) -> None:
    """State the total the platform would, and what was paid (a cent short if asked)."""
    draft = OrderDocument.model_validate(doc)
    total = computed_total(draft, CATALOG)
    if doc.get("total", "") is not None:
        doc["total"] = str(total)
    if doc["payment"]["status"] == "paid":
        doc["payment"]["amount"] = str(total - Decimal("0.01") if short_paid else total)


def _flaw(rng: random.Random, doc: dict[str, Any]) -> int:
    kind = rng.randrange(16)
    address, buyer, payment = doc["address"], doc["buyer"], doc["payment"]
    if kind == 0:
        address["district"] = rng.choice(["鼓楼区", "朝阳区", "南山区", "临平区"])
    elif kind == 1:
        address["detail"] = rng.choice(STREETS) + rng.choice(["", "附近", "旁边小区"])
    elif kind == 2:
        address[rng.choice(["province", "city", "district", "detail"])] = None
    elif kind == 3:
        address["postal_code"] = rng.choice(["3100", "31000a", "3100001"])
    elif kind == 4:
        buyer["phone"] = rng.choice(["12345", "1381234567", "4008001234", "见备注"])
    elif kind == 5:
        buyer["name"] = rng.choice([None, "test", "先生", "😀", "12345", "张"])
    elif kind == 6:
        doc["lines"].append({"sku": rng.choice(["NOPE-1", "HAT-2019"]), "qty": 1})
    elif kind == 7:
        doc["lines"][0]["attributes"] = {"color": "green"}
    elif kind == 8:
        doc["lines"][0]["unit_price"] = "49.00"
    elif kind == 9:
        payment.update(status="pending", amount=None)
    elif kind == 10:
        payment["status"] = "paid"  # and _settle pays a cent short
    elif kind == 11:
        payment.update(status="cod", amount=None)
    elif kind == 12:
        doc["lines"][0]["qty"] = rng.choice([40, 60, 200])
    elif kind == 13:
        doc["lines"] = [{"sku": "PHONE-X", "qty": 2, "unit_price": "6999.00"}]
        doc["total"] = None
    elif kind == 14:
        buyer["phone"] = "13900001111"  # on the blocklist below
    elif kind == 15:
        address["detail"] = "幸福小区东门快递点旁" + (address.get("detail") or "")
    return kind


def generate(count: int, seed: int) -> list[tuple[OrderDocument, FraudContext]]:
    rng = random.Random(seed)
    orders = []
    for n in range(count):
        doc = _clean(rng, n)
        kinds = set()
        if rng.random() < 0.5:
            kinds = {_flaw(rng, doc) for _ in range(rng.choice([1, 1, 1, 2, 3]))}
        _settle(doc, short_paid=10 in kinds)
        fraud = FraudContext(
            orders_same_phone=rng.choice([0] * 30 + [6]),
            orders_same_address=rng.choice([0] * 30 + [8]),
        )
        orders.append((OrderDocument.model_validate(doc), fraud))
    return orders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=20261126)
    args = parser.parse_args()

    policy = Policy.model_validate(
        {"fraud": {"blocked_phones": ["139-0000-1111"], "blocked_addresses": ["幸福小区东门"]}}
    )
    print(f"generating {args.orders} orders (seed {args.seed}) ...")
    orders = generate(args.orders, args.seed)

    by_code: Counter[str] = Counter()
    flagged = 0
    start = time.perf_counter()  # cold: includes building the address index
    for doc, fraud in orders:
        findings = check_rules.check_order(doc, catalog=CATALOG, policy=policy, fraud=fraud)
        flagged += bool(findings)
        by_code.update(str(f.code) for f in findings)
    cold = time.perf_counter() - start

    start = time.perf_counter()
    for doc, fraud in orders:
        check_rules.check_order(doc, catalog=CATALOG, policy=policy, fraud=fraud)
    warm = time.perf_counter() - start

    rate = len(orders) / cold
    print(f"checked {len(orders)} orders: {flagged} with findings, {len(orders) - flagged} clean")
    print(f"cold run: {cold:.3f} s = {rate:,.0f} orders/s (target {TARGET_PER_SECOND:,})")
    print(f"warm run: {warm:.3f} s = {len(orders) / warm:,.0f} orders/s")
    print("findings by code:")
    for code, count in by_code.most_common():
        print(f"  {code:24} {count:6}")
    if rate < TARGET_PER_SECOND:
        raise SystemExit(f"below target: {rate:,.0f} < {TARGET_PER_SECOND:,} orders/s")


if __name__ == "__main__":
    main()
