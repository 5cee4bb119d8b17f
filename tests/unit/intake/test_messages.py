"""Buyer messages and PII masking."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intake.check import check_order
from intake.messages import SMS_TARGET_CHARS, buyer_message
from models.documents import OrderDocument
from models.enums import Channel
from models.settings import Policy
from models.types import CatalogEntry, Finding, FraudContext
from privacy.mask import mask_address, mask_name, mask_phone, scrub_phones

CATALOG = {
    "TSHIRT-RED-M": CatalogEntry(
        sku="TSHIRT-RED-M", name="红色纯棉T恤 M码", price=Decimal("59.00")
    ),
    "MUG-WHITE": CatalogEntry(sku="MUG-WHITE", name="白色陶瓷马克杯", price=Decimal("35.50")),
}


def order(**changes: Any) -> OrderDocument:
    doc: dict[str, Any] = {
        "order_id": "TB20261126-0001",
        "buyer": {"name": "张三", "phone": "13812345678"},
        "address": {
            "province": "浙江省",
            "city": "杭州市",
            "district": "西湖区",
            "detail": "文三路100号3幢501室",
            "postal_code": "310000",
        },
        "lines": [{"sku": "TSHIRT-RED-M", "qty": 2, "unit_price": "59.00", "name": "红色T恤"}],
        "shipping_fee": "10.00",
        "payment": {"status": "paid", "amount": "128.00"},
    }
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key] = {**doc[key], **value}
        else:
            doc[key] = value
    return OrderDocument.model_validate(doc)


def findings_for(doc: OrderDocument, mode: str = "on_findings") -> list[Finding]:
    policy = Policy.model_validate({"confirmation": {"mode": mode}})
    return check_order(doc, catalog=CATALOG, policy=policy, fraud=FraudContext())


# ------------------------------------------------------------------ masking


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("13812345678", "138****5678"),
        ("+86 138-1234-5678", "138****5678"),
        ("0571-88888888", "057****8888"),
        ("8888888", "88****88"),
        ("123", "****23"),
        ("没有电话", "***"),
        (None, ""),
    ],
)
def test_mask_phone_hides_the_middle(raw, masked):
    assert mask_phone(raw) == masked


@pytest.mark.parametrize(
    ("detail", "masked"),
    [("文三路100号3幢501室", "文三路***"), ("文三路", "文***"), ("", ""), (None, "")],
)
def test_mask_address_keeps_only_the_start(detail, masked):
    assert mask_address(detail) == masked


def test_mask_name_keeps_the_surname():
    assert mask_name("张三丰") == "张**"
    assert mask_name("") == ""


def test_scrub_phones_masks_numbers_inside_text_but_not_house_numbers():
    text = "文三路100号3幢501室，电话13812345678"
    assert scrub_phones(text) == "文三路100号3幢501室，电话138****5678"


# ------------------------------------------------------------------ im


def test_the_im_message_asks_for_the_door_number_like_a_clerk_would():
    doc = order(address={"detail": "文三路"})
    text = buyer_message(doc, findings_for(doc), channel=Channel.IM)
    assert text == (
        "您好，看到您在我们店铺购买的「红色T恤」，收货地址显示为文三路，"
        "请问具体门牌号是多少呢？以便我们准确为您发货，谢谢！"
    )


def test_several_findings_become_a_numbered_list_naming_each_item():
    doc = order(address={"district": "鼓楼区", "detail": "文三路"}, buyer={"phone": "12345"})
    text = buyer_message(doc, findings_for(doc), channel=Channel.IM)
    assert "1. " in text and "2. " in text and "3. " in text
    assert "「鼓楼区」" in text and "杭州市" in text
    assert "文三路" in text and "门牌号" in text
    assert "联系电话" in text


def test_missing_parts_are_asked_for_together():
    doc = order(address={"city": None, "district": None})
    text = buyer_message(doc, findings_for(doc), channel=Channel.IM)
    assert "收货地址缺少城市、区县" in text


def test_only_buyer_findings_are_asked_about():
    doc = order(payment={"status": "pending", "amount": None}, address={"detail": "文三路"})
    text = buyer_message(doc, findings_for(doc), channel=Channel.IM)
    assert "门牌号" in text
    assert "付款" not in text


def test_without_buyer_findings_the_buyer_is_asked_to_confirm_the_details():
    text = buyer_message(order(), [], channel=Channel.IM)
    assert "收货人、联系电话和收货地址是否正确" in text


def test_cash_on_delivery_asks_for_confirmation_with_the_amount():
    doc = order(payment={"status": "cod", "amount": None})
    text = buyer_message(doc, findings_for(doc, mode="cod"), channel=Channel.IM)
    assert "货到付款" in text and "¥128.00" in text


def test_english_speaking_buyers_get_english():
    doc = order(address={"detail": "文三路"}, buyer={"language": "en-GB"})
    text = buyer_message(doc, findings_for(doc), channel=Channel.IM)
    assert text.startswith("Hello!")
    assert '"文三路"' in text and "house" in text
    assert "您好" not in text


def test_a_reminder_says_so_politely():
    doc = order(address={"detail": "文三路"})
    first = buyer_message(doc, findings_for(doc), channel=Channel.IM)
    again = buyer_message(doc, findings_for(doc), channel=Channel.IM, reminder=1)
    assert "不好意思再打扰您" in again and "不好意思再打扰您" not in first
    english = order(address={"detail": "文三路"}, buyer={"language": "en"})
    assert "sorry to trouble you once more" in buyer_message(
        english, findings_for(english), channel=Channel.IM, reminder=2
    )


# ------------------------------------------------------------------ sms


def test_an_sms_is_short_and_names_the_order():
    doc = order(address={"detail": "文三路"})
    text = buyer_message(doc, findings_for(doc), channel=Channel.SMS)
    assert "TB20261126-0001" in text and "门牌号" in text
    assert len(text) <= SMS_TARGET_CHARS


def test_an_sms_with_many_asks_stays_within_the_target_length():
    doc = order(
        buyer={"name": "test", "phone": "12345"},
        address={"district": "鼓楼区", "detail": "文三路", "postal_code": "3100"},
        payment={"status": "cod", "amount": None},
    )
    text = buyer_message(doc, findings_for(doc, mode="cod"), channel=Channel.SMS, reminder=1)
    assert len(text) <= SMS_TARGET_CHARS
    assert text.startswith("【提醒】")


# ------------------------------------------------------------------ phone


def test_the_call_script_lists_each_point_and_masks_the_number():
    doc = order(address={"detail": "文三路", "postal_code": "3100"})
    text = buyer_message(doc, findings_for(doc), channel=Channel.PHONE)
    lines = text.splitlines()
    assert lines[0] == "电话确认任务 · 订单 TB20261126-0001"
    assert "138****5678" in text and "13812345678" not in text
    assert "张*" in text and "张三" not in text
    assert any(line.startswith("1. ") and "门牌号" in line for line in lines)
    assert any(line.startswith("2. ") and "邮政编码「3100」" in line for line in lines)


def test_a_follow_up_call_is_numbered():
    doc = order(address={"detail": "文三路"})
    text = buyer_message(doc, findings_for(doc), channel=Channel.PHONE, reminder=2)
    assert "第2次跟进" in text.splitlines()[0]


# ------------------------------------------------------------------ properties


@settings(max_examples=150, deadline=None)
@given(
    phone=st.from_regex(r"(\+86 ?)?1[3-9][0-9]{9}", fullmatch=True),
    detail=st.sampled_from(["文三路", "", "文三路 联系{phone}", "靠近{phone}号楼"]),
    channel=st.sampled_from(list(Channel)),
    reminder=st.integers(min_value=0, max_value=3),
    language=st.sampled_from(["zh", "en"]),
)
def test_no_message_ever_contains_the_whole_phone_number(
    phone, detail, channel, reminder, language
):
    national = phone.replace("+86", "").strip()
    doc = order(
        buyer={"phone": phone, "language": language},
        address={"detail": detail.format(phone=national) or None},
    )
    findings = findings_for(doc) + [
        Finding.model_validate(
            {"code": "phone_invalid", "field": "buyer.phone", "class": "buyer", "message_zh": phone}
        )
    ]
    text = buyer_message(doc, findings, channel=channel, reminder=reminder)
    assert text
    assert national not in text
    assert phone not in text
