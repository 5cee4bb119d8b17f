"""The workflow tests' orders and moves: a phone over the approval threshold, tea none has,
an order split over two warehouses, the warehouse's three events, a replay."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.worker import Replayer

from tests.harness.codec_keys import converter
from tests.harness.documents import order_doc
from tests.harness.shop import Shop
from workflows.order import OrderWorkflow

# A little more than one step of each schedule, so a timer that started a moment late has fired.
MARGIN = timedelta(minutes=10)

VAGUE = "文三路西段"  # a street without a door number
STILL_VAGUE = "文三路西段北侧"
PRECISE = "文三路100号3幢501室"

TEA = "TEA-LONGJING-250G"  # none in stock
PHONE = "PHONE-X1"  # 6999.00: over the approval threshold


def shanghai_phone_order(name: str) -> dict[str, Any]:
    return order_doc(
        name,
        address={
            "province": "上海市",
            "city": "上海市",
            "district": "徐汇区",
            "detail": "漕溪北路201号5楼",
            "postal_code": "200030",
        },
        lines=[{"sku": PHONE, "qty": 1, "unit_price": "6999.00"}],
        total="6999.00",
        payment={"amount": "6999.00"},
    )


def tea_order(name: str, created_at: str, phone: str = "13812345678") -> dict[str, Any]:
    return order_doc(
        name,
        created_at=created_at,
        buyer={"phone": phone},
        lines=[{"sku": TEA, "qty": 1, "unit_price": "268.00"}],
        total="268.00",
        payment={"amount": "268.00"},
    )


def split_order(name: str) -> dict[str, Any]:
    """T-shirts from Hangzhou, a mug only Shanghai has: two shipments."""
    return order_doc(
        name,
        lines=[
            {"sku": "TSHIRT-RED-M", "qty": 1, "unit_price": "59.00"},
            {"sku": "MUG-WHITE", "qty": 1, "unit_price": "35.00"},
        ],
        total="104.00",
        shipping_fee="10.00",
        payment={"amount": "104.00"},
    )


async def ship_everything(shop: Shop, handle: Any) -> None:
    await handle.signal("picked", {})
    await handle.signal("packed", {"parcels": 1, "weight_g": 600})
    await handle.signal("shipped", {"carrier": "SF", "tracking_no": "SF1234567890"})


async def replay(handle: Any) -> None:
    history = await handle.fetch_history()
    await Replayer(
        workflows=[OrderWorkflow], data_converter=converter()
    ).replay_workflow(history)
