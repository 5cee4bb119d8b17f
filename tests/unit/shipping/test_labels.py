"""Labels: every barcode of a batch decodes (zbarimg) to its waybill; the text is masked."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from shipping.desk import LabelProblem, labels_for, prepare
from shipping.labels import Label, mask_name, mask_phone, render
from tests.harness.desk import oms, pdf_pages_decoded, pdf_text, released, seed_reference


def test_names_and_phones_are_masked_as_couriers_print_them() -> None:
    assert mask_name("张三丰") == "张**"
    assert mask_name("李") == "李*"
    assert mask_name(None) == "*"
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("+86 138-1234-5678") == "138****5678"
    assert mask_phone("0571-88886666") == "********6666"


def test_a_batch_of_labels_decodes_page_by_page_and_reads_back_masked(
        factory, db_url: str, tmp_path: Path) -> None:
    seed_reference(factory)
    ids = [f"LB-{i}" for i in range(5)]
    for i, order_id in enumerate(ids):
        released(factory, order_id, buyer={"name": f"王小{'一二三四五'[i]}",
                                           "phone": f"1391234{i:04d}"})
    out = tmp_path / "batch.pdf"
    answer = oms(db_url, tmp_path, "labels", *ids, "--out", str(out))
    assert answer.returncode == 0, answer.stderr
    assert "5 label(s) written" in answer.stdout
    waybills = [line.split()[0] for line in answer.stdout.splitlines()[:5]]
    assert len(set(waybills)) == 5
    assert pdf_pages_decoded(out, tmp_path) == waybills
    pages = pdf_text(out)
    assert len(pages) == 5
    for i, (page, waybill) in enumerate(zip(pages, waybills, strict=True)):
        assert waybill in page
        assert "王*" in page and f"王小{'一二三四五'[i]}" not in page
        assert f"139****{i:04d}" in page and f"1391234{i:04d}" not in page
        assert f"LB-{i}" in page
        assert "浙江省杭州市西湖区文三路100号3幢501室" in page
        assert "中通快递" in page and "红色T恤 M码 × 2" in page and "请放快递柜" in page
        assert "杭州仓发货组" in page


def test_the_larger_size_also_decodes(tmp_path: Path) -> None:
    label = Label(waybill="SF1400000001", carrier="SF", carrier_name="顺丰速运",
                  receiver_name="张**", receiver_phone="138****5678", address="上海市浦东新区1号",
                  sender="上海仓", items=[("白色马克杯", 1)], order_ids=["X-1"],
                  routing_code="021-B")
    out = tmp_path / "big.pdf"
    out.write_bytes(render([label], "100x180"))
    assert pdf_pages_decoded(out, tmp_path, dpi=150) == ["SF1400000001"]
    assert "021-B" in pdf_text(out)[0]
    info = subprocess.run(["pdfinfo", str(out)], capture_output=True, text=True).stdout
    points = re.search(r"Page size:\s+([\d.]+) x ([\d.]+)", info)
    assert points and round(float(points[1]) / 72 * 25.4) == 100
    assert round(float(points[2]) / 72 * 25.4) == 180


def test_a_label_for_an_order_with_no_parcel_yet_issues_its_waybill_first(factory, tmp_path) -> None:
    seed_reference(factory)
    released(factory, "LB-NEW")
    pdf, printed = labels_for(factory, ["LB-NEW"])
    assert printed[0]["waybill"] and printed[0]["parcel_id"] == "pcl-LB-NEW-1"
    out = tmp_path / "one.pdf"
    out.write_bytes(pdf)
    assert pdf_pages_decoded(out, tmp_path) == [printed[0]["waybill"]]
    again_pdf, again = labels_for(factory, ["LB-NEW"])
    assert again == printed  # a reprint: the same waybill


def test_labels_that_cannot_be_printed_say_why(factory) -> None:
    seed_reference(factory, numbers={"ZTO": 1})
    released(factory, "LB-A")
    with pytest.raises(LabelProblem, match="unknown order NOPE"):
        labels_for(factory, ["NOPE"])
    from datetime import UTC, datetime

    from models.db import transaction
    from models.tables import Order

    with transaction(factory) as session:
        now = datetime.now(UTC)
        session.add(Order(order_id="LB-EARLY", workflow_id="order-LB-EARLY", stage="awaiting_buyer",
                          document={}, created_at=now, submitted_at=now, updated_at=now))
    with pytest.raises(LabelProblem, match=r"LB-EARLY has no shipment yet \(awaiting_buyer\)"):
        labels_for(factory, ["LB-EARLY"])
    prepare(factory, "LB-A-1")
    released(factory, "LB-B")
    with pytest.raises(LabelProblem, match="held \\(waybill_pool_empty\\)"):
        labels_for(factory, ["LB-B"])
    with pytest.raises(LabelProblem, match="size must be one of"):
        labels_for(factory, ["LB-A"], size="A4")
