"""The sample files a new user tries first: every flaw is named with the right class."""

from __future__ import annotations

import json

import pytest

from intake.check import check_order
from intake.messages import buyer_message
from models.documents import CatalogItem, parse_order
from models.enums import Channel, FindingClass
from models.settings import Policy
from models.types import CatalogEntry, FraudContext
from tests.harness import SAMPLE

EXPECTED = {
    "FLAW-PHONE-1": {("phone_invalid", "buyer.phone", "buyer")},
    "FLAW-DISTRICT-2": {("address_inconsistent", "address.district", "buyer")},
    "FLAW-VAGUE-3": {("address_vague", "address.detail", "buyer")},
    "FLAW-MISSING-4": {
        ("name_missing", "buyer.name", "buyer"),
        ("address_incomplete", "address.district", "buyer"),
        ("postal_code_invalid", "address.postal_code", "buyer"),
    },
    "FLAW-SKU-5": {
        ("sku_unknown", "lines[0].sku", "reject"),
        ("sku_inactive", "lines[1].sku", "reject"),
    },
    "FLAW-MONEY-6": {
        ("sku_attribute_mismatch", "lines[0].attributes", "review"),
        ("price_mismatch", "lines[0].unit_price", "review"),
        ("amount_mismatch", "payment.amount", "payment"),
    },
    "FLAW-UNPAID-7": {("unpaid", "payment.status", "payment")},
    "FLAW-COD-8": {("cod_unconfirmed", "payment.status", "buyer")},
    "FLAW-NONE-9": set(),
}

# What the buyer is asked, in the clerk's words.
ASKS = {
    "FLAW-PHONE-1": "电话",
    "FLAW-DISTRICT-2": "鼓楼区",
    "FLAW-VAGUE-3": "门牌号",
    "FLAW-MISSING-4": "邮编",
    "FLAW-COD-8": "货到付款",
}


@pytest.fixture(scope="module")
def catalog() -> dict[str, CatalogEntry]:
    items = json.loads((SAMPLE / "catalog.json").read_text(encoding="utf-8"))
    return {i["sku"]: CatalogEntry(**CatalogItem.model_validate(i).model_dump()) for i in items}


def _orders(name: str) -> list:
    docs = []
    for raw in json.loads((SAMPLE / name).read_text(encoding="utf-8")):
        doc, problems = parse_order(raw)
        assert doc is not None, problems
        docs.append(doc)
    return docs


@pytest.mark.parametrize("doc", _orders("flawed-orders.json"), ids=lambda d: d.order_id)
def test_each_flaw_of_the_sample_file_is_a_finding_of_the_right_class(doc, catalog):
    findings = check_order(doc, catalog=catalog, policy=Policy(), fraud=FraudContext())
    assert {(str(f.code), f.field, str(f.cls)) for f in findings} == EXPECTED[doc.order_id]
    assert all(f.message_en and f.message_zh for f in findings)


@pytest.mark.parametrize("order_id", sorted(ASKS))
def test_the_buyer_is_asked_for_exactly_what_is_missing_naming_the_goods(order_id, catalog):
    doc = next(d for d in _orders("flawed-orders.json") if d.order_id == order_id)
    named = doc.model_copy(
        update={"lines": [li.model_copy(update={"name": catalog[li.sku].name}) for li in doc.lines]}
    )
    findings = check_order(doc, catalog=catalog, policy=Policy(), fraud=FraudContext())
    asked = [f for f in findings if f.cls == FindingClass.BUYER]
    text = buyer_message(named, asked, channel=Channel.IM)
    assert ASKS[order_id] in text
    assert catalog[doc.lines[0].sku].name in text
    assert doc.buyer.phone not in text


def test_the_demo_orders_are_well_formed_and_only_the_intended_ones_are_flagged(catalog):
    flagged = {
        d.order_id: {
            str(f.code)
            for f in check_order(d, catalog=catalog, policy=Policy(), fraud=FraudContext())
        }
        for d in _orders("orders.json")
    }
    assert flagged["DEMO-CLEAN-1"] == set()
    assert flagged["DEMO-BUYER-2"] == {"address_vague"}
    assert flagged["DEMO-UNPAID-3"] == {"unpaid"}
    assert flagged["DEMO-SHORT-4"] == set()
    assert flagged["DEMO-CANCEL-6"] == set()
