"""The buyer's name and phone (SPEC §3.1): phone numbers through `phonenumbers` (default region
CN); the keys under which the fraud rules count orders per phone."""

from __future__ import annotations

import unicodedata
from functools import lru_cache

import phonenumbers
from phonenumbers import PhoneNumberType

from intake.findings import finding, norm, present
from intake.messages import quote
from models.documents import OrderDocument
from models.enums import FindingCode
from models.types import Finding
from privacy.mask import mask_phone

# =================================================================== buyer name

_PLACEHOLDER_NAMES = frozenset(
    norm(n)
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
    if norm(text) in _PLACEHOLDER_NAMES:
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
    if not present(name):
        return [
            finding(
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
        finding(
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
    if not present(raw):
        return [
            finding(
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
        finding(
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
def blocked_phone_keys(blocked: tuple[str, ...]) -> frozenset[str]:
    keys = set()
    for raw in blocked:
        key = _phone_key(raw)
        if key:
            keys.add(key)
    return frozenset(keys)

