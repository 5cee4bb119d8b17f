"""Money recomputed from the catalog and the merchant's rules (SPEC §3.5).

Pure functions on `Decimal`, no I/O: the review activity loads the catalog and
hands it in, so the same figures come out on every retry and in every test.

Coupon rule (the one the review stage enforces):

* Codes are matched against ``policy.coupons`` case-insensitively, ignoring
  surrounding spaces; a code given twice counts once. Codes that match nothing
  are *unknown*: they change nothing and are reported apart
  (`unknown_coupons`), never raised.
* A coupon is *eligible* when its condition holds on the subtotal:
  ``percent`` and ``free_shipping`` always; ``fixed`` when ``threshold`` is 0
  or the subtotal is at least ``threshold``; ``threshold`` (满减, e.g. 满200减20)
  when the subtotal is at least ``threshold``. "At least" includes equality.
* Every eligible **stackable** coupon applies. Of the eligible
  **non-stackable** coupons only one applies: the first in the order the codes
  were given. The others are ignored. So a single coupon always applies if
  eligible, and several apply together only when at most one of them is
  non-stackable.
* Each coupon's amount is computed on the subtotal (percentages do not
  compound) and rounded to the cent; the discount is their sum, capped at the
  subtotal.
* Shipping is free when a ``free_shipping`` coupon applies, or when
  ``policy.free_shipping_over`` is set and subtotal − discount reaches it.
  Otherwise it is the base fee (the remote fee for ``policy.remote_provinces``)
  plus ``per_kg_over_first`` for every started kilogram beyond the first.
* All amounts are rounded to the cent with ROUND_HALF_UP.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal

from models.documents import OrderDocument
from models.enums import FindingClass, FindingCode
from models.settings import Coupon, PricingPolicy
from models.types import CatalogEntry, Finding, Totals

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
FIRST_KG_G = 1000

_CODE_SEPARATORS = re.compile(r"[,，;；\s]+")


def to_cent(amount: Decimal) -> Decimal:
    """Round to the cent, half up (the way a till rounds)."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def split_coupon_codes(raw: str | None) -> list[str]:
    """The codes in an order's ``coupon_code`` field ("A,B", "A，B", "A; B")."""
    if not raw:
        return []
    return [code for code in _CODE_SEPARATORS.split(raw.strip()) if code]


def _coupon_index(policy: PricingPolicy) -> dict[str, Coupon]:
    return {coupon.code.strip().upper(): coupon for coupon in policy.coupons}


def unknown_coupons(codes: Sequence[str], policy: PricingPolicy) -> list[str]:
    """The codes (as given, without duplicates) that no coupon of the policy matches."""
    index = _coupon_index(policy)
    unknown: list[str] = []
    seen: set[str] = set()
    for raw in codes:
        code = raw.strip()
        key = code.upper()
        if not code or key in index or key in seen:
            continue
        seen.add(key)
        unknown.append(code)
    return unknown


def is_remote(province: str | None, remote_provinces: Sequence[str]) -> bool:
    """Whether a province is one of the remote ones.

    "新疆" matches "新疆维吾尔自治区": a province written without its suffix
    still counts, so a buyer's short form does not dodge the remote fee.
    """
    if not province or not province.strip():
        return False
    given = province.strip()
    for remote in remote_provinces:
        remote = remote.strip()
        if not remote:
            continue
        if given == remote:
            return True
        shorter, longer = sorted((given, remote), key=len)
        if len(shorter) >= 2 and longer.startswith(shorter):
            return True
    return False


def _eligible(coupon: Coupon, subtotal: Decimal) -> bool:
    if coupon.kind in ("percent", "free_shipping"):
        return True
    if coupon.kind == "fixed":
        return coupon.threshold <= 0 or subtotal >= coupon.threshold
    # "threshold" (满减): value off once the subtotal reaches the threshold.
    return subtotal >= coupon.threshold


def _coupon_amount(coupon: Coupon, subtotal: Decimal) -> Decimal:
    if coupon.kind == "percent":
        return to_cent(subtotal * coupon.value / Decimal(100))
    if coupon.kind in ("fixed", "threshold"):
        return to_cent(coupon.value)
    return ZERO


def _applicable_coupons(
    codes: Sequence[str], policy: PricingPolicy, subtotal: Decimal
) -> list[Coupon]:
    """The coupons that apply, in the order given (see the module docstring)."""
    index = _coupon_index(policy)
    applied: list[Coupon] = []
    seen: set[str] = set()
    non_stackable_taken = False
    for raw in codes:
        key = raw.strip().upper()
        coupon = index.get(key)
        if coupon is None or key in seen:
            continue
        seen.add(key)
        if not _eligible(coupon, subtotal):
            continue
        if not coupon.stackable:
            if non_stackable_taken:
                continue
            non_stackable_taken = True
        applied.append(coupon)
    return applied


