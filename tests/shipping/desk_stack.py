"""The desk on the real service: the sample's barcodes, senders and carriers, and pools."""

from __future__ import annotations

import json
from typing import Any

from models.db import SessionFactory, transaction
from shipping import pool
from shipping.reference import load_carriers, load_extras
from tests.shipping.helpers import ROOT, pool_numbers


def sample(name: str) -> list[dict[str, Any]]:
    return json.loads((ROOT / "sample" / f"{name}.json").read_text(encoding="utf-8"))


def barcode(sku: str) -> str:
    return next(item["barcode"] for item in sample("catalog") if item["sku"] == sku)


def seed_desk(factory: SessionFactory, numbers: int = 50) -> None:
    with transaction(factory) as session:
        assert load_extras(session, "catalog", sample("catalog")) == []
        assert load_extras(session, "warehouses", sample("warehouses")) == []
        load_carriers(session, sample("carriers"))
    with transaction(factory) as session:
        for carrier in ("ZTO", "SF", "YTO", "EMS"):
            pool.load(session, carrier, pool_numbers(carrier, numbers))
