"""The shipping desk's test harness: reference data, orders as the release leaves them, the
sample's barcodes and carriers on a running service, `oms` in a subprocess, and reading labels
back (pdftoppm + zbarimg, pdftotext)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from models.db import SessionFactory, transaction
from models.tables import CatalogRow, Order, Shipment, WarehouseRow
from shipping import pool
from shipping.reference import load_carriers, load_extras

ROOT = Path(__file__).resolve().parents[2]

CATALOG = [
    {"sku": "TSHIRT-RED-M", "name": "红色T恤 M码", "price": "59.00", "weight_g": 250,
     "barcode": "6901234567892"},
    {"sku": "MUG-WHITE", "name": "白色马克杯", "price": "35.00", "weight_g": 400,
     "barcode": "6901234567908"},
    {"sku": "TEA-250G", "name": "西湖龙井 250克", "price": "268.00", "weight_g": 300,
     "barcode": "6901234567915"},
]
WAREHOUSES = [
    {"code": "HZ", "name": "杭州仓", "province": "浙江省", "priority": 1,
     "sender": {"name": "杭州仓发货组", "phone": "057188886666", "province": "浙江省",
                "city": "杭州市", "district": "余杭区", "detail": "仓前街道1号"}},
    {"code": "GZ", "name": "广州仓", "province": "广东省", "priority": 3},
]


def seed_reference(factory: SessionFactory, *, numbers: dict[str, int] | None = None) -> None:
    """Catalog, warehouses (with a sender), the sample carriers, and pool numbers."""
    with transaction(factory) as session:
        for item in CATALOG:
            session.add(CatalogRow(sku=item["sku"], name=item["name"], price=item["price"],
                                   weight_g=item["weight_g"]))
        for wh in WAREHOUSES:
            session.add(WarehouseRow(code=wh["code"], name=wh["name"], province=wh["province"],
                                     priority=wh["priority"]))
        session.flush()
        assert load_extras(session, "catalog", CATALOG) == []
        assert load_extras(session, "warehouses", WAREHOUSES) == []
        load_carriers(session, json.loads((ROOT / "sample" / "carriers.json").read_text("utf-8")))
    for carrier, count in (numbers or {"ZTO": 30, "SF": 30}).items():
        with transaction(factory) as session:
            pool.load(session, carrier, pool_numbers(carrier, count))


def pool_numbers(carrier: str, count: int, start: int = 1) -> list[str]:
    prefix = {"ZTO": "7310", "SF": "SF14", "YTO": "YT88", "EMS": "1100"}.get(carrier, "9999")
    return [f"{prefix}{start + i:08d}" for i in range(count)]


def document(order_id: str, **kw: Any) -> dict[str, Any]:
    doc = {
        "order_id": order_id, "platform": "taobao",
        "buyer": {"name": "张三丰", "phone": "13812345678", "id": "buyer-1"},
        "address": {"country": "CN", "province": "浙江省", "city": "杭州市", "district": "西湖区",
                    "detail": "文三路100号3幢501室", "postal_code": "310000"},
        "lines": [{"sku": "TSHIRT-RED-M", "qty": 2, "unit_price": "59.00"},
                  {"sku": "MUG-WHITE", "qty": 1, "unit_price": "35.00"}],
        "payment": {"status": "paid", "amount": "153.00"},
        "remarks": "请放快递柜",
    }
    doc.update(kw)
    return doc


def released(factory: SessionFactory, order_id: str, *, warehouse: str = "HZ",
             stage: str = "released", **doc_kw: Any) -> str:
    """An order as the release leaves it: its row and one shipment with a pick list."""
    doc = document(order_id, **doc_kw)
    names = {c["sku"]: c["name"] for c in CATALOG}
    now = datetime.now(UTC)
    shipment_id = f"{order_id}-1"
    with transaction(factory) as session:
        session.add(Order(order_id=order_id, workflow_id=f"order-{order_id}", platform="taobao",
                          stage=stage, document=doc, created_at=now, submitted_at=now,
                          updated_at=now))
        session.flush()
        session.add(Shipment(
            id=shipment_id, order_id=order_id, shipment_no=1, warehouse=warehouse,
            pick_list={"warehouse": warehouse, "remarks": doc.get("remarks"), "lines": [
                {"line_no": i + 1, "sku": ln["sku"], "name": names.get(ln["sku"], ln["sku"]),
                 "qty": ln["qty"]} for i, ln in enumerate(doc["lines"])]},
            released_at=now,
        ))
    return shipment_id


def oms(db_url: str, home: Path, *args: str) -> Any:
    """`python starter.py ARGS...` against this database; the completed process."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMS_", "TEMPORAL_"))}
    env.update({"OMS_HOME": str(home), "OMS_DATABASE_URL": db_url, "PYTHONUNBUFFERED": "1"})
    return subprocess.run([sys.executable, str(ROOT / "starter.py"), *args], env=env,
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def sample_file(name: str) -> list[dict[str, Any]]:
    return json.loads((ROOT / "sample" / f"{name}.json").read_text(encoding="utf-8"))


def barcode(sku: str) -> str:
    return next(item["barcode"] for item in sample_file("catalog") if item["sku"] == sku)


def seed_desk(factory: SessionFactory, numbers: int = 50) -> None:
    with transaction(factory) as session:
        assert load_extras(session, "catalog", sample_file("catalog")) == []
        assert load_extras(session, "warehouses", sample_file("warehouses")) == []
        load_carriers(session, sample_file("carriers"))
    with transaction(factory) as session:
        for carrier in ("ZTO", "SF", "YTO", "EMS"):
            pool.load(session, carrier, pool_numbers(carrier, numbers))


def pdf_pages_decoded(pdf: Path, tmp: Path, dpi: int = 200) -> list[str]:
    """Each page rasterised by pdftoppm and its barcode read by zbarimg, in page order."""
    import re
    import subprocess

    subprocess.run(["pdftoppm", "-r", str(dpi), "-png", str(pdf), str(tmp / "page")],
                   check=True, capture_output=True)
    pages = sorted(tmp.glob("page-*.png"), key=lambda p: int(re.findall(r"\d+", p.stem)[-1]))
    decoded = []
    for page in pages:
        run = subprocess.run(["zbarimg", "-q", "--raw", "-Scode128.enable", str(page)],
                             capture_output=True, text=True)
        decoded.append(run.stdout.strip())
    return decoded


def pdf_text(pdf: Path) -> list[str]:
    """The text of each page as pdftotext reads it."""
    import subprocess

    run = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True,
                         capture_output=True, text=True)
    return run.stdout.split("\f")[:-1]


