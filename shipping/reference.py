"""Loading and reading the desk's reference data: carriers, item barcodes, senders."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlmodel import Session, select

from models.errors import OmsError
from shipping.carriers import Carrier, parse_carriers
from shipping.tables import CarrierRow, ItemBarcodeRow, WarehouseSenderRow


class BadReference(OmsError, ValueError):
    """A reference file that cannot be loaded; nothing of it was written."""


def load_carriers(session: Session, items: Any) -> int:
    """Upsert the carriers of a file (all or nothing); answer how many."""
    carriers, errors = parse_carriers(items)
    if errors:
        raise BadReference("\n".join(errors))
    now = datetime.now(UTC)
    for c in carriers:
        row = session.get(CarrierRow, c.code) or CarrierRow(code=c.code, name=c.name, updated_at=now)
        row.name, row.rank, row.cod, row.max_weight_g = c.name, c.rank, c.cod, c.max_weight_g
        row.warehouses = c.warehouses
        row.excluded_provinces = list(c.excluded_provinces)
        row.rates = [r.model_dump(mode="json") for r in c.rates]
        row.waybill = c.waybill.model_dump(mode="json")
        row.updated_at = now
        session.add(row)
    return len(carriers)


def carriers(session: Session) -> list[Carrier]:
    rows = session.exec(select(CarrierRow).order_by(CarrierRow.rank, CarrierRow.code)).all()
    return [Carrier.model_validate({
        "code": r.code, "name": r.name, "cod": r.cod, "max_weight_g": r.max_weight_g,
        "warehouses": r.warehouses, "excluded_provinces": r.excluded_provinces,
        "rates": r.rates, "waybill": r.waybill, "rank": r.rank,
    }) for r in rows]


def carrier(session: Session, code: str) -> Carrier | None:
    return next((c for c in carriers(session) if c.code == code), None)


class Sender(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(min_length=1, max_length=100)
    phone: str = Field(min_length=1, max_length=40)
    province: str = Field(min_length=1, max_length=50)
    city: str = Field(min_length=1, max_length=50)
    district: str = Field(default="", max_length=50)
    detail: str = Field(min_length=1, max_length=200)


def load_extras(session: Session, kind: str, items: list[Any]) -> list[str]:
    """The desk's part of `oms load catalog|warehouses`: catalog `barcode`s, warehouse
    `sender`s. Answers one message per bad field; writes only when there is none."""
    errors: list[str] = []
    rows: list[Any] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        if kind == "catalog" and item.get("barcode") is not None:
            code = item["barcode"]
            if not isinstance(code, str) or not code.strip() or len(code) > 64:
                errors.append(f"[{i}].barcode: a text of 1-64 characters")
                continue
            rows.append(ItemBarcodeRow(barcode=code.strip(), sku=str(item.get("sku"))))
        elif kind == "warehouses" and item.get("sender") is not None:
            try:
                sender = Sender.model_validate(item["sender"])
            except ValidationError as exc:
                errors.extend(f"[{i}].sender.{'.'.join(map(str, e['loc']))}: {e['msg']}"
                              for e in exc.errors())
                continue
            rows.append(WarehouseSenderRow(warehouse=str(item.get("code")),
                                           sender=sender.model_dump()))
    if errors:
        return errors
    for row in rows:
        session.merge(row)
    return []


def barcodes_of(session: Session, skus: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    rows = session.exec(select(ItemBarcodeRow).where(ItemBarcodeRow.sku.in_(skus))).all()  # type: ignore[attr-defined]
    for r in rows:
        out.setdefault(r.sku, []).append(r.barcode)
    return out


def sender_of(session: Session, warehouse: str) -> dict[str, Any] | None:
    row = session.get(WarehouseSenderRow, warehouse)
    return dict(row.sender) if row else None
