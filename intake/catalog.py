"""The catalog as the check and the pick lists read it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from models.tables import (
    CatalogRow,
)
from models.types import CatalogEntry


def catalog_entries(session: Any, skus: list[str]) -> dict[str, CatalogEntry]:
    cat = CatalogRow.__table__
    rows = session.execute(select(cat).where(cat.c.sku.in_(sorted(set(skus)))))
    return {
        r.sku: CatalogEntry(
            sku=r.sku,
            name=r.name,
            price=r.price,
            weight_g=r.weight_g,
            attributes=r.attributes or {},
            active=r.active,
            usual_qty=r.usual_qty,
        )
        for r in rows
    }


def catalog_names(session: Any, skus: list[str]) -> dict[str, str]:
    """SKU -> product name, for pick lists."""
    cat = CatalogRow.__table__
    rows = session.execute(select(cat.c.sku, cat.c.name).where(cat.c.sku.in_(sorted(set(skus)))))
    return {sku: name for sku, name in rows}

