"""Platform orders -> order documents: exact money, the merchant's SKU, the extras."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from models.documents import check_document
from platforms import pinduoduo, taobao
from platforms.mapping import Receiver, fen, with_receiver, yuan
from platforms.standin.trades import RECEIVER, pdd_order, taobao_trade

NOW = time.time()
cents = st.integers(min_value=0, max_value=99_999_999)
sku_code = st.from_regex(r"[A-Z]{1,6}-[A-Z0-9]{1,6}", fullmatch=True)


@given(cents)
def test_money_is_exact_from_yuan_strings_yuan_numbers_and_fen(n: int) -> None:
    exact = Decimal(n) / 100
    as_text = f"{exact:.2f}"
    assert yuan(as_text, "x") == exact
    assert yuan(float(as_text), "x") == exact  # a JSON number, as Pinduoduo sends it
    assert fen(n, "x") == exact
    assert fen(str(n), "x") == exact
    if n % 100 == 0:
        assert yuan(n // 100, "x") == exact


def test_money_problems_name_the_field() -> None:
    for bad, why in [
        ("abc", "not an amount"),
        ("-1.00", "negative"),
        ("1.005", "2 decimal"),
        (float("nan"), "finite"),
        (True, "not an amount"),
        (None, "missing"),
    ]:
        try:
            yuan(bad, "orders.order[0].price")
        except ValueError as exc:
            assert str(exc).startswith("orders.order[0].price: ")
            assert why in str(exc)
        else:
            raise AssertionError(f"{bad!r} was taken as money")
    assert yuan(None, "post_fee", required=False) is None


line_st = st.tuples(
    sku_code, st.integers(1, 50), cents.map(lambda n: f"{Decimal(n % 10_000_000) / 100:.2f}")
)


@settings(max_examples=60, deadline=None)
@given(
    lines=st.lists(line_st, min_size=1, max_size=5),
    post=st.integers(0, 5000),
    discount_share=st.integers(0, 100),
    which_code=st.lists(st.sampled_from(["outer_sku_id", "outer_iid"]), min_size=5, max_size=5),
    hours=st.integers(1, 96),
)
def test_taobao_trades_map_exactly(
    lines: list[tuple[str, int, str]],
    post: int,
    discount_share: int,
    which_code: list[str],
    hours: int,
) -> None:
    goods = sum(Decimal(p) * q for _, q, p in lines)
    discount = (goods * discount_share / 100).quantize(Decimal("0.01"))
    post_fee = Decimal(post) / 100
    trade, _ = taobao_trade(
        "3912345678901234",
        lines=lines,
        modified=NOW,
        post_fee=f"{post_fee:.2f}",
        discount_fee=f"{discount:.2f}",
        buyer_message="请放快递柜",
        seller_memo="老客户，送小样",
        seller_flag=1,
    )
    for line, code in zip(trade["orders"]["order"], which_code, strict=False):
        if code == "outer_iid":  # no SKU-level code: the item's code is the merchant's SKU
            line["outer_iid"] = line.pop("outer_sku_id")
    mapped = taobao.map_trade(trade, shop="tb1", ship_within=timedelta(hours=hours))
    assert mapped.problems == [] and mapped.document is not None
    doc = mapped.document
    assert doc["order_id"] == "taobao-3912345678901234"
    assert [ln["sku"] for ln in doc["lines"]] == [sku for sku, _, _ in lines]
    assert [ln["qty"] for ln in doc["lines"]] == [q for _, q, _ in lines]
    assert [Decimal(ln["unit_price"]) for ln in doc["lines"]] == [Decimal(p) for _, _, p in lines]
    total = sum(Decimal(ln["unit_price"]) * ln["qty"] for ln in doc["lines"])
    total += Decimal(doc["shipping_fee"]) - Decimal(doc["discount"])
    assert total == Decimal(doc["total"]) == Decimal(doc["payment"]["amount"])
    assert doc["remarks"] == "请放快递柜"
    assert doc["clerk_note"] == "卖家备注 (红旗): 老客户，送小样"
    paid = datetime.fromisoformat(doc["ship_by"]) - timedelta(hours=hours)
    assert paid == taobao.china_time(trade["pay_time"], "pay_time")
    assert mapped.sealed is not None and mapped.sealed.oaid == trade["oaid"]
    checked = check_document(doc)
    assert checked.errors == [] and checked.document is not None
    assert checked.document.buyer.name is None  # nothing masked reaches the check


@settings(max_examples=60, deadline=None)
@given(
    lines=st.lists(line_st, min_size=1, max_size=5),
    post=st.integers(0, 5000),
    discount_share=st.integers(0, 100),
)
def test_pdd_orders_map_exactly_from_yuan_numbers(
    lines: list[tuple[str, int, str]], post: int, discount_share: int
) -> None:
    goods = sum(Decimal(p) * q for _, q, p in lines)
    discount = (goods * discount_share / 100).quantize(Decimal("0.01"))
    order, _ = pdd_order(
        "261126-012345678901234",
        lines=lines,
        modified=NOW,
        postage=f"{Decimal(post) / 100:.2f}",
        discount=f"{discount:.2f}",
        buyer_memo="周末送",
        remark="已电话确认",
    )
    assert isinstance(order["pay_amount"], float)
    mapped = pinduoduo.map_order(order, shop="pdd1")
    assert mapped.problems == [] and mapped.document is not None
    doc = mapped.document
    assert doc["order_id"] == "pdd-261126-012345678901234"
    assert [ln["sku"] for ln in doc["lines"]] == [sku for sku, _, _ in lines]
    assert [Decimal(ln["unit_price"]) for ln in doc["lines"]] == [Decimal(p) for _, _, p in lines]
    assert Decimal(doc["discount"]) == discount
    total = sum(Decimal(ln["unit_price"]) * ln["qty"] for ln in doc["lines"])
    total += Decimal(doc["shipping_fee"]) - Decimal(doc["discount"])
    assert total == Decimal(doc["total"])
    assert (
        doc["ship_by"]
        == pinduoduo.china_time(order["last_ship_time"], "last_ship_time").isoformat()
    )
    assert (doc["remarks"], doc["clerk_note"]) == ("周末送", "卖家备注: 已电话确认")
    assert mapped.sealed is not None and set(mapped.sealed.ciphertexts) == {
        "name",
        "phone",
        "detail",
    }
    assert check_document(doc).errors == []


def test_the_receiver_fills_in_only_after_decryption() -> None:
    trade, _ = taobao_trade("3912345678901234", lines=[("A-1", 1, "10.00")], modified=NOW)
    mapped = taobao.map_trade(trade, shop="tb1")
    assert mapped.document is not None
    doc = mapped.document
    assert doc["receiver_masked"] == {"name": "张*", "mobile": "*******5678", "detail": "文三路**"}
    assert doc["buyer"]["name"] is None and doc["address"]["detail"] is None
    full = with_receiver(
        doc, Receiver(name="张三", phone="13812345678", detail=RECEIVER["address"])
    )
    assert full["buyer"]["name"] == "张三" and full["address"]["detail"] == "文三路100号3幢501室"
    assert full["address"]["province"] == "浙江省" and doc["buyer"]["name"] is None
    checked = check_document(full)
    assert checked.document is not None and checked.document.buyer.phone == "13812345678"


def test_malformed_trades_are_problems_naming_the_field() -> None:
    trade, _ = taobao_trade(
        "3912345678901234", lines=[("A-1", 1, "10.00"), ("B-1", 1, "5.00")], modified=NOW
    )
    trade["orders"]["order"][1].pop("outer_sku_id")
    trade["orders"]["order"][1].pop("outer_iid")
    trade["orders"]["order"][0]["price"] = "ten"
    trade.pop("created")
    mapped = taobao.map_trade(trade, shop="tb1")
    assert mapped.document is None and mapped.order_id == "taobao-3912345678901234"
    fields = {p.field for p in mapped.problems}
    assert fields == {"orders.order[1].outer_sku_id", "orders.order[0].price", "created"}
    assert all(p.message for p in mapped.problems)
    for junk in (None, [], "x", {"tid": None}, {"tid": "12a"}, {"tid": True}):
        bad = taobao.map_trade(junk, shop="tb1")
        assert bad.document is None and bad.problems
    no_lines = taobao.map_trade({"tid": 1, "orders": {"order": []}}, shop="tb1")
    assert "orders.order" in {p.field for p in no_lines.problems}


def test_malformed_pdd_orders_are_problems_naming_the_field() -> None:
    order, _ = pdd_order("261126-1", lines=[("A-1", 1, "9.90")], modified=NOW)
    order["item_list"][0]["outer_id"] = ""
    order["item_list"][0]["goods_count"] = 0
    order["pay_amount"] = "lots"
    order["receiver_phone"] = "13812345678"  # plaintext where ciphertext belongs: never kept
    mapped = pinduoduo.map_order(order, shop="pdd1")
    assert mapped.document is None
    assert {p.field for p in mapped.problems} == {
        "item_list[0].outer_id",
        "item_list[0].goods_count",
        "pay_amount",
        "receiver_phone",
    }
    assert "13812345678" not in repr(mapped)


def test_the_platform_view_tells_paid_closed_refunded_and_the_address() -> None:
    trade, _ = taobao_trade(
        "3912345678901234",
        lines=[("A-1", 1, "10.00"), ("B-1", 1, "5.00")],
        modified=NOW,
        status="WAIT_BUYER_PAY",
    )
    unpaid = taobao.map_trade(trade, shop="tb1")
    assert unpaid.document is not None and unpaid.document["payment"]["status"] == "pending"
    assert unpaid.view is not None and not unpaid.view.paid and "ship_by" not in unpaid.document
    trade["orders"]["order"][0]["refund_status"] = "WAIT_SELLER_AGREE"
    trade["orders"]["order"][1]["refund_status"] = "SUCCESS"
    view = taobao.map_trade(trade, shop="tb1").view
    assert view is not None and sorted(view.refunds.values()) == ["refunded", "requested"]
    trade["status"] = "TRADE_CLOSED"
    closed = taobao.map_trade(trade, shop="tb1")
    assert closed.view is not None and closed.view.closed and not closed.importable
    order, _ = pdd_order("261126-1", lines=[("A-1", 1, "9.90")], modified=NOW, refund_status=4)
    refunded = pinduoduo.map_order(order, shop="pdd1")
    assert refunded.view is not None and refunded.view.refunds == {"*": "refunded"}
    assert not refunded.importable
