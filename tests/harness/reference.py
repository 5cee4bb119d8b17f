"""The sample reference data (catalog, warehouses, stock) loaded into a test's database through
the same `load_reference` as `oms load`."""

from __future__ import annotations

import json
from typing import Any

from models.db import SessionFactory, transaction
from reads.queries import load_reference
from tests.harness import SAMPLE
from tests.harness.documents import HOT


def sample(name: str) -> list[dict[str, Any]]:
    return json.loads((SAMPLE / f"{name}.json").read_text(encoding="utf-8"))


def load_sample(
    factory: SessionFactory,
    stock: dict[tuple[str, str], int] | None = None,
    *,
    warehouses: frozenset[str] | None = frozenset({"HZ", "SH"}),
) -> None:
    """The sample catalog, its warehouses (`warehouses`; None: all) with their sample stock, then
    `stock` on top. With the two default warehouses the hot SKU starts at nothing in either
    unless `stock` says otherwise."""
    whs = [w for w in sample("warehouses") if warehouses is None or w["code"] in warehouses]
    items = [s for s in sample("stock") if warehouses is None or s["warehouse"] in warehouses]
    wanted = dict(stock or {})
    if warehouses is not None:
        wanted = {(HOT, "HZ"): 0, (HOT, "SH"): 0, **wanted}
    items += [{"sku": sku, "warehouse": wh, "on_hand": qty} for (sku, wh), qty in wanted.items()]
    with transaction(factory) as session:
        for kind, data in (("catalog", sample("catalog")), ("warehouses", whs), ("stock", items)):
            count, errors = load_reference(session, kind, data)
            assert errors == [] and count == len(data), errors
