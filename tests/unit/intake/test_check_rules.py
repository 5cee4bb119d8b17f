"""The check stage's pure rules, on real-looking Chinese orders."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intake.address_check import address_key, check_address
from intake.buyer import check_buyer_name, check_phone, phone_key
from intake.check import check_order
from intake.findings import CODE_CLASS
from intake.fraud import check_fraud
from intake.items import check_items, check_payment, computed_total
from models.documents import OrderDocument
from models.enums import ConfirmationMode, FindingClass, FindingCode
from models.settings import Policy
from models.types import CatalogEntry, Finding, FraudContext

CATALOG: dict[str, CatalogEntry] = {
    "TSHIRT-RED-M": CatalogEntry(
        sku="TSHIRT-RED-M",
        name="红色纯棉T恤 M码",
        price=Decimal("59.00"),
        attributes={"color": "red", "size": "M"},
        usual_qty=3,
    ),
    "MUG-WHITE": CatalogEntry(sku="MUG-WHITE", name="白色陶瓷马克杯", price=Decimal("35.50")),
    "HAT-2019": CatalogEntry(
        sku="HAT-2019", name="2019款渔夫帽", price=Decimal("39.00"), active=False
    ),
    "PHONE-X": CatalogEntry(
        sku="PHONE-X", name="旗舰手机 256GB", price=Decimal("6999.00"), usual_qty=1
    ),
}


@pytest.fixture
def catalog() -> dict[str, CatalogEntry]:
    return dict(CATALOG)


def order(**changes: Any) -> OrderDocument:
    """A clean Hangzhou order (SPEC §5.1) with some parts replaced or merged."""
    doc: dict[str, Any] = {
        "order_id": "TB20261126-0001",
        "platform": "taobao",
        "created_at": "2026-11-26T10:00:00+08:00",
        "buyer": {"name": "张三", "phone": "13812345678", "id": "buyer-1"},
        "address": {
            "country": "CN",
            "province": "浙江省",
            "city": "杭州市",
            "district": "西湖区",
            "detail": "文三路100号3幢501室",
            "postal_code": "310000",
        },
        "lines": [{"sku": "TSHIRT-RED-M", "qty": 2, "unit_price": "59.00", "name": "红色T恤"}],
        "discount": "0.00",
        "shipping_fee": "10.00",
        "total": "128.00",
        "payment": {"status": "paid", "method": "alipay", "amount": "128.00"},
    }
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key] = {**doc[key], **value}
        else:
            doc[key] = value
    return OrderDocument.model_validate(doc)


def codes(findings: list[Finding]) -> list[tuple[str, str]]:
    return [(str(f.code), f.field) for f in findings]


def run(doc: OrderDocument, policy: Policy | None = None, fraud: FraudContext | None = None):
    return check_order(
        doc, catalog=CATALOG, policy=policy or Policy(), fraud=fraud or FraudContext()
    )


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


# ------------------------------------------------------------------ items


def test_an_unknown_sku_is_rejected(catalog):
    doc = order(lines=[{"sku": "NOPE-1", "qty": 1, "unit_price": "10.00"}], total=None)
    findings = check_items(doc, catalog=catalog, policy=Policy())
    assert codes(findings) == [("sku_unknown", "lines[0].sku")]
    assert findings[0].cls is FindingClass.REJECT


def test_an_inactive_sku_is_rejected(catalog):
    doc = order(lines=[{"sku": "MUG-WHITE", "qty": 1}, {"sku": "HAT-2019", "qty": 1}])
    findings = check_items(doc, catalog=catalog, policy=Policy())
    assert codes(findings) == [("sku_inactive", "lines[1].sku")]
    assert findings[0].cls is FindingClass.REJECT
    assert "2019款渔夫帽" in findings[0].message_zh


def test_a_variant_attribute_mismatch_goes_to_review(catalog):
    doc = order(lines=[{"sku": "TSHIRT-RED-M", "qty": 1, "attributes": {"color": "blue"}}])
    findings = check_items(doc, catalog=catalog, policy=Policy())
    assert codes(findings) == [("sku_attribute_mismatch", "lines[0].attributes")]
    assert findings[0].detail["attributes"] == {"color": {"ordered": "blue", "catalog": "red"}}
    assert findings[0].cls is FindingClass.REVIEW


def test_matching_attributes_compare_loosely(catalog):
    doc = order(
        lines=[{"sku": "TSHIRT-RED-M", "qty": 1, "attributes": {"color": "Red", "size": "m"}}]
    )
    assert check_items(doc, catalog=catalog, policy=Policy()) == []


def test_a_quantity_over_the_line_limit_goes_to_review(catalog):
    doc = order(lines=[{"sku": "MUG-WHITE", "qty": 51}])
    findings = check_items(doc, catalog=catalog, policy=Policy())
    assert codes(findings) == [("qty_over_limit", "lines[0].qty")]
    assert findings[0].detail == {"sku": "MUG-WHITE", "qty": 51, "limit": 50}


def test_a_price_off_the_catalog_is_reported_with_both_figures(catalog):
    doc = order(lines=[{"sku": "TSHIRT-RED-M", "qty": 2, "unit_price": "55.00"}])
    findings = check_items(doc, catalog=catalog, policy=Policy())
    assert codes(findings) == [("price_mismatch", "lines[0].unit_price")]
    assert findings[0].detail["order_price"] == "55.00"
    assert findings[0].detail["catalog_price"] == "59.00"
    assert "¥55.00" in findings[0].message_zh and "¥59.00" in findings[0].message_zh


def test_a_price_within_the_tolerance_passes(catalog):
    policy = Policy.model_validate({"pricing": {"price_tolerance": "0.50"}})
    doc = order(lines=[{"sku": "TSHIRT-RED-M", "qty": 2, "unit_price": "59.30"}])
    assert check_items(doc, catalog=catalog, policy=policy) == []


# ------------------------------------------------------------------ money


def test_the_computed_total_uses_catalog_prices_and_defaults_to_no_fees(catalog):
    doc = order(
        lines=[
            {"sku": "TSHIRT-RED-M", "qty": 2},
            {"sku": "MUG-WHITE", "qty": 1, "unit_price": "30.00"},
        ],
        discount=None,
        shipping_fee=None,
    )
    assert computed_total(doc, catalog) == Decimal("148.00")


def test_the_computed_total_subtracts_discount_and_adds_shipping(catalog):
    doc = order(discount="20.00", shipping_fee="12.50")
    assert computed_total(doc, catalog) == Decimal("110.50")


def test_a_pending_payment_is_unpaid(catalog):
    doc = order(payment={"status": "pending", "amount": None})
    findings = check_payment(doc, catalog=catalog, policy=Policy())
    assert codes(findings) == [("unpaid", "payment.status")]
    assert findings[0].cls is FindingClass.PAYMENT


def test_a_payment_one_cent_short_is_a_mismatch(catalog):
    doc = order(payment={"amount": "127.99"})
    findings = check_payment(doc, catalog=catalog, policy=Policy())
    assert codes(findings) == [("amount_mismatch", "payment.amount")]
    assert findings[0].detail == {"expected": "128.00", "actual": "127.99"}


def test_an_exact_payment_passes(catalog):
    assert check_payment(order(payment={"amount": "128"}), catalog=catalog, policy=Policy()) == []


def test_a_stated_total_that_does_not_add_up_is_a_mismatch(catalog):
    doc = order(total="118.00", payment={"amount": "118.00"})
    findings = check_payment(doc, catalog=catalog, policy=Policy())
    assert codes(findings) == [("amount_mismatch", "payment.amount"), ("amount_mismatch", "total")]
    assert findings[1].detail == {"expected": "128.00", "actual": "118.00"}


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (ConfirmationMode.COD, [("cod_unconfirmed", "payment.status")]),
        (ConfirmationMode.ALWAYS, [("cod_unconfirmed", "payment.status")]),
        (ConfirmationMode.ON_FINDINGS, []),
    ],
)
def test_cash_on_delivery_needs_confirmation_by_policy(catalog, mode, expected):
    policy = Policy.model_validate({"confirmation": {"mode": mode}})
    doc = order(payment={"status": "cod", "amount": None})
    findings = check_payment(doc, catalog=catalog, policy=policy)
    assert codes(findings) == expected
    assert all(f.cls is FindingClass.BUYER and f.detail["amount"] == "128.00" for f in findings)


# ------------------------------------------------------------------ fraud


def fraud_reasons(doc: OrderDocument, policy: Policy | None = None, **context: int) -> list[str]:
    findings = check_fraud(
        doc, catalog=CATALOG, policy=policy or Policy(), fraud=FraudContext(**context)
    )
    assert all(f.cls is FindingClass.REVIEW for f in findings)
    return [f.detail.get("reason", str(f.code)) for f in findings]


def test_many_orders_from_one_phone_are_suspicious():
    assert fraud_reasons(order(), orders_same_phone=5) == ["many_orders_same_phone"]
    assert fraud_reasons(order(), orders_same_phone=4) == []


def test_many_orders_to_one_address_are_suspicious():
    assert fraud_reasons(order(), orders_same_address=7) == ["many_orders_same_address"]


def test_a_blocked_phone_matches_whatever_its_spelling():
    policy = Policy.model_validate({"fraud": {"blocked_phones": ["+86 138-1234-5678"]}})
    assert fraud_reasons(order(), policy) == ["blocked_phone"]
    assert fraud_reasons(order(buyer={"phone": "13912345678"}), policy) == []


def test_a_blocked_address_matches_as_a_substring():
    policy = Policy.model_validate({"fraud": {"blocked_addresses": ["文三路 100号"]}})
    assert fraud_reasons(order(), policy) == ["blocked_address"]
    assert fraud_reasons(order(address={"detail": "文二路8号"}), policy) == []


def test_a_quantity_far_above_usual_is_suspicious():
    doc = order(lines=[{"sku": "TSHIRT-RED-M", "qty": 31}])
    assert "qty_far_above_usual" in fraud_reasons(doc)
    assert fraud_reasons(order(lines=[{"sku": "TSHIRT-RED-M", "qty": 30}])) == []


def test_a_high_value_order_goes_to_review():
    doc = order(lines=[{"sku": "PHONE-X", "qty": 2}], total=None, payment={"amount": None})
    findings = check_fraud(doc, catalog=CATALOG, policy=Policy(), fraud=FraudContext())
    assert codes(findings) == [("high_value", "total")]
    assert findings[0].detail == {"amount": "14008.00", "threshold": "10000.00"}


# ------------------------------------------------------------------ keys for the fraud window


def test_address_key_is_the_same_for_spelling_variants():
    plain = order()
    variant = order(
        address={
            "province": "浙江",
            "city": "杭州",
            "district": "西湖区",
            "detail": "浙江省杭州市 文三路１００号3幢501室",
        }
    )
    assert address_key(plain) == address_key(variant) == "浙江省杭州市西湖区文三路100号3幢501室"


def test_phone_key_is_e164_or_none():
    assert phone_key(order(buyer={"phone": "138 1234 5678"})) == "+8613812345678"
    assert phone_key(order(buyer={"phone": "0571-88888888"})) == "+8657188888888"
    assert phone_key(order(buyer={"phone": None})) is None


# ------------------------------------------------------------------ the whole check


def test_check_order_combines_every_rule_in_order():
    doc = order(
        buyer={"name": "test", "phone": "12345"},
        address={"district": "鼓楼区", "detail": "文三路"},
        lines=[{"sku": "HAT-2019", "qty": 1}],
        payment={"status": "pending", "amount": None},
        total="39.00",
    )
    assert codes(run(doc)) == [
        ("name_implausible", "buyer.name"),
        ("phone_invalid", "buyer.phone"),
        ("address_inconsistent", "address.district"),
        ("address_vague", "address.detail"),
        ("sku_inactive", "lines[0].sku"),
        ("unpaid", "payment.status"),
        ("amount_mismatch", "total"),
    ]


# ------------------------------------------------------------------ properties

_TEXT = st.characters(exclude_categories=("Cc", "Cf", "Cs"))
_FRAGMENTS = st.sampled_from(
    [
        "'; DROP TABLE orders; --",
        "<script>alert(1)</script>",
        "😀🎉👍🏻",
        "\u3000",
        "０５７１－８８８８８８８８",
        "上海市",
        "浦东新区",
        "市辖区",
        "新疆",
        "{{7*7}}",
        "%s%n",
        "NULL",
    ]
)


def _text(max_size: int) -> st.SearchStrategy[str | None]:
    free = st.text(_TEXT, max_size=max_size)
    mixed = st.lists(_FRAGMENTS | free, max_size=4).map("".join).map(lambda s: s[:max_size])
    huge = st.integers(min_value=0, max_value=max_size).map(lambda n: "号" * n)
    return st.none() | free | mixed | huge


_MONEY = st.none() | st.decimals(
    min_value=0, max_value=Decimal("99999999.99"), places=2, allow_nan=False, allow_infinity=False
)

_LINE = st.fixed_dictionaries(
    {
        "sku": st.sampled_from(list(CATALOG)) | st.text(_TEXT, min_size=1, max_size=64),
        "qty": st.integers(min_value=1, max_value=100000),
        "unit_price": _MONEY,
        "name": _text(200),
        "attributes": st.none()
        | st.dictionaries(st.text(_TEXT, max_size=10), st.text(_TEXT, max_size=20), max_size=3),
    }
)

_ORDER = st.fixed_dictionaries(
    {
        "order_id": st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}", fullmatch=True),
        "buyer": st.fixed_dictionaries(
            {
                "name": _text(100),
                "phone": _text(40),
                "language": st.none() | st.sampled_from(["zh", "en", "en-GB"]),
            }
        ),
        "address": st.fixed_dictionaries(
            {
                "country": st.sampled_from(["CN", "cn", "US", "ZZ", "中国"]),
                "province": _text(50),
                "city": _text(50),
                "district": _text(50),
                "detail": _text(200),
                "postal_code": _text(20),
            }
        ),
        "lines": st.lists(_LINE, min_size=1, max_size=4),
        "discount": _MONEY,
        "shipping_fee": _MONEY,
        "total": _MONEY,
        "payment": st.fixed_dictionaries(
            {"status": st.sampled_from(["paid", "pending", "cod"]), "amount": _MONEY}
        ),
    }
)


def _document(raw: dict[str, Any]) -> OrderDocument | None:
    try:
        return OrderDocument.model_validate(raw)
    except ValueError:
        return None


_FRAUD = st.builds(
    FraudContext,
    orders_same_phone=st.integers(min_value=0, max_value=20),
    orders_same_address=st.integers(min_value=0, max_value=20),
)
_POLICY = st.builds(
    lambda mode, phones, addresses: Policy.model_validate(
        {
            "confirmation": {"mode": mode},
            "fraud": {"blocked_phones": phones, "blocked_addresses": addresses},
        }
    ),
    st.sampled_from(list(ConfirmationMode)),
    st.lists(_text(40).map(lambda s: s or ""), max_size=2),
    st.lists(_text(60).map(lambda s: s or ""), max_size=2),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=_ORDER, policy=_POLICY, fraud=_FRAUD)
def test_check_order_never_raises_and_findings_are_well_formed(raw, policy, fraud):
    doc = _document(raw)
    if doc is None:
        return
    findings = check_order(doc, catalog=CATALOG, policy=policy, fraud=fraud)
    assert isinstance(findings, list)
    for f in findings:
        assert isinstance(f, Finding)
        assert f.cls is CODE_CLASS[f.code]
        assert f.field and f.message_en and f.message_zh
        json.dumps(f.model_dump(mode="json", by_alias=True), ensure_ascii=False)
    assert codes(findings) == codes(check_order(doc, catalog=CATALOG, policy=policy, fraud=fraud))
    assert isinstance(address_key(doc), str)
    key = phone_key(doc)
    assert key is None or (key and isinstance(key, str))


@settings(max_examples=200, deadline=None)
@given(raw=_ORDER, phone=st.from_regex(r"1[3-9][0-9]{8,10}", fullmatch=True))
def test_the_buyer_phone_never_appears_whole_in_a_finding(raw, phone):
    raw = {**raw, "buyer": {**raw["buyer"], "phone": phone}}
    doc = _document(raw)
    if doc is None or phone in json.dumps(raw["address"], ensure_ascii=False, default=str):
        return
    policy = Policy.model_validate({"fraud": {"blocked_phones": [phone]}})
    findings = check_order(doc, catalog=CATALOG, policy=policy, fraud=FraudContext())
    assert any(f.field == "buyer.phone" for f in findings)  # blocked, invalid, or both
    for f in findings:
        assert phone not in f.message_en + f.message_zh + json.dumps(f.detail, ensure_ascii=False)
