"""The items against the catalog (known, active, attributes, price, quantity) and the money to
the cent (SPEC §3.1)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal

from intake.findings import CENT, finding, money_text, norm
from intake.messages import quote
from models.documents import OrderDocument, OrderLine
from models.enums import ConfirmationMode, FindingCode, PaymentStatus
from models.settings import Policy
from models.types import CatalogEntry, Finding

# =================================================================== items


def line_field(i: int, name: str) -> str:
    return f"lines[{i}].{name}"


def _sku_shown(line: OrderLine) -> str:
    return quote(line.sku, 40)


def check_items(
    order: OrderDocument, *, catalog: Mapping[str, CatalogEntry], policy: Policy
) -> list[Finding]:
    """Each line: known and active SKU, matching variant attributes, sane qty and price."""
    findings: list[Finding] = []
    limit = policy.fraud.max_qty_per_line
    tolerance = policy.pricing.price_tolerance
    for i, line in enumerate(order.lines):
        sku = _sku_shown(line)
        entry = catalog.get(line.sku)
        if entry is None:
            findings.append(
                finding(
                    FindingCode.SKU_UNKNOWN,
                    line_field(i, "sku"),
                    f'Line {i + 1}: SKU "{sku}" is not in the catalog.',
                    f"第{i + 1}行：商品编码「{sku}」不在商品目录中。",
                    sku=sku,
                )
            )
        elif not entry.active:
            findings.append(
                finding(
                    FindingCode.SKU_INACTIVE,
                    line_field(i, "sku"),
                    f'Line {i + 1}: "{entry.name}" ({sku}) is no longer on sale.',
                    f"第{i + 1}行：商品「{entry.name}」（{sku}）已下架。",
                    sku=sku,
                )
            )
        if entry is not None and line.attributes:
            wrong = {}
            for key, value in line.attributes.items():
                expected = entry.attributes.get(key)
                if expected is None or norm(expected) != norm(value):
                    wrong[quote(key, 20)] = {"ordered": quote(value, 20), "catalog": expected}
            if wrong:
                listed_en = ", ".join(
                    f"{k} {v['ordered']!r} (catalog: {v['catalog'] if v['catalog'] is not None else 'none'})"
                    for k, v in wrong.items()
                )
                listed_zh = "，".join(
                    f"{k}为「{v['ordered']}」（目录：{v['catalog'] if v['catalog'] is not None else '无此属性'}）"
                    for k, v in wrong.items()
                )
                findings.append(
                    finding(
                        FindingCode.SKU_ATTRIBUTE_MISMATCH,
                        line_field(i, "attributes"),
                        f'Line {i + 1}: the ordered variant of "{entry.name}" ({sku}) does not '
                        f"match the catalog: {listed_en}.",
                        f"第{i + 1}行：「{entry.name}」（{sku}）所选规格与目录不符：{listed_zh}。",
                        sku=sku,
                        attributes=wrong,
                    )
                )
        if line.qty > limit:
            findings.append(
                finding(
                    FindingCode.QTY_OVER_LIMIT,
                    line_field(i, "qty"),
                    f'Line {i + 1}: quantity {line.qty} of "{sku}" is over the limit of {limit} per line.',
                    f"第{i + 1}行：「{sku}」数量{line.qty}超过单行上限{limit}件。",
                    sku=sku,
                    qty=line.qty,
                    limit=limit,
                )
            )
        price = line.unit_price
        if entry is not None and price is not None and abs(price - entry.price) > tolerance:
            findings.append(
                finding(
                    FindingCode.PRICE_MISMATCH,
                    line_field(i, "unit_price"),
                    f'Line {i + 1}: "{entry.name}" ({sku}) is priced ¥{money_text(price)} '
                    f"on the order but ¥{money_text(entry.price)} in the catalog.",
                    f"第{i + 1}行：「{entry.name}」（{sku}）订单单价¥{money_text(price)}，"
                    f"目录价¥{money_text(entry.price)}，两者不符。",
                    sku=sku,
                    order_price=money_text(price),
                    catalog_price=money_text(entry.price),
                )
            )
    return findings


# =================================================================== money


def computed_total(order: OrderDocument, catalog: Mapping[str, CatalogEntry]) -> Decimal:
    """Sum of (unit price, or catalog price) × qty − discount + shipping fee, to the cent.

    A line with an unknown SKU and no unit price contributes nothing (that line
    is rejected anyway). The total never goes below zero.
    """
    subtotal = Decimal(0)
    for line in order.lines:
        price = line.unit_price
        if price is None:
            entry = catalog.get(line.sku)
            price = entry.price if entry is not None else Decimal(0)
        subtotal += price * line.qty
    total = subtotal - (order.discount or Decimal(0)) + (order.shipping_fee or Decimal(0))
    return max(total, Decimal(0)).quantize(CENT, rounding=ROUND_HALF_UP)


def _total_known(order: OrderDocument, catalog: Mapping[str, CatalogEntry]) -> bool:
    return all(line.unit_price is not None or line.sku in catalog for line in order.lines)


def check_payment(
    order: OrderDocument, *, catalog: Mapping[str, CatalogEntry], policy: Policy
) -> list[Finding]:
    """Unpaid, paid a different amount, a stated total that is wrong, COD to confirm."""
    findings: list[Finding] = []
    known = _total_known(order, catalog)
    expected = computed_total(order, catalog)
    payment = order.payment
    if payment.status == PaymentStatus.PENDING:
        findings.append(
            finding(
                FindingCode.UNPAID,
                "payment.status",
                f"The order is not paid yet (¥{money_text(expected)} due).",
                f"订单尚未付款（应付¥{money_text(expected)}）。",
                expected=money_text(expected),
            )
        )
    elif payment.status == PaymentStatus.PAID:
        if known and payment.amount is not None and _cents(payment.amount) != expected:
            findings.append(
                finding(
                    FindingCode.AMOUNT_MISMATCH,
                    "payment.amount",
                    f"The buyer paid ¥{money_text(payment.amount)} but the order comes to "
                    f"¥{money_text(expected)}.",
                    f"买家实付¥{money_text(payment.amount)}，与订单应付¥{money_text(expected)}不符。",
                    expected=money_text(expected),
                    actual=money_text(payment.amount),
                )
            )
    elif payment.status == PaymentStatus.COD and policy.confirmation.mode in (
        ConfirmationMode.COD,
        ConfirmationMode.ALWAYS,
    ):
        findings.append(
            finding(
                FindingCode.COD_UNCONFIRMED,
                "payment.status",
                f"Cash on delivery (¥{money_text(expected)}): the buyer must confirm before we ship.",
                f"货到付款订单（¥{money_text(expected)}）：发货前需买家确认。",
                amount=money_text(expected),
            )
        )
    if known and order.total is not None and _cents(order.total) != expected:
        findings.append(
            finding(
                FindingCode.AMOUNT_MISMATCH,
                "total",
                f"The order states a total of ¥{money_text(order.total)}, but its lines, discount "
                f"and shipping come to ¥{money_text(expected)}.",
                f"订单标注总额¥{money_text(order.total)}，按商品、优惠和运费计算应为¥{money_text(expected)}。",
                expected=money_text(expected),
                actual=money_text(order.total),
            )
        )
    return findings


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)

