"""`demo --keep`'s morning (service/morning.py): the orders meant to wait for stock ask for more
than is free, whatever the demo's own restocks left over (a flake seen once: AM-08 was served)."""

from __future__ import annotations

from models.db import transaction
from models.settings import Settings
from models.tables import StockLevel
from service.morning import MORNING, free_units, morning_orders
from tests.harness.reference import load_sample


def test_the_stock_orders_ask_for_more_than_the_free_units(factory) -> None:
    load_sample(factory, {("TEA-LONGJING-250G", "HZ"): 3, ("TEA-LONGJING-250G", "SH"): 2})
    with transaction(factory) as session:  # one unit of HZ's already held for an order
        row = session.get(StockLevel, ("TEA-LONGJING-250G", "HZ"))
        row.reserved = 1
        session.add(row)
    free = free_units(factory)
    assert free["TEA-LONGJING-250G"] == 4
    orders = morning_orders("r1", Settings.model_construct(), free)
    asked = {doc.order_id: doc.lines[0].qty for kind, doc in orders if kind == "stock"}
    base = [qty for kind, *_, qty, _paid in MORNING if kind == "stock"]
    assert list(asked.values()) == [q + 4 for q in base]
    assert all(q > free["TEA-LONGJING-250G"] for q in asked.values())
    others = [(doc.lines[0].sku, doc.lines[0].qty) for kind, doc in orders if kind != "stock"]
    assert others == [(sku, qty) for kind, *_, sku, qty, _paid in MORNING if kind != "stock"]
    for _, doc in orders:  # the totals add up, so nothing else is flagged
        assert doc.total == sum(ln.unit_price * ln.qty for ln in doc.lines) - doc.discount + doc.shipping_fee
