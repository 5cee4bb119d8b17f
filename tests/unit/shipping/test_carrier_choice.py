"""The carrier choice at release (SPEC §3.10 item 1): pure rules, then loaded from a file."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.db import transaction
from shipping.carriers import Carrier, ShipmentFacts, choose, parse_carriers, requested_carrier
from shipping.reference import BadReference, carriers, load_carriers
from tests.harness import SAMPLE

CARRIERS = SAMPLE / "carriers.json"


def sample() -> list[Carrier]:
    found, errors = parse_carriers(json.loads(CARRIERS.read_text(encoding="utf-8")))
    assert errors == []
    return found


def facts(**kw) -> ShipmentFacts:
    base = {"province": "浙江省", "weight_g": 800, "cod": False, "warehouse": "HZ"}
    return ShipmentFacts(**{**base, **kw})


def test_the_cheapest_carrier_is_chosen_and_the_reason_names_price_and_province() -> None:
    choice = choose(facts(), sample())
    assert choice.carrier == "ZTO"
    assert choice.cost == Decimal("4.00")
    assert "cheapest" in choice.reason and "浙江省" in choice.reason


def test_a_remote_province_excludes_carriers_that_do_not_deliver_there() -> None:
    choice = choose(facts(province="西藏自治区"), sample())
    assert choice.carrier == "EMS"  # SF 23.00, EMS 15.00; ZTO and YTO excluded
    assert choice.refused["ZTO"] == "does not deliver to 西藏自治区"
    assert "YTO" in choice.refused


def test_extra_kilograms_are_charged_per_started_kilogram() -> None:
    zto = sample()[0]
    assert zto.cost("广东省", 1000) == Decimal("8.00")
    assert zto.cost("广东省", 1001) == Decimal("13.00")
    assert zto.cost("广东省", 0) == Decimal("8.00")


def test_a_parcel_over_a_carriers_weight_limit_goes_to_one_that_takes_it() -> None:
    choice = choose(facts(weight_g=35000), sample())
    assert choice.carrier == "SF"  # SF 12 + 2*34 = 80 beats EMS 15 + 6*34 = 219
    assert choice.cost == Decimal("80.00")
    assert choice.refused["ZTO"] == "takes at most 30000 g, the parcel weighs 35000 g"


def test_cash_on_delivery_needs_a_carrier_that_collects() -> None:
    choice = choose(facts(cod=True), sample())
    assert choice.carrier == "SF"
    assert choice.refused["ZTO"] == "does not collect cash on delivery"


def test_the_buyers_carrier_wins_where_it_can_serve() -> None:
    asked = requested_carrier("请发顺丰，谢谢", sample())
    assert asked == "SF"
    choice = choose(facts(requested=asked), sample())
    assert choice.carrier == "SF"
    assert choice.reason == "the buyer asked for 顺丰速运"


def test_the_buyers_carrier_that_cannot_serve_gives_way_to_the_cheapest_with_why() -> None:
    choice = choose(facts(requested="YTO", warehouse="GZ"), sample())
    assert choice.carrier == "ZTO"
    assert choice.reason.startswith("the buyer asked for YTO, which does not collect at warehouse GZ")


def test_a_tie_goes_to_the_earlier_carrier_in_the_file() -> None:
    same = [
        {"code": "AAA", "name": "A", "rates": [{"provinces": "*", "first_kg": "5", "extra_kg": "1"}],
         "waybill": {"kind": "pool"}},
        {"code": "BBB", "name": "B", "rates": [{"provinces": "*", "first_kg": "5", "extra_kg": "1"}],
         "waybill": {"kind": "pool"}},
    ]
    found, _ = parse_carriers(list(reversed(same)))
    choice = choose(facts(), found)
    assert choice.carrier == "BBB"
    assert "as cheap: AAA" in choice.reason


def test_no_carrier_gives_every_refusal() -> None:
    choice = choose(facts(province="西藏自治区", cod=True, weight_g=60000), sample())
    assert choice.carrier is None
    assert choice.reason.startswith("no carrier serves this shipment")
    assert set(choice.refused) == {"ZTO", "YTO", "SF", "EMS"}


def test_a_bad_carriers_file_names_each_field() -> None:
    _, errors = parse_carriers([
        {"code": "zto", "name": "x", "rates": [], "waybill": {"kind": "pool"}},
        {"code": "SF", "name": "y", "rates": [{"provinces": "*", "first_kg": "-1", "extra_kg": "1"}],
         "waybill": {"kind": "fax"}},
    ])
    joined = "\n".join(errors)
    assert "[0].code" in joined and "[0].rates" in joined
    assert "[1].rates.0.first_kg" in joined and "[1].waybill" in joined


@given(
    weight=st.integers(min_value=0, max_value=60000),
    province=st.sampled_from(["浙江省", "广东省", "西藏自治区", "新疆维吾尔自治区"]),
    cod=st.booleans(),
    warehouse=st.sampled_from(["HZ", "SH", "GZ"]),
)
def test_the_choice_is_always_a_carrier_that_can_serve_and_none_cheaper(
    weight: int, province: str, cod: bool, warehouse: str
) -> None:
    all_ = sample()
    f = ShipmentFacts(province=province, weight_g=weight, cod=cod, warehouse=warehouse)
    choice = choose(f, all_)
    from shipping.carriers import why_not

    able = [c for c in all_ if why_not(c, f) is None]
    if not able:
        assert choice.carrier is None
        return
    chosen = next(c for c in all_ if c.code == choice.carrier)
    assert why_not(chosen, f) is None
    assert all(choice.cost <= c.cost(province, weight) for c in able)


def test_carriers_load_into_the_database_and_back(factory) -> None:
    items = json.loads(CARRIERS.read_text(encoding="utf-8"))
    with transaction(factory) as session:
        assert load_carriers(session, items) == 4
    with transaction(factory) as session:
        assert load_carriers(session, items) == 4  # an upsert
        loaded = carriers(session)
    assert [c.code for c in loaded] == ["ZTO", "YTO", "SF", "EMS"]
    assert choose(facts(cod=True), loaded).carrier == "SF"
    with pytest.raises(BadReference, match=r"\[0\]\.rates"), transaction(factory) as session:
        load_carriers(session, [{"code": "X", "name": "x", "rates": [], "waybill": {"kind": "pool"}}])
