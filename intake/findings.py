"""Findings (SPEC §3.1): each with a code, a field and a class, and what they mean for the
order's way on. Pure and free of any I/O or heavy library: the workflow imports it."""

from __future__ import annotations

import unicodedata
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from models.enums import FindingClass, FindingCode
from models.types import Finding

CODE_CLASS: dict[FindingCode, FindingClass] = {
    FindingCode.NAME_MISSING: FindingClass.BUYER,
    FindingCode.NAME_IMPLAUSIBLE: FindingClass.BUYER,
    FindingCode.PHONE_INVALID: FindingClass.BUYER,
    FindingCode.ADDRESS_INCOMPLETE: FindingClass.BUYER,
    FindingCode.ADDRESS_INCONSISTENT: FindingClass.BUYER,
    FindingCode.ADDRESS_VAGUE: FindingClass.BUYER,
    FindingCode.POSTAL_CODE_INVALID: FindingClass.BUYER,
    FindingCode.COD_UNCONFIRMED: FindingClass.BUYER,
    FindingCode.UNPAID: FindingClass.PAYMENT,
    FindingCode.AMOUNT_MISMATCH: FindingClass.PAYMENT,
    FindingCode.SUSPECTED_FRAUD: FindingClass.REVIEW,
    FindingCode.PRICE_MISMATCH: FindingClass.REVIEW,
    FindingCode.SKU_ATTRIBUTE_MISMATCH: FindingClass.REVIEW,
    FindingCode.QTY_OVER_LIMIT: FindingClass.REVIEW,
    FindingCode.HIGH_VALUE: FindingClass.REVIEW,
    FindingCode.COUPON_UNKNOWN: FindingClass.REVIEW,
    FindingCode.SKU_UNKNOWN: FindingClass.REJECT,
    FindingCode.SKU_INACTIVE: FindingClass.REJECT,
}

CENT = Decimal("0.01")


def finding(code: FindingCode, field_: str, en: str, zh: str, **detail: Any) -> Finding:
    return Finding(
        code=code,
        field=field_,
        cls=CODE_CLASS[code],
        message_en=en,
        message_zh=zh,
        detail=detail,
    )


def norm(text: str | None) -> str:
    """Compare-form of free text: NFKC (full-width → ASCII), no whitespace, case-folded."""
    if not text:
        return ""
    return "".join(unicodedata.normalize("NFKC", text).split()).casefold()


def money_text(value: Decimal) -> str:
    return f"{value.quantize(CENT, rounding=ROUND_HALF_UP)}"


def present(text: str | None) -> bool:
    return bool(text and text.strip())



def standing_findings(findings: list[Finding], *, buyer_confirmed: bool) -> list[Finding]:
    """The findings that still stand: a buyer who confirmed the order has confirmed cash on delivery."""
    return [f for f in findings if not (f.code == FindingCode.COD_UNCONFIRMED and buyer_confirmed)]


def clears_intake(findings: list[Finding]) -> bool:
    """Nothing stops the order before allocation: no reject, nothing to ask the buyer, no money missing.

    The workflow's intake loop and the check step that reserves right away (so a clean
    order costs one step, not two) decide by this same rule.
    """
    return not any(
        f.cls in (FindingClass.REJECT, FindingClass.BUYER) or f.code == FindingCode.UNPAID
        for f in findings
    )