def shipping_fee(*, province: str | None, weight_g: int, policy: PricingPolicy) -> Decimal:
    """The fee before any free-shipping rule: base or remote, plus each started kg over the first."""
    base = (
        policy.remote_shipping_fee
        if is_remote(province, policy.remote_provinces)
        else policy.base_shipping_fee
    )
    extra_kg = _extra_kg(weight_g)
    return to_cent(base + policy.per_kg_over_first * extra_kg)


def _extra_kg(weight_g: int) -> int:
    over = max(0, weight_g - FIRST_KG_G)
    return -(-over // 1000)


def compute_totals(
    lines: Sequence[tuple[str, int, Decimal]],
    *,
    coupon_codes: Sequence[str],
    province: str | None,
    weight_g: int,
    policy: PricingPolicy,
) -> Totals:
    """Subtotal, discount, shipping fee and total for lines of (sku, qty, catalog unit price).

    Unknown coupon codes are ignored here; ask `unknown_coupons` for them.
    """
    subtotal = to_cent(sum((Decimal(qty) * price for _, qty, price in lines), ZERO))
    applied: list[str] = []

    discount = ZERO
    free_by_coupon = False
    for coupon in _applicable_coupons(coupon_codes, policy, subtotal):
        applied.append(coupon.code)
        if coupon.kind == "free_shipping":
            free_by_coupon = True
        discount += _coupon_amount(coupon, subtotal)
    if discount > subtotal:
        discount = subtotal
        applied.append("rule:discount_capped_at_subtotal")
    discount = to_cent(discount)

    after_discount = subtotal - discount
    if free_by_coupon:
        fee = ZERO
    elif policy.free_shipping_over is not None and after_discount >= policy.free_shipping_over:
        fee = ZERO
        applied.append(f"rule:free_shipping_over:{to_cent(policy.free_shipping_over)}")
    else:
        fee = shipping_fee(province=province, weight_g=weight_g, policy=policy)
        if is_remote(province, policy.remote_provinces):
            applied.append("rule:remote_shipping")
        extra_kg = _extra_kg(weight_g)
        if extra_kg:
            applied.append(f"rule:weight_over_first_kg:{extra_kg}")

    return Totals(
        subtotal=subtotal,
        discount=discount,
        shipping_fee=fee,
        total=to_cent(after_discount + fee),
        applied=applied,
    )


_FIELD_ZH = {"discount": "优惠金额", "shipping_fee": "运费", "total": "订单总额"}
_FIELD_EN = {"discount": "discount", "shipping_fee": "shipping fee", "total": "total"}


def _mismatch(field: str, expected: Decimal, actual: Decimal) -> Finding:
    return Finding(
        code=FindingCode.PRICE_MISMATCH,
        field=field,
        cls=FindingClass.REVIEW,
        message_en=(
            f"The order's {_FIELD_EN[field]} is {actual}, "
            f"but the catalog and pricing rules give {expected}."
        ),
        message_zh=f"订单的{_FIELD_ZH[field]}为 {actual}，按商品目录和价格规则应为 {expected}。",
        detail={
            "expected": str(expected),
            "actual": str(actual),
            "difference": str(to_cent(actual - expected)),
        },
    )


def _unknown_coupon(code: str) -> Finding:
    return Finding(
        code=FindingCode.COUPON_UNKNOWN,
        field="coupon_code",
        cls=FindingClass.REVIEW,
        message_en=f"The coupon code {code!r} is not one of the merchant's coupons.",
        message_zh=f"优惠券代码“{code}”不是本店的优惠券。",
        detail={"coupon": code},
    )


def review_prices(
    order: OrderDocument,
    catalog: Mapping[str, CatalogEntry],
    policy: PricingPolicy,
) -> tuple[Totals, list[Finding]]:
    """Recompute the order's money from the catalog and compare with its own figures.

    Lines whose SKU is not in the catalog are left out (the check stage already
    flagged them). Figures the order does not state are not compared. A
    difference larger than ``policy.price_tolerance`` is a ``price_mismatch``
    finding; each unknown coupon code is a ``coupon_unknown`` finding. Both are
    of class ``review``: an operator decides, nothing is rejected here.
    """
    priced: list[tuple[str, int, Decimal]] = []
    weight_g = 0
    for line in order.lines:
        entry = catalog.get(line.sku)
        if entry is None:
            continue
        priced.append((line.sku, line.qty, entry.price))
        weight_g += entry.weight_g * line.qty

    codes = split_coupon_codes(order.coupon_code)
    totals = compute_totals(
        priced,
        coupon_codes=codes,
        province=order.address.province,
        weight_g=weight_g,
        policy=policy,
    )

    findings: list[Finding] = []
    for field, expected, actual in (
        ("discount", totals.discount, order.discount),
        ("shipping_fee", totals.shipping_fee, order.shipping_fee),
        ("total", totals.total, order.total),
    ):
        if actual is None:
            continue
        if abs(actual - expected) > policy.price_tolerance:
            findings.append(_mismatch(field, expected, to_cent(actual)))
    findings.extend(_unknown_coupon(code) for code in unknown_coupons(codes, policy))
    return totals, findings
