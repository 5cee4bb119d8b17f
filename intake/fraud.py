"""Fraud and abnormal-order signs (SPEC §3.1): orders per phone or address in a window,
blocklists, value, unusual quantity; all configurable (SPEC §6)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from intake.address_check import address_key
from intake.buyer import blocked_phone_keys, phone_key
from intake.findings import finding, money_text, norm
from intake.items import computed_total, line_field
from intake.messages import quote
from models.documents import OrderDocument
from models.enums import FindingCode
from models.settings import Policy
from models.types import CatalogEntry, Finding, FraudContext
from privacy.mask import mask_address, mask_phone

# =================================================================== fraud


def _fraud(field_: str, reason: str, en: str, zh: str, **detail: Any) -> Finding:
    return finding(FindingCode.SUSPECTED_FRAUD, field_, en, zh, reason=reason, **detail)


def _blocked_address_hit(order: OrderDocument, blocked: Sequence[str]) -> str | None:
    if not blocked:
        return None
    a = order.address
    key = address_key(order)
    raw = norm("".join(filter(None, [a.province, a.city, a.district, a.detail])))
    for entry in blocked:
        needle = norm(entry)
        if needle and (needle in key or needle in raw):
            return entry
    return None


def check_fraud(
    order: OrderDocument,
    *,
    catalog: Mapping[str, CatalogEntry],
    policy: Policy,
    fraud: FraudContext,
) -> list[Finding]:
    """Abnormal-order rules (SPEC §6): repeat orders, blocklists, odd quantities, high value."""
    rules = policy.fraud
    findings: list[Finding] = []
    if fraud.orders_same_phone >= rules.max_orders_per_phone:
        findings.append(
            _fraud(
                "buyer.phone",
                "many_orders_same_phone",
                f"{fraud.orders_same_phone} recent orders from this phone number "
                f"(limit {rules.max_orders_per_phone} in the window).",
                f"同一手机号近期已有{fraud.orders_same_phone}笔订单（上限{rules.max_orders_per_phone}笔）。",
                count=fraud.orders_same_phone,
                limit=rules.max_orders_per_phone,
            )
        )
    if fraud.orders_same_address >= rules.max_orders_per_address:
        findings.append(
            _fraud(
                "address",
                "many_orders_same_address",
                f"{fraud.orders_same_address} recent orders to this address "
                f"(limit {rules.max_orders_per_address} in the window).",
                f"同一收货地址近期已有{fraud.orders_same_address}笔订单（上限{rules.max_orders_per_address}笔）。",
                count=fraud.orders_same_address,
                limit=rules.max_orders_per_address,
            )
        )
    if rules.blocked_phones:
        key = phone_key(order)
        if key and key in blocked_phone_keys(tuple(rules.blocked_phones)):
            shown = mask_phone(order.buyer.phone)
            findings.append(
                _fraud(
                    "buyer.phone",
                    "blocked_phone",
                    f"The phone number {shown} is on the blocklist.",
                    f"联系电话 {shown} 在黑名单中。",
                    value=shown,
                )
            )
    hit = _blocked_address_hit(order, rules.blocked_addresses)
    if hit is not None:
        shown = quote(hit, 30)
        findings.append(
            _fraud(
                "address",
                "blocked_address",
                f'The delivery address matches the blocklisted address "{mask_address(hit)}".',
                f"收货地址命中黑名单地址「{mask_address(hit)}」。",
                value=shown,
            )
        )
    for i, line in enumerate(order.lines):
        entry = catalog.get(line.sku)
        if entry is None or not entry.usual_qty:
            continue
        ceiling = entry.usual_qty * rules.qty_factor_over_usual
        if line.qty > ceiling:
            findings.append(
                _fraud(
                    line_field(i, "qty"),
                    "qty_far_above_usual",
                    f'Line {i + 1}: {line.qty} × "{entry.name}" is far above the usual '
                    f"{entry.usual_qty} per order.",
                    f"第{i + 1}行：「{entry.name}」购买{line.qty}件，远高于通常的{entry.usual_qty}件。",
                    qty=line.qty,
                    usual_qty=entry.usual_qty,
                )
            )
    value = computed_total(order, catalog)
    if value > rules.high_value:
        findings.append(
            finding(
                FindingCode.HIGH_VALUE,
                "total",
                f"The order value ¥{money_text(value)} is above the review threshold "
                f"¥{money_text(rules.high_value)}.",
                f"订单金额¥{money_text(value)}超过审核阈值¥{money_text(rules.high_value)}。",
                amount=money_text(value),
                threshold=money_text(rules.high_value),
            )
        )
    return findings