# A carrier whose numbers come from Cainiao through the TOP shop `tb-main`: first in its file
# and the cheapest, so that every parcel goes to it.
CAINIAO_CARRIERS = [{
    "code": "YUNDA", "name": "韵达快递", "cod": False, "max_weight_g": 30000,
    "rates": [{"provinces": "*", "first_kg": "1.00", "extra_kg": "1.00"}],
    "waybill": {"kind": "cainiao", "shop": "tb-main"},
}]


def cainiao_first(factory: SessionFactory) -> None:
    """The reference data, with the Cainiao carrier ahead of the sample's carriers."""
    seed_reference(factory)
    with transaction(factory) as session:
        load_carriers(session, CAINIAO_CARRIERS + sample_file("carriers"))


@contextmanager
def cainiao_gateway() -> Iterator[tuple[Any, Any]]:
    """The platforms' stand-in gateway answering for the TOP shop `tb-main`, and the desk's
    Cainiao client on it: (the stand-in's shop, `TopCainiao`)."""
    from platforms.standin import StandinGateway, StandinShop
    from platforms.top import TopClient
    from shipping.cainiao import TopCainiao

    shop = StandinShop("taobao", app_key="k-1", app_secret="s-1", session="sess-1")
    server = StandinGateway(shop).start()
    top = TopClient(api_url=server.url, app_key="k-1", app_secret="s-1", session="sess-1")

    def client(name: str) -> TopClient:
        assert name == "tb-main", f"asked for shop {name}"
        return top

    try:
        yield shop, TopCainiao(client)
    finally:
        top.close()
        server.stop()
