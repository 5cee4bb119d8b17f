"""The intake rules' tests' catalog, order and shorthands (`order(**changes)`, `codes`, `run`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from intake.check import check_order
from models.documents import OrderDocument
from models.settings import Policy
from models.types import CatalogEntry, Finding, FraudContext

CATALOG: dict[str, CatalogEntry] = {
    "TSHIRT-RED-M": CatalogEntry(
        sku="TSHIRT-RED-M",
        name="红色纯棉T恤 M码",
        price=Decimal("59.00"),
        attributes={"color": "red", "size": "M"},
        usual_qty=3,
    ),
    "MUG-WHITE": CatalogEntry(sku="MUG-WHITE", name="白色陶瓷马克杯", price=Decimal("35.50")),
    "HAT-2019": CatalogEntry(
        sku="HAT-2019", name="2019款渔夫帽", price=Decimal("39.00"), active=False
    ),
    "PHONE-X": CatalogEntry(
        sku="PHONE-X", name="旗舰手机 256GB", price=Decimal("6999.00"), usual_qty=1
    ),
}




def order(**changes: Any) -> OrderDocument:
    """A clean Hangzhou order (SPEC §5.1) with some parts replaced or merged."""
    doc: dict[str, Any] = {
        "order_id": "TB20261126-0001",
        "platform": "taobao",
        "created_at": "2026-11-26T10:00:00+08:00",
        "buyer": {"name": "张三", "phone": "13812345678", "id": "buyer-1"},
        "address": {
            "country": "CN",
            "province": "浙江省",
            "city": "杭州市",
            "district": "西湖区",
            "detail": "文三路100号3幢501室",
            "postal_code": "310000",
        },
        "lines": [{"sku": "TSHIRT-RED-M", "qty": 2, "unit_price": "59.00", "name": "红色T恤"}],
        "discount": "0.00",
        "shipping_fee": "10.00",
        "total": "128.00",
        "payment": {"status": "paid", "method": "alipay", "amount": "128.00"},
    }
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key] = {**doc[key], **value}
        else:
            doc[key] = value
    return OrderDocument.model_validate(doc)


def codes(findings: list[Finding]) -> list[tuple[str, str]]:
    return [(str(f.code), f.field) for f in findings]


def run(doc: OrderDocument, policy: Policy | None = None, fraud: FraudContext | None = None):
    return check_order(
        doc, catalog=CATALOG, policy=policy or Policy(), fraud=fraud or FraudContext()
    )


