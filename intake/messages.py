"""Buyer-facing texts (SPEC §3.2). Pure: no I/O; buyer data shown masked by `privacy.mask`.

The clerk's habit is to ask for exactly what is missing, politely, naming the
item the buyer recognises ("收货地址显示为文三路，请问具体门牌号是多少呢？").
`buyer_message` turns the `buyer` findings of the check into that message for
the chosen channel: a platform message (`im`), a short text (`sms`), or a call
script the clerk reads from (`phone`). The text is stored in the order's
communication log, so the buyer's phone number never appears in it unmasked.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from models.documents import OrderDocument
from models.enums import Channel, FindingClass, FindingCode
from models.types import Finding
from privacy.mask import mask_name, mask_phone, scrub_phones

SMS_TARGET_CHARS = 140


def quote(text: str | None, limit: int = 30) -> str:
    """A value as it may be shown back to a person: phone numbers masked, long text cut."""
    if not text:
        return ""
    shown = scrub_phones(text)
    return _short(shown, limit)


# ------------------------------------------------------------------ buyer message

_PART_ZH = {
    "province": "省份",
    "city": "城市",
    "district": "区县",
    "town": "所在镇或街道",
    "detail": "详细地址",
}
_PART_EN = {
    "province": "province",
    "city": "city",
    "district": "district",
    "town": "town or street",
    "detail": "street address",
}


def _english(order: OrderDocument) -> bool:
    return (order.buyer.language or "").strip().lower().startswith("en")


def _item(order: OrderDocument, english: bool) -> str:
    names = [line.name for line in order.lines if line.name]
    if english:
        if not names:
            return "your order"
        first = quote(names[0], 24)
        more = len(order.lines) - 1
        return f'"{first}"' + (f" and {more} more item{'s' if more > 1 else ''}" if more else "")
    if not names:
        return "商品"
    first = quote(names[0], 24)
    return f"「{first}」" + (f"等{len(order.lines)}件商品" if len(order.lines) > 1 else "")


def _value(finding: Finding) -> str:
    return quote(str(finding.detail.get("value") or ""))


class _Ask(NamedTuple):
    """One thing to ask the buyer, in long (im/phone) and short (sms) form."""

    topic: str
    long: str
    short: str


def _asks(order: OrderDocument, findings: Iterable[Finding], english: bool) -> list[_Ask]:
    asks: list[_Ask] = []
    missing_parts: list[str] = []
    seen: set[tuple[str, str]] = set()
    for f in findings:
        if f.cls != FindingClass.BUYER:
            continue
        key = (str(f.code), f.field)
        if key in seen:
            continue
        seen.add(key)
        value = _value(f)
        part = f.field.rsplit(".", 1)[-1]
        if f.code == FindingCode.ADDRESS_INCOMPLETE:
            # A city with no districts (东莞市) needs the town or street instead.
            missing_parts.append("town" if part == "district" and f.detail.get("parent") else part)
            continue
        ask = _ask_for(f, part, value, order, english)
        if ask is not None:
            asks.append(ask)
    if missing_parts:
        if english:
            listed = ", ".join(_PART_EN.get(p, p) for p in missing_parts)
            asks.insert(
                0,
                _Ask(
                    "address",
                    f"your delivery address is missing the {listed} — could you send us the complete address?",
                    f"your {listed} (missing from the address)",
                ),
            )
        else:
            listed = "、".join(_PART_ZH.get(p, p) for p in missing_parts)
            asks.insert(
                0,
                _Ask(
                    "address",
                    f"收货地址缺少{listed}，麻烦您补充一下完整的收货地址好吗？",
                    f"请补充收货地址的{listed}",
                ),
            )
    return asks


def _ask_for(f: Finding, part: str, value: str, order: OrderDocument, english: bool) -> _Ask | None:
    code = f.code
    if code == FindingCode.ADDRESS_VAGUE:
        if english:
            return _Ask(
                "address",
                f'your delivery address shows "{value}" — could you tell us the exact house, '
                "building and room number?",
                "your house/room number",
            )
        return _Ask(
            "address",
            f"收货地址显示为{value}，请问具体门牌号是多少呢？",
            "请提供详细门牌号",
        )
    if code == FindingCode.ADDRESS_INCONSISTENT:
        parent = quote(str(f.detail.get("parent") or ""))
        if english:
            where = f" in {parent}" if parent else ""
            return _Ask(
                "address",
                f'we could not find the {_PART_EN.get(part, part)} "{value}"{where} — '
                "could you check which one is right?",
                f"the {_PART_EN.get(part, part)} ({value})",
            )
        where = f"似乎不在{parent}" if parent else "似乎有误"
        return _Ask(
            "address",
            f"收货地址中的{_PART_ZH.get(part, part)}「{value}」{where}，麻烦您确认一下正确的所在地区好吗？",
            f"请确认{_PART_ZH.get(part, part)}「{value}」",
        )
    if code == FindingCode.POSTAL_CODE_INVALID:
        region = f.detail.get("region") or "CN"
        if region != "CN":  # Taiwan's 3/5/6 digits; Hong Kong and Macau have none
            rule_en, rule_zh = f.detail.get("rule_en") or "", f.detail.get("rule_zh") or ""
            if english:
                return _Ask(
                    "postal",
                    f'the postal code "{value}" does not look right ({rule_en}) — could you check it?',
                    "your postal code",
                )
            return _Ask(
                "postal",
                f"邮政编码「{value}」好像不太对（{rule_zh}），麻烦您确认一下好吗？",
                "请确认邮编",
            )
        if english:
            return _Ask(
                "postal",
                f'the postal code "{value}" does not look right — could you send the 6-digit code?',
                "your 6-digit postal code",
            )
        return _Ask(
            "postal",
            f"邮政编码「{value}」好像不太对，方便告诉我们正确的6位邮编吗？",
            "请确认6位邮编",
        )
    if code == FindingCode.PHONE_INVALID:
        shown = mask_phone(order.buyer.phone)
        if english:
            about = f" ({shown})" if shown else ""
            return _Ask(
                "phone",
                f"the contact number on the order{about} does not seem to work — could you give us "
                "a number where the courier can reach you?",
                "a working phone number",
            )
        about = f"（{shown}）" if shown else ""
        return _Ask(
            "phone",
            f"订单上预留的联系电话{about}好像无法联系到您，方便留一个快递员能联系到您的电话吗？",
            "请提供可联系的手机号",
        )
    if code == FindingCode.NAME_MISSING:
        if english:
            return _Ask(
                "name",
                "the order has no recipient name — who should we address the parcel to?",
                "the recipient's name",
            )
        return _Ask("name", "订单上还没有收货人姓名，请问收件人怎么称呼呢？", "请提供收货人姓名")
    if code == FindingCode.NAME_IMPLAUSIBLE:
        if english:
            return _Ask(
                "name",
                f'the recipient name shows as "{value}" — could you tell us the recipient\'s '
                "real name so the courier can find them?",
                "the recipient's real name",
            )
        return _Ask(
            "name",
            f"收货人姓名显示为「{value}」，方便告诉我们收件人的真实姓名吗？",
            "请确认收货人姓名",
        )
    if code == FindingCode.COD_UNCONFIRMED:
        amount = f.detail.get("amount")
        if english:
            money = f" of ¥{amount}" if amount else ""
            return _Ask(
                "cod",
                f"you chose cash on delivery{money} — could you confirm you would like us to ship it?",
                "that we may ship cash on delivery",
            )
        money = f"，订单金额¥{amount}" if amount else ""
        return _Ask(
            "cod",
            f"您选择的是货到付款{money}，请问确认需要我们为您发货吗？",
            "货到付款订单请确认是否发货",
        )
    # Any other buyer-class finding: use its own polite sentence.
    text = f.message_en if english else f.message_zh
    if not text:
        return None
    return _Ask(str(code), scrub_phones(text), scrub_phones(text))


def _general_ask(english: bool) -> _Ask:
    if english:
        return _Ask(
            "confirm",
            "could you confirm that the recipient, phone number and delivery address on the "
            "order are correct?",
            "your delivery details",
        )
    return _Ask(
        "confirm",
        "麻烦您确认一下订单上的收货人、联系电话和收货地址是否正确？",
        "请确认收货信息是否正确",
    )


def _numbered(asks: list[_Ask], english: bool, *, short: bool = False) -> str:
    texts = [a.short if short else a.long for a in asks]
    if len(texts) == 1:
        return texts[0]
    if english:
        return " ".join(f"({i}) {t}" for i, t in enumerate(texts, 1))
    return "".join(f"{i}. {t}" for i, t in enumerate(texts, 1))


def _joined(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def _im(order: OrderDocument, asks: list[_Ask], english: bool, reminder: int) -> str:
    item = _item(order, english)
    if english:
        opening = (
            "Hello again — sorry to trouble you once more; we have not heard back about your order yet. "
            if reminder
            else "Hello! "
        )
        if len(asks) == 1:
            body = f"About {item} from our shop: {asks[0].long}"
        else:
            body = (
                f"About {item} from our shop, a few details need checking: {_numbered(asks, True)}"
            )
        return f"{opening}{body} This helps us ship your parcel to the right place. Thank you!"
    opening = "您好，不好意思再打扰您一下，之前的留言还没有收到您的回复。" if reminder else "您好，"
    if len(asks) == 1:
        body = f"看到您在我们店铺购买的{item}，{asks[0].long}"
    else:
        body = f"看到您在我们店铺购买的{item}，有几处信息需要跟您确认一下：{_numbered(asks, False)}"
    return f"{opening}{body}以便我们准确为您发货，谢谢！"


def _sms(order: OrderDocument, asks: list[_Ask], english: bool, reminder: int) -> str:
    order_ref = _short(order.order_id, 24)
    if english:
        # The short English forms are noun phrases: "please confirm A, B and C".
        head = f"[Reminder] Order {order_ref}: " if reminder else f"Order {order_ref}: "
        tail = ". Please reply here. Thank you!"
        parts = [a.short for a in asks]
        text = head + "please confirm " + _joined(parts) + tail
        while len(text) > SMS_TARGET_CHARS and len(parts) > 1:
            parts.pop()
            text = head + "please confirm " + ", ".join(parts) + " and more" + tail
        return text
    head = f"【提醒】您好，您的订单{order_ref}：" if reminder else f"您好，您的订单{order_ref}："
    tail = "，请直接回复本短信，谢谢！"
    parts = [a.short for a in asks]
    text = head + "；".join(parts) + tail
    while len(text) > SMS_TARGET_CHARS and len(parts) > 1:
        parts.pop()
        text = head + "；".join(parts) + "等信息" + tail
    return text


def _phone_script(order: OrderDocument, asks: list[_Ask], english: bool, reminder: int) -> str:
    who = mask_name(order.buyer.name)
    number = mask_phone(order.buyer.phone) or ("(no number)" if english else "（无号码）")
    item = _item(order, english)
    order_ref = order.order_id
    if english:
        title = f"Call task — order {order_ref}" + (f" (follow-up #{reminder})" if reminder else "")
        lines = [
            title,
            f"Call: {who or 'the buyer'} at {number} (full number in the order record).",
            f"Opening: Hello, this is customer service about {item}; we would like to "
            "check a few details so we can ship it.",
            "Points to confirm:",
        ]
        lines += [f"{i}. {_capitalised(a.long)}" for i, a in enumerate(asks, 1)]
        lines += [
            "Closing: Thank you for your help — we will ship as soon as this is settled.",
            "Afterwards: record the outcome and any corrections (buyer_confirmed) with a note.",
        ]
        return "\n".join(lines)
    title = f"电话确认任务 · 订单 {order_ref}" + (f"（第{reminder}次跟进）" if reminder else "")
    lines = [
        title,
        f"致电：{who or '买家'}（{number}，完整号码见订单详情）",
        f"开场：您好，我是店铺客服，关于您购买的{item}，想跟您确认几处信息，以便准确为您发货。",
        "需要确认：",
    ]
    lines += [f"{i}. {a.long}" for i, a in enumerate(asks, 1)]
    lines += [
        "结束：感谢您的配合，确认后我们会尽快为您发货。",
        "记录：通话后请录入结果与更正内容（buyer_confirmed），并写明备注。",
    ]
    return "\n".join(lines)


def buyer_message(
    order: OrderDocument,
    findings: list[Finding],
    *,
    channel: Channel,
    reminder: int = 0,
) -> str:
    """The text to send the buyer (or, for `phone`, the clerk's call script).

    It asks for exactly what the `buyer` findings say is missing; with none
    (confirmation demanded by policy) it asks the buyer to confirm the delivery
    details. Chinese by default, English when the buyer's language is ``en*``.
    ``reminder`` > 0 marks a follow-up and says so politely.
    """
    english = _english(order)
    asks = _asks(order, findings, english) or [_general_ask(english)]
    reminder = max(int(reminder), 0)
    if channel == Channel.SMS:
        text = _sms(order, asks, english, reminder)
    elif channel == Channel.PHONE:
        text = _phone_script(order, asks, english, reminder)
    else:
        text = _im(order, asks, english, reminder)
    return _redact_phone(text, order.buyer.phone)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _redact_phone(text: str, phone: str | None) -> str:
    """Belt and braces: the buyer's number never appears whole, however it was spelt."""
    if not phone:
        return text
    digits = "".join(ch for ch in phone if ch.isdigit() and ch.isascii())
    candidates = {phone.strip(), digits}
    if len(digits) == 13 and digits.startswith("86"):
        candidates.add(digits[2:])
    for candidate in sorted(candidates, key=len, reverse=True):
        if len(candidate) >= 7 and candidate in text:
            text = text.replace(candidate, mask_phone(candidate))
    return text
