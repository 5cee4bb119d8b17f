"""The check's rules for items, money and fraud, the fraud window's keys, the whole check, and its
properties (SPEC §3.1)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intake.address_check import address_key
from intake.buyer import phone_key
from intake.check import check_order
from intake.findings import CODE_CLASS
from intake.fraud import check_fraud
from intake.items import check_items, check_payment, computed_total
from models.documents import OrderDocument
from models.enums import ConfirmationMode, FindingClass
from models.settings import Policy
from models.types import Finding, FraudContext
from tests.harness.rules import CATALOG, codes, order, run

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
