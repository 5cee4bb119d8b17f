"""The check's rules for the buyer: name, phone and address (SPEC §3.1)."""

from __future__ import annotations

import json

import pytest

from intake.address_check import check_address
from intake.buyer import check_buyer_name, check_phone
from intake.findings import CODE_CLASS
from models.enums import FindingClass, FindingCode
from tests.harness.rules import codes, order, run

# ------------------------------------------------------------------ a clean order


def test_a_clean_hangzhou_order_has_no_findings():
    assert run(order()) == []


def test_every_finding_code_has_a_class():
    assert set(CODE_CLASS) == set(FindingCode)


# ------------------------------------------------------------------ buyer name


def test_a_missing_name_is_reported():
    findings = check_buyer_name(order(buyer={"name": None}))
    assert codes(findings) == [("name_missing", "buyer.name")]
    assert findings[0].cls is FindingClass.BUYER


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("12345", "digits_only"),
        ("张", "too_short"),
        ("test", "placeholder"),
        ("先生", "placeholder"),
        ("😀😀", "no_letters"),
        ("张三😀", "unusual_characters"),
        ("张三2号", "contains_digits"),
        ("李" * 20, "too_long"),
        ("哈哈哈", "repeated_character"),
    ],
)
def test_implausible_names_are_reported_with_the_reason(name, reason):
    findings = check_buyer_name(order(buyer={"name": name}))
    assert codes(findings) == [("name_implausible", "buyer.name")]
    assert findings[0].detail["reason"] == reason


@pytest.mark.parametrize(
    "name", ["张三", "王先生", "欧阳娜娜", "阿卜杜热合曼·买买提", "John Smith", "Seán O'Brien"]
)
def test_real_names_pass(name):
    assert check_buyer_name(order(buyer={"name": name})) == []


# ------------------------------------------------------------------ phone


@pytest.mark.parametrize(
    "phone",
    ["13812345678", "0571-88888888", "+86 138 1234 5678", "010-12345678", "(021) 6234 5678",
     "+852 9123 4567"],
)  # fmt: skip
def test_mobiles_and_landlines_are_valid(phone):
    assert check_phone(order(buyer={"phone": phone})) == []


@pytest.mark.parametrize(
    ("phone", "reason"),
    [
        ("12345", "invalid"),
        ("1381234567", "invalid"),
        ("138123456789", "invalid"),
        ("0571-8888888", "invalid"),
        ("电话见备注", "unparseable"),
        ("4008001234", "not_personal"),
        (None, "missing"),
    ],
)
def test_invalid_phones_are_reported(phone, reason):
    findings = check_phone(order(buyer={"phone": phone}))
    assert codes(findings) == [("phone_invalid", "buyer.phone")]
    assert findings[0].detail["reason"] == reason


def test_the_phone_finding_never_shows_the_whole_number():
    findings = check_phone(order(buyer={"phone": "1381234567"}))
    text = json.dumps([f.model_dump(mode="json") for f in findings], ensure_ascii=False)
    assert "1381234567" not in text
    assert "138****4567" in findings[0].message_zh


# ------------------------------------------------------------------ address


@pytest.mark.parametrize(
    ("province", "city", "district"),
    [
        ("上海市", "上海市", "浦东新区"),
        ("上海", "上海", "浦东新区"),
        ("上海市", "市辖区", "徐汇区"),
        ("上海市", "浦东新区", "陆家嘴街道"),
        ("北京市", "北京市", "朝阳区"),
        ("重庆市", "重庆市", "渝中区"),
        ("新疆维吾尔自治区", "乌鲁木齐市", "天山区"),
        ("广西壮族自治区", "南宁市", "青秀区"),
        ("广西", "南宁", "青秀区"),
        ("内蒙古自治区", "呼和浩特市", "新城区"),
        ("浙江省", "杭州市", "富阳区"),  # was 富阳市 until 2014
        ("广东省", "东莞市", "长安镇"),  # no district level in Dongguan
        ("Zhejiang", "Hangzhou", "Xihu"),
    ],
)
def test_consistent_addresses_pass(province, city, district):
    doc = order(address={"province": province, "city": city, "district": district})
    assert check_address(doc) == []


