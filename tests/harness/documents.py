"""The order documents and policies every layer of the tests starts from: one buyer, one address.

* `order_doc(name, **changes)`: a clean, paid order with a unique id (workflow tests);
* `make_order(order_id, lines, ...)`: a clean order priced exactly from the catalog (flows);
* `numbered_doc(order_id, n=...)`: a well-formed order whose phone and address differ by `n`
  (the CLI's files, where the fraud rules would count one buyer's many orders);
* `short_policy` (time-skipping server), `fast_policy` (dev server, seconds), `service_policy`
  (waits long enough that nothing times out under a test).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from models.documents import OrderDocument
from models.enums import TimeoutAction
from models.settings import (
    ApprovalPolicy,
    ConfirmationPolicy,
    PaymentPolicy,
    PickPolicy,
    Policy,
    PricingPolicy,
    ShortageSettings,
)
from pricing.rules import compute_totals
from tests.harness import SAMPLE

H = timedelta(hours=1)
BUYER_NAME = "张三"
PHONE = "13812345678"
CATALOG = {
    item["sku"]: item for item in json.loads((SAMPLE / "catalog.json").read_text(encoding="utf-8"))
}
HOT = "MUG-WHITE"  # 35.00 a piece, 400 g

ADDRESS = {
    "country": "CN",
    "province": "浙江省",
    "city": "杭州市",
    "district": "西湖区",
    "detail": "文三路100号3幢501室",
    "postal_code": "310000",
}



def short_policy(
    *,
    remind_every: timedelta = H,
    max_reminders: int = 2,
    buyer_timeout: timedelta = 4 * H,
    buyer_timeout_action: TimeoutAction = TimeoutAction.CANCEL,
    unpaid_window: timedelta = 3 * H,
    backorder_deadline: timedelta = 24 * H,
    stock_timeout_action: TimeoutAction = TimeoutAction.CANCEL,
    escalate_approval_after: timedelta = 2 * H,
    pick_remind_after: timedelta = 2 * H,
    pick_escalate_after: timedelta = 6 * H,
) -> Policy:
    """The default policy with short, round waits; search attributes off (time-skipping server)."""
    return Policy(
        search_attributes=False,
        confirmation=ConfirmationPolicy(
            remind_every=remind_every,
            max_reminders=max_reminders,
            timeout=buyer_timeout,
            timeout_action=buyer_timeout_action,
        ),
        payment=PaymentPolicy(unpaid_window=unpaid_window),
        shortage=ShortageSettings(
            backorder_deadline=backorder_deadline, timeout_action=stock_timeout_action
        ),
        approval=ApprovalPolicy(escalate_after=escalate_approval_after),
        pick=PickPolicy(remind_after=pick_remind_after, escalate_after=pick_escalate_after),
    )


def fast_policy(**shortage: Any) -> Policy:
    """Second-scale waits; search attributes on (the dev server has them registered)."""
    policy = Policy(search_attributes=True)
    policy.confirmation.remind_every = timedelta(seconds=30)
    policy.confirmation.timeout = timedelta(seconds=60)
    policy.payment.unpaid_window = timedelta(seconds=60)
    policy.shortage.backorder_deadline = timedelta(seconds=60)
    policy.shortage.transfer_deadline = timedelta(seconds=60)
    for key, value in shortage.items():
        setattr(policy.shortage, key, value)
    return policy


def service_policy() -> Policy:
    """Waits long enough that nothing times out under a test's feet; fraud rules out of the way
    (the tests send many orders from one address)."""
    policy = fast_policy()
    policy.confirmation.timeout = timedelta(minutes=10)
    policy.confirmation.remind_every = timedelta(minutes=5)
    policy.payment.unpaid_window = timedelta(minutes=10)
    policy.shortage.backorder_deadline = timedelta(minutes=10)
    policy.shortage.transfer_deadline = timedelta(minutes=10)
    policy.approval.escalate_after = timedelta(minutes=10)
    policy.pick.remind_after = timedelta(minutes=10)
    policy.pick.escalate_after = timedelta(minutes=20)
    policy.fraud.max_orders_per_phone = 100_000
    policy.fraud.max_orders_per_address = 100_000
    policy.approval.threshold = Decimal("5000.00")
    return policy


def order_doc(name: str, **changes: Any) -> dict[str, Any]:
    """A clean, paid order (2 × TSHIRT-RED-M, from Hangzhou) with a unique id; `changes` replace fields."""
    doc: dict[str, Any] = {
        "order_id": f"T{uuid.uuid4().hex[:10]}-{name}",
        "platform": "taobao",
        "created_at": "2026-11-26T10:00:00+08:00",
        "buyer": {"name": BUYER_NAME, "phone": PHONE, "id": "buyer-1"},
        "address": dict(ADDRESS),
        "lines": [{"sku": "TSHIRT-RED-M", "qty": 2, "unit_price": "59.00"}],
        "discount": "0.00",
        "shipping_fee": "0.00",
        "total": "118.00",
        "payment": {
            "status": "paid",
            "method": "alipay",
            "amount": "118.00",
            "transaction_id": "2026112622001",
        },
    }
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key] = {**doc[key], **value}
        else:
            doc[key] = value
    return doc


def make_order(
    order_id: str,
    lines: list[tuple[str, int]],
    *,
    minutes: int = 0,
    payment: str = "paid",
    coupon: str | None = None,
    shortage_policy: str | None = None,
    phone: str = PHONE,
) -> OrderDocument:
    """A clean order whose money adds up exactly (so review raises nothing by itself)."""
    priced = [(sku, qty, Decimal(CATALOG[sku]["price"])) for sku, qty in lines]
    weight = sum(CATALOG[sku]["weight_g"] * qty for sku, qty in lines)
    totals = compute_totals(
        priced,
        coupon_codes=[coupon] if coupon else [],
        province=ADDRESS["province"],
        weight_g=weight,
        policy=PricingPolicy(),
    )
    pay: dict[str, Any] = {"status": payment, "method": "alipay"}
    if payment == "paid":
        pay |= {"amount": str(totals.total), "transaction_id": f"TX-{order_id}"}
    created = datetime(2026, 11, 26, 2, 0, tzinfo=UTC) + timedelta(minutes=minutes)
    return OrderDocument.model_validate(
        {
            "order_id": order_id,
            "platform": "taobao",
            "created_at": created.isoformat(),
            "buyer": {"name": BUYER_NAME, "phone": phone, "id": f"buyer-{order_id}"},
            "address": ADDRESS,
            "lines": [
                {"sku": sku, "qty": qty, "unit_price": str(price)} for sku, qty, price in priced
            ],
            "coupon_code": coupon,
            "discount": str(totals.discount),
            "shipping_fee": str(totals.shipping_fee),
            "total": str(totals.total),
            "payment": pay,
            "shortage_policy": shortage_policy,
        }
    )


def numbered_doc(
    order_id: str,
    *,
    n: int = 0,
    sku: str = "TSHIRT-RED-M",
    qty: int = 2,
    unit_price: str = "59.00",
    province: str = "浙江省",
    city: str = "杭州市",
    district: str = "西湖区",
    detail: str | None = None,
    postal_code: str = "310000",
    payment: str = "paid",
    shipping_fee: str = "0.00",
    total: str | None = None,
    created_at: str = "2026-11-26T10:00:00+08:00",
) -> dict[str, Any]:
    """A well-formed order document (SPEC §5.1); `n` makes the phone and address distinct."""
    amount = total or f"{int(qty) * float(unit_price) + float(shipping_fee):.2f}"
    pay: dict[str, Any] = {"status": payment, "method": "alipay"}
    if payment == "paid":
        pay.update({"amount": amount, "transaction_id": f"TXN-{order_id}"})
    return {
        "order_id": order_id,
        "platform": "taobao",
        "created_at": created_at,
        "buyer": {"name": BUYER_NAME, "phone": f"1381234{n:04d}", "id": f"buyer-{n}"},
        "address": {
            "country": ADDRESS["country"],
            "province": province,
            "city": city,
            "district": district,
            "detail": detail if detail is not None else f"文三路{100 + n}号3幢501室",
            "postal_code": postal_code,
        },
        "lines": [{"sku": sku, "qty": qty, "unit_price": unit_price}],
        "discount": "0.00",
        "shipping_fee": shipping_fee,
        "total": amount,
        "payment": pay,
    }
