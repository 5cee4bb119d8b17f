"""Pricing: coupons, shipping by region and weight, and the review's price findings."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.documents import OrderDocument
from models.enums import FindingClass, FindingCode
from models.settings import Coupon, PricingPolicy
from models.types import CatalogEntry
from pricing.rules import (
    compute_totals,
    is_remote,
    review_prices,
    split_coupon_codes,
    to_cent,
    unknown_coupons,
)

D = Decimal
POLICY = PricingPolicy()  # SAVE10, MINUS20 (>=100), FULL200 (满200减20), FREESHIP (stackable)


def totals(lines, *, codes=(), province="浙江省", weight_g=0, policy=POLICY):
    return compute_totals(
        [(sku, qty, D(price)) for sku, qty, price in lines],
        coupon_codes=list(codes),
        province=province,
        weight_g=weight_g,
        policy=policy,
    )


def one_line(price: str, codes=(), **kwargs):
    return totals([("SKU", 1, price)], codes=codes, **kwargs)


# ------------------------------------------------------------------ subtotal and total


def test_subtotal_is_the_sum_of_quantity_times_catalog_price():
    t = totals([("A", 2, "59.00"), ("B", 3, "10.50")])
    assert t.subtotal == D("149.50")


def test_total_is_subtotal_minus_discount_plus_shipping():
    t = one_line("50.00", codes=["SAVE10"])
    assert (t.subtotal, t.discount, t.shipping_fee) == (D("50.00"), D("5.00"), D("10.00"))
    assert t.total == D("55.00")


def test_an_order_without_coupons_has_no_discount():
    t = one_line("20.00")
    assert t.discount == D("0.00")
    assert t.applied == []


# ------------------------------------------------------------------ coupons


def test_percent_coupon_takes_its_percentage_off_the_subtotal():
    t = one_line("250.00", codes=["SAVE10"])
    assert t.discount == D("25.00")
    assert t.applied[0] == "SAVE10"


def test_percent_discount_rounds_half_up_to_the_cent():
    # 10% of 1.05 is 0.105: half-up gives 0.11 where banker's rounding would give 0.10.
    t = one_line("1.05", codes=["SAVE10"])
    assert t.discount == D("0.11")
    assert t.total == D("10.94")


def test_percent_discount_rounds_down_below_the_half_cent():
    policy = PricingPolicy(coupons=[Coupon(code="P15", kind="percent", value=D("15"))])
    t = one_line("10.03", codes=["P15"], policy=policy)  # 1.5045
    assert t.discount == D("1.50")


def test_fixed_coupon_does_not_apply_below_its_threshold():
    t = one_line("99.99", codes=["MINUS20"])
    assert t.discount == D("0.00")
    assert "MINUS20" not in t.applied


def test_fixed_coupon_applies_exactly_at_its_threshold():
    t = one_line("100.00", codes=["MINUS20"])
    assert t.discount == D("20.00")
    assert "MINUS20" in t.applied


def test_fixed_coupon_without_threshold_always_applies():
    policy = PricingPolicy(coupons=[Coupon(code="OFF5", kind="fixed", value=D("5"))])
    t = one_line("12.00", codes=["OFF5"], policy=policy)
    assert t.discount == D("5.00")


def test_threshold_coupon_man_jian_applies_exactly_at_the_threshold():
    t = one_line("200.00", codes=["FULL200"])
    assert t.discount == D("20.00")
    assert t.total == D("180.00")


def test_threshold_coupon_does_not_apply_one_cent_below():
    t = one_line("199.99", codes=["FULL200"])
    assert t.discount == D("0.00")
    assert t.applied == ["rule:free_shipping_over:99.00"]


def test_only_the_first_of_two_non_stackable_coupons_applies():
    t = one_line("300.00", codes=["SAVE10", "FULL200"])
    assert t.discount == D("30.00")
    assert "SAVE10" in t.applied and "FULL200" not in t.applied


def test_the_order_of_codes_decides_between_non_stackable_coupons():
    t = one_line("300.00", codes=["FULL200", "SAVE10"])
    assert t.discount == D("20.00")
    assert "FULL200" in t.applied and "SAVE10" not in t.applied


def test_an_ineligible_non_stackable_coupon_does_not_block_the_next():
    t = one_line("150.00", codes=["FULL200", "MINUS20"])
    assert t.discount == D("20.00")
    assert "MINUS20" in t.applied and "FULL200" not in t.applied


def test_a_stackable_coupon_adds_on_to_a_non_stackable_one():
    t = one_line("50.00", codes=["SAVE10", "FREESHIP"])
    assert t.discount == D("5.00")
    assert t.shipping_fee == D("0.00")
    assert t.applied == ["SAVE10", "FREESHIP"]
    assert t.total == D("45.00")


def test_stackable_percent_coupons_add_on_without_compounding():
    policy = PricingPolicy(
        coupons=[
            Coupon(code="A5", kind="percent", value=D("5"), stackable=True),
            Coupon(code="B10", kind="percent", value=D("10"), stackable=True),
            Coupon(code="C20", kind="percent", value=D("20")),
        ]
    )
    t = one_line("200.00", codes=["A5", "B10", "C20"], policy=policy)
    assert t.discount == D("70.00")  # 10 + 20 + 40, each on the subtotal
    assert t.applied[:3] == ["A5", "B10", "C20"]


def test_discount_never_exceeds_the_subtotal():
    policy = PricingPolicy(
        coupons=[Coupon(code="BIG", kind="fixed", value=D("50"))], free_shipping_over=None
    )
    t = one_line("30.00", codes=["BIG"], policy=policy)
    assert t.discount == D("30.00")
    assert t.total == D("10.00")  # only the shipping fee is left
    assert "rule:discount_capped_at_subtotal" in t.applied


def test_a_code_given_twice_counts_once():
    t = one_line("50.00", codes=["SAVE10", "SAVE10"])
    assert t.discount == D("5.00")
    assert t.applied.count("SAVE10") == 1


def test_coupon_codes_match_case_insensitively_and_are_reported_canonically():
    t = one_line("50.00", codes=[" save10 "])
    assert t.discount == D("5.00")
    assert t.applied == ["SAVE10"]


def test_unknown_codes_change_nothing_in_the_totals():
    assert one_line("50.00", codes=["BOGUS"]) == one_line("50.00")


# ------------------------------------------------------------------ shipping


def test_shipping_is_free_exactly_at_the_free_shipping_amount():
    t = one_line("99.00")
    assert t.shipping_fee == D("0.00")
    assert "rule:free_shipping_over:99.00" in t.applied


def test_shipping_is_charged_one_cent_below_the_free_shipping_amount():
    t = one_line("98.99")
    assert t.shipping_fee == D("10.00")
    assert t.total == D("108.99")


def test_free_shipping_over_is_judged_after_the_discount():
    t = one_line("100.00", codes=["SAVE10"])  # 90.00 after discount
    assert t.shipping_fee == D("10.00")
    assert t.total == D("100.00")


def test_without_free_shipping_over_every_order_pays_shipping():
    t = one_line("5000.00", policy=PricingPolicy(free_shipping_over=None))
    assert t.shipping_fee == D("10.00")


def test_remote_province_pays_the_remote_fee():
    t = one_line("20.00", province="西藏自治区")
    assert t.shipping_fee == D("25.00")
    assert "rule:remote_shipping" in t.applied


def test_remote_province_written_in_short_form_still_counts_as_remote():
    assert one_line("20.00", province="新疆").shipping_fee == D("25.00")
    assert is_remote("内蒙古", POLICY.remote_provinces)


@pytest.mark.parametrize("province", ["浙江省", "广西壮族自治区", None, "", "新"])
def test_other_or_missing_provinces_pay_the_base_fee(province):
    assert one_line("20.00", province=province).shipping_fee == D("10.00")


def test_remote_orders_over_the_free_amount_ship_free():
    assert one_line("120.00", province="青海省").shipping_fee == D("0.00")


@pytest.mark.parametrize(
    ("weight_g", "fee"),
    [
        (0, "10.00"),
        (1000, "10.00"),
        (1001, "12.00"),
        (2000, "12.00"),
        (2001, "14.00"),
        (5500, "20.00"),
    ],
)
def test_each_started_kilogram_beyond_the_first_costs_extra(weight_g, fee):
    assert one_line("20.00", weight_g=weight_g).shipping_fee == D(fee)


def test_weight_surcharge_adds_to_the_remote_fee():
    t = one_line("20.00", province="西藏自治区", weight_g=3200)
    assert t.shipping_fee == D("31.00")  # 25 + 3 started kg x 2
    assert "rule:weight_over_first_kg:3" in t.applied


def test_free_shipping_coupon_waives_remote_and_weight_fees():
    t = one_line("20.00", codes=["FREESHIP"], province="西藏自治区", weight_g=9000)
    assert t.shipping_fee == D("0.00")
    assert t.total == D("20.00")


def test_fractional_fees_round_half_up_to_the_cent():
    policy = PricingPolicy(base_shipping_fee=D("7.125"), per_kg_over_first=D("0"))
    assert one_line("10.00", policy=policy).shipping_fee == D("7.13")


# ------------------------------------------------------------------ coupon codes


@pytest.mark.parametrize(
    ("raw", "codes"),
    [
        (None, []),
        ("", []),
        ("SAVE10", ["SAVE10"]),
        ("SAVE10,FREESHIP", ["SAVE10", "FREESHIP"]),
        ("SAVE10，FREESHIP", ["SAVE10", "FREESHIP"]),
        (" SAVE10 ; FREESHIP ,", ["SAVE10", "FREESHIP"]),
    ],
)
def test_coupon_code_field_splits_into_codes(raw, codes):
    assert split_coupon_codes(raw) == codes


def test_unknown_coupons_lists_only_codes_the_policy_lacks_once_each():
    assert unknown_coupons(["SAVE10", "NOPE", "nope", "freeship", "ALSO"], POLICY) == [
        "NOPE",
        "ALSO",
    ]


def test_unknown_coupons_is_empty_for_known_codes():
    assert unknown_coupons(["save10", "FREESHIP"], POLICY) == []


@given(
    prices=st.lists(
        st.decimals(min_value=D("0.01"), max_value=D("999.99"), places=2), min_size=1, max_size=5
    ),
    qty=st.integers(min_value=1, max_value=5),
    codes=st.lists(st.sampled_from(["SAVE10", "MINUS20", "FULL200", "FREESHIP", "X"]), max_size=4),
    weight_g=st.integers(min_value=0, max_value=20000),
    province=st.sampled_from(["浙江省", "西藏自治区", None]),
)
def test_totals_always_add_up_in_whole_cents(prices, qty, codes, weight_g, province):
    t = compute_totals(
        [(f"S{i}", qty, p) for i, p in enumerate(prices)],
        coupon_codes=codes,
        province=province,
        weight_g=weight_g,
        policy=POLICY,
    )
    assert D("0") <= t.discount <= t.subtotal
    assert t.shipping_fee >= 0
    assert t.total == t.subtotal - t.discount + t.shipping_fee
    for amount in (t.subtotal, t.discount, t.shipping_fee, t.total):
        assert amount == to_cent(amount)
    non_stackable = [c for c in t.applied if c in ("SAVE10", "MINUS20", "FULL200")]
    assert len(non_stackable) <= 1


# ------------------------------------------------------------------ review_prices

CATALOG = {
    "TSHIRT-RED-M": CatalogEntry(sku="TSHIRT-RED-M", name="T恤", price=D("59.00"), weight_g=300),
    "KETTLE": CatalogEntry(sku="KETTLE", name="水壶", price=D("120.00"), weight_g=1800),
}


def order(**overrides) -> OrderDocument:
    raw = {
        "order_id": "TB20261126-0001",
        "address": {"province": "浙江省", "city": "杭州市"},
        "lines": [{"sku": "TSHIRT-RED-M", "qty": 1}],
        "discount": "0.00",
        "shipping_fee": "10.00",
        "total": "69.00",
    }
    raw.update(overrides)
    return OrderDocument.model_validate(raw)


def by_field(findings):
    return {f.field: f for f in findings}


def test_an_order_whose_figures_match_has_no_findings():
    t, findings = review_prices(order(), CATALOG, POLICY)
    assert findings == []
    assert t.total == D("69.00")


def test_a_wrong_total_is_a_price_mismatch_with_both_figures():
    _, findings = review_prices(order(total="60.00"), CATALOG, POLICY)
    assert len(findings) == 1
    f = findings[0]
    assert f.code == FindingCode.PRICE_MISMATCH
    assert f.cls == FindingClass.REVIEW
    assert f.field == "total"
    assert f.detail["expected"] == "69.00"
    assert f.detail["actual"] == "60.00"
    assert f.detail["difference"] == "-9.00"
    assert "69.00" in f.message_en and "60.00" in f.message_en
    assert "69.00" in f.message_zh and "订单总额" in f.message_zh
    assert f.public()["class"] == "review"


def test_a_wrong_shipping_fee_and_total_are_each_reported():
    # The seller charged no shipping on a 59.00 order.
    _, findings = review_prices(order(shipping_fee="0.00", total="59.00"), CATALOG, POLICY)
    fields = by_field(findings)
    assert set(fields) == {"shipping_fee", "total"}
    assert fields["shipping_fee"].detail == {
        "expected": "10.00",
        "actual": "0.00",
        "difference": "-10.00",
    }


def test_a_discount_the_coupon_does_not_give_is_a_mismatch():
    # SAVE10 on 118.00 gives 11.80, not 20.00.
    doc = order(
        lines=[{"sku": "TSHIRT-RED-M", "qty": 2}],
        coupon_code="SAVE10",
        discount="20.00",
        shipping_fee="0.00",
        total="98.00",
    )
    t, findings = review_prices(doc, CATALOG, POLICY)
    assert t.discount == D("11.80")
    fields = by_field(findings)
    assert fields["discount"].detail["expected"] == "11.80"
    assert fields["discount"].detail["actual"] == "20.00"
    assert fields["total"].detail["expected"] == "106.20"
    assert all(f.code == FindingCode.PRICE_MISMATCH for f in findings)


def test_differences_within_the_tolerance_are_accepted():
    policy = PricingPolicy(price_tolerance=D("0.05"))
    _, findings = review_prices(order(total="69.05"), CATALOG, policy)
    assert findings == []


def test_differences_just_over_the_tolerance_are_reported():
    policy = PricingPolicy(price_tolerance=D("0.05"))
    _, findings = review_prices(order(total="69.06"), CATALOG, policy)
    assert [f.field for f in findings] == ["total"]


def test_figures_the_order_does_not_state_are_not_compared():
    _, findings = review_prices(
        order(discount=None, shipping_fee=None, total=None), CATALOG, POLICY
    )
    assert findings == []


def test_an_unknown_coupon_is_a_review_finding_on_coupon_code():
    _, findings = review_prices(order(coupon_code="WELCOME99"), CATALOG, POLICY)
    assert len(findings) == 1
    f = findings[0]
    assert f.code == FindingCode.COUPON_UNKNOWN
    assert f.cls == FindingClass.REVIEW
    assert f.field == "coupon_code"
    assert f.detail == {"coupon": "WELCOME99"}
    assert "WELCOME99" in f.message_en and "WELCOME99" in f.message_zh


def test_a_comma_separated_coupon_list_applies_known_codes_and_flags_unknown_ones():
    doc = order(coupon_code="FREESHIP,WELCOME99", shipping_fee="0.00", total="59.00")
    t, findings = review_prices(doc, CATALOG, POLICY)
    assert t.applied == ["FREESHIP"]
    assert [(f.code, f.field) for f in findings] == [(FindingCode.COUPON_UNKNOWN, "coupon_code")]


def test_skus_missing_from_the_catalog_are_left_out_of_the_figures():
    doc = order(lines=[{"sku": "TSHIRT-RED-M", "qty": 1}, {"sku": "GHOST", "qty": 5}])
    t, findings = review_prices(doc, CATALOG, POLICY)
    assert t.subtotal == D("59.00")
    assert findings == []


def test_catalog_prices_win_over_the_order_line_prices():
    doc = order(lines=[{"sku": "TSHIRT-RED-M", "qty": 1, "unit_price": "9.00"}], total="19.00")
    t, findings = review_prices(doc, CATALOG, POLICY)
    assert t.subtotal == D("59.00")
    assert by_field(findings)["total"].detail["expected"] == "69.00"


def test_shipping_uses_catalog_weight_times_quantity_and_the_buyer_province():
    # 2 kettles x 1800 g = 3600 g: 3 started kg over the first; Xinjiang is remote.
    doc = order(
        address={"province": "新疆维吾尔自治区", "city": "乌鲁木齐市"},
        lines=[{"sku": "KETTLE", "qty": 2}],
        coupon_code="SAVE10",
        discount="24.00",
        shipping_fee="0.00",
        total="216.00",
    )
    t, findings = review_prices(doc, CATALOG, POLICY)
    assert t.shipping_fee == D("0.00")  # 216.00 after discount is over 99
    assert findings == []

    policy = PricingPolicy(free_shipping_over=None)
    t, findings = review_prices(doc, CATALOG, policy)
    assert t.shipping_fee == D("31.00")  # 25 + 3 x 2
    assert by_field(findings)["shipping_fee"].detail["expected"] == "31.00"