def test_a_district_of_another_city_is_inconsistent():
    findings = check_address(order(address={"district": "鼓楼区"}))
    assert codes(findings) == [("address_inconsistent", "address.district")]
    detail = findings[0].detail
    assert detail["parent"] == "杭州市"
    assert "江苏省南京市" in detail["known_in"]
    assert "鼓楼区" in findings[0].message_zh and "杭州市" in findings[0].message_zh


def test_a_district_of_a_neighbouring_city_names_where_it_is():
    findings = check_address(order(address={"district": "鄞州区"}))
    assert codes(findings) == [("address_inconsistent", "address.district")]
    assert findings[0].detail["known_in"] == ["浙江省宁波市"]


def test_a_city_in_the_wrong_province_is_inconsistent():
    findings = check_address(order(address={"province": "江苏省"}))
    assert codes(findings) == [("address_inconsistent", "address.city")]
    assert findings[0].detail["known_in"] == ["浙江省"]


def test_a_beijing_district_under_shanghai_is_inconsistent():
    doc = order(address={"province": "上海市", "city": "上海市", "district": "朝阳区"})
    findings = check_address(doc)
    assert codes(findings) == [("address_inconsistent", "address.district")]
    assert "北京市" in findings[0].detail["known_in"]


def test_an_unknown_province_is_inconsistent():
    findings = check_address(order(address={"province": "火星省"}))
    assert codes(findings) == [("address_inconsistent", "address.province")]


@pytest.mark.parametrize("part", ["province", "city", "district", "detail"])
def test_each_missing_part_is_one_finding(part):
    findings = check_address(order(address={part: None}))
    assert codes(findings) == [("address_incomplete", f"address.{part}")]


def test_an_empty_address_lists_every_missing_part():
    doc = order(address={"province": "", "city": None, "district": " ", "detail": None})
    assert codes(check_address(doc)) == [
        ("address_incomplete", "address.province"),
        ("address_incomplete", "address.city"),
        ("address_incomplete", "address.district"),
        ("address_incomplete", "address.detail"),
    ]


def test_a_municipality_still_needs_its_district():
    doc = order(address={"province": "北京市", "city": "北京市", "district": None})
    assert codes(check_address(doc)) == [("address_incomplete", "address.district")]


@pytest.mark.parametrize(
    ("detail", "reason"),
    [
        ("文三路", "no_number"),
        ("城西银泰附近", "no_number"),
        ("鼓楼大街", "no_number"),
        ("浙江省杭州市西湖区", "no_number"),
        ("8号楼", "too_short"),
    ],
)
def test_vague_details_are_reported(detail, reason):
    findings = check_address(order(address={"detail": detail}))
    assert codes(findings) == [("address_vague", "address.detail")]
    assert findings[0].detail["reason"] == reason


def test_the_vague_finding_masks_the_detail_in_its_message_and_keeps_it_for_the_buyer():
    (finding,) = check_address(order(address={"detail": "文三路"}))
    # the clerk's message (kept in the database) shows it masked, as the logs do
    assert "「文***」" in finding.message_zh and "门牌号" in finding.message_zh
    assert '"文***"' in finding.message_en
    assert "文三路" not in finding.message_zh + finding.message_en
    # the buyer's own message quotes it back to them (Finding.detail, not stored by the OMS)
    assert finding.detail["value"] == "文三路"


@pytest.mark.parametrize(
    "detail",
    [
        "文三路一百号",
        "文三路１００号",
        "城西花园三单元602",
        "文三路菜鸟驿站",
        "浙江省杭州市西湖区文三路100号",
    ],
)
def test_precise_details_pass(detail):
    assert check_address(order(address={"detail": detail})) == []


@pytest.mark.parametrize("postal", ["3100", "31000a", "3100000", "31-0000"])
def test_bad_postal_codes_are_reported(postal):
    findings = check_address(order(address={"postal_code": postal}))
    assert codes(findings) == [("postal_code_invalid", "address.postal_code")]


@pytest.mark.parametrize("postal", ["310000", "３１００００", None])
def test_good_or_absent_postal_codes_pass(postal):
    assert check_address(order(address={"postal_code": postal})) == []


