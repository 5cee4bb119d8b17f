"""Merged parcels (合单): orders to one receiver share a parcel; leaving, splitting, the race."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from models.db import transaction
from shipping.desk import labels_for, prepare, split_parcel, void_order_parcels
from shipping.parcels import MergeRule, ParcelProblem, parcels_of
from shipping.tables import ParcelRow, WaybillRow
from tests.harness.desk import released, seed_reference

MERGE = MergeRule()


def test_two_orders_to_one_receiver_share_one_parcel_one_waybill_one_label(factory, tmp_path) -> None:
    seed_reference(factory)
    a = prepare(factory, released(factory, "M-1"), merge=MERGE)
    b = prepare(factory, released(factory, "M-2", lines=[{"sku": "TEA-250G", "qty": 1}]), merge=MERGE)
    assert a.parcel_id == b.parcel_id == "pcl-M-1-1" and a.waybill == b.waybill
    with transaction(factory) as session:
        [parcel] = parcels_of(session, "M-2")
        assert parcel["orders"] == ["M-1", "M-2"]
        assert session.get(ParcelRow, "pcl-M-1-1").expected_g == 900 + 300
    pdf, printed = labels_for(factory, ["M-1", "M-2"])
    assert printed == [{"parcel_id": "pcl-M-1-1", "waybill": a.waybill, "orders": ["M-1", "M-2"]}]
    out = tmp_path / "m.pdf"
    out.write_bytes(pdf)
    from tests.harness.desk import pdf_pages_decoded, pdf_text

    assert pdf_pages_decoded(out, tmp_path) == [a.waybill]
    assert "M-1, M-2" in pdf_text(out)[0]


@pytest.mark.parametrize("change", [
    {"payment": {"status": "cod"}},
    {"buyer": {"name": "李四", "phone": "13900001111", "id": "buyer-2"}},
    {"address": {"province": "浙江省", "city": "杭州市", "district": "西湖区", "detail": "文三路200号"}},
])
def test_a_different_receiver_or_cod_never_merges(factory, change) -> None:
    seed_reference(factory)
    a = prepare(factory, released(factory, "N-1"), merge=MERGE)
    b = prepare(factory, released(factory, "N-2", **change), merge=MERGE)
    assert a.parcel_id != b.parcel_id and a.waybill != b.waybill


def test_merging_off_by_policy_or_after_the_window_or_once_printed(factory) -> None:
    seed_reference(factory)
    a = prepare(factory, released(factory, "W-1"), merge=MERGE)
    off = prepare(factory, released(factory, "W-2"), merge=MergeRule(enabled=False))
    assert off.parcel_id != a.parcel_id
    late = prepare(factory, released(factory, "W-3"), merge=MergeRule(window=timedelta(0)))
    assert late.parcel_id != a.parcel_id
    labels_for(factory, ["W-1"])
    after_print = prepare(factory, released(factory, "W-4"), merge=MERGE)
    assert after_print.parcel_id != a.parcel_id


def test_an_order_cancelled_before_printing_simply_leaves(factory) -> None:
    seed_reference(factory)
    a = prepare(factory, released(factory, "L-1"), merge=MERGE)
    prepare(factory, released(factory, "L-2", lines=[{"sku": "TEA-250G", "qty": 1}]), merge=MERGE)
    assert void_order_parcels(factory, "L-2", "buyer asked") == {"voided": [], "cancelled": []}
    with transaction(factory) as session:
        [parcel] = parcels_of(session, "L-1")
        assert parcel["orders"] == ["L-1"] and parcel["waybill"] == a.waybill
        assert {ln["sku"] for ln in parcel["lines"]} == {"TSHIRT-RED-M", "MUG-WHITE"}
        assert parcels_of(session, "L-2") == []


def test_after_printing_the_waybill_is_voided_and_the_rest_relabelled(factory) -> None:
    seed_reference(factory)
    a = prepare(factory, released(factory, "P-1"), merge=MERGE)
    prepare(factory, released(factory, "P-2", lines=[{"sku": "TEA-250G", "qty": 1}]), merge=MERGE)
    labels_for(factory, ["P-1"])
    assert void_order_parcels(factory, "P-2", "refunded")["voided"] == [a.waybill]
    with transaction(factory) as session:
        [parcel] = parcels_of(session, "P-1")
        assert parcel["orders"] == ["P-1"] and parcel["waybill"] not in (None, a.waybill)
        assert parcel["state"] == "allocated"  # to be printed again
        assert session.get(WaybillRow, a.waybill).status == "void"
    _, again = labels_for(factory, ["P-1"])
    assert again[0]["waybill"] == parcel["waybill"] and again[0]["orders"] == ["P-1"]


def test_a_clerk_splits_a_merged_parcel_before_printing(factory) -> None:
    seed_reference(factory)
    a = prepare(factory, released(factory, "S-1"), merge=MERGE)
    prepare(factory, released(factory, "S-2", lines=[{"sku": "TEA-250G", "qty": 1}]), merge=MERGE)
    parts = split_parcel(factory, a.waybill)
    assert [p["orders"] for p in parts] == [["S-1"], ["S-2"]]
    assert parts[0]["waybill"] == a.waybill and parts[1]["waybill"] not in (None, a.waybill)
    assert [ln["sku"] for ln in parts[1]["lines"]] == ["TEA-250G"]
    with pytest.raises(ParcelProblem, match="holds one order"):
        split_parcel(factory, a.waybill)
    prepare(factory, released(factory, "S-3"), merge=MERGE)  # the split parcel takes no one
    labels_for(factory, ["S-3"])
    with pytest.raises(ParcelProblem, match="already printed"):
        split_parcel(factory, parcels_of_waybill(factory, "S-3"))


def parcels_of_waybill(factory, order_id: str) -> str:
    with transaction(factory) as session:
        return parcels_of(session, order_id)[0]["waybill"]


def test_orders_released_together_agree_on_one_parcel(factory) -> None:
    seed_reference(factory)
    shipments = [released(factory, f"R-{i}") for i in range(6)]
    results = {}
    errors: list[BaseException] = []
    start = threading.Barrier(len(shipments))

    def run(sid: str) -> None:
        try:
            start.wait()
            results[sid] = prepare(factory, sid, merge=MERGE)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in shipments]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len({r.parcel_id for r in results.values()}) == 1
    assert len({r.waybill for r in results.values()}) == 1
    with transaction(factory) as session:
        [parcel] = parcels_of(session, "R-0")
        assert sorted(parcel["orders"]) == [f"R-{i}" for i in range(6)]
        assert len(session.exec(__import__("sqlmodel").select(WaybillRow)).all()) == 1
