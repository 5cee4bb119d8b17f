"""Waybill numbers from a loaded pool: each used once, ever; low and empty pools; parcels."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import delete
from sqlmodel import select

from models.db import transaction
from shipping import pool
from shipping.desk import prepare, resume_pool_holds
from shipping.parcels import ParcelProblem, parcels_of, pick_carrier, void_waybill
from shipping.tables import ParcelRow, PoolNumberRow, WaybillRow
from tests.harness.desk import pool_numbers, released, seed_reference


def test_a_released_shipment_gets_a_parcel_a_carrier_and_a_pool_waybill(factory) -> None:
    seed_reference(factory)
    shipment = released(factory, "T-1")
    done = prepare(factory, shipment)
    assert done.carrier == "ZTO" and done.waybill == pool_numbers("ZTO", 1)[0]
    assert "cheapest" in done.reason
    with transaction(factory) as session:
        [parcel] = parcels_of(session, "T-1")
    assert parcel["waybill"] == done.waybill and parcel["state"] == "allocated"
    assert parcel["orders"] == ["T-1"]
    assert {(ln["sku"], ln["qty"]) for ln in parcel["lines"]} == {("TSHIRT-RED-M", 2), ("MUG-WHITE", 1)}


def test_preparing_twice_is_one_parcel_with_one_number(factory) -> None:
    seed_reference(factory)
    shipment = released(factory, "T-2")
    first, again = prepare(factory, shipment), prepare(factory, shipment)
    assert first.waybill == again.waybill
    with transaction(factory) as session:
        assert pool.free_count(session, "ZTO") == 29
        assert len(session.exec(select(WaybillRow)).all()) == 1


def test_a_number_known_before_is_never_loaded_again(factory) -> None:
    seed_reference(factory, numbers={"ZTO": 3})
    prepare(factory, released(factory, "T-3"))
    with transaction(factory) as session:
        answer = pool.load(session, "ZTO", pool_numbers("ZTO", 5))
    assert answer == {"added": 2, "skipped": 3, "free": 4}


def test_a_low_pool_warns_and_an_empty_pool_holds_the_parcel(factory) -> None:
    seed_reference(factory, numbers={"ZTO": 21})
    first = prepare(factory, released(factory, "T-4"))
    assert first.waybill and first.flags == []  # 20 left: not below 20
    second = prepare(factory, released(factory, "T-5"))
    assert second.flags == ["waybill_pool_low"]
    with transaction(factory) as session:
        session.execute(delete(PoolNumberRow).where(PoolNumberRow.status == "free"))
    held = prepare(factory, released(factory, "T-6"))
    assert held.hold == "waybill_pool_empty" and held.waybill is None
    assert "oms waybills load ZTO" in held.reason
    with transaction(factory) as session:
        pool.load(session, "ZTO", pool_numbers("ZTO", 1, start=500))
    [served] = resume_pool_holds(factory, "ZTO")  # what `oms waybills load` does next
    assert served["waybill"] == pool_numbers("ZTO", 1, start=500)[0]
    assert served["orders"] == ["T-6"]
    assert prepare(factory, "T-6-1").waybill == served["waybill"]


def test_a_bad_numbers_file_names_each_line() -> None:
    numbers, errors = pool.read_numbers("73100001\n\n# c\nab\n73100001\n")
    assert numbers == ["73100001"]
    assert errors == ["line 4: 'ab' is not a waybill number (6-40 letters or digits)",
                      "line 5: 73100001 appears twice in the file"]


def test_a_pool_for_an_unknown_or_cainiao_carrier_is_refused(factory) -> None:
    seed_reference(factory, numbers={})
    with pytest.raises(pool.PoolProblem, match="unknown carrier 'NOPE'"), \
            transaction(factory) as session:
        pool.load(session, "NOPE", ["12345678"])


def test_a_voided_number_is_never_issued_again(factory) -> None:
    seed_reference(factory, numbers={"ZTO": 2})
    first = prepare(factory, released(factory, "T-7"))
    with transaction(factory) as session:
        parcel = session.get(ParcelRow, first.parcel_id)
        assert void_waybill(session, parcel, "order cancelled") == first.waybill
    again = prepare(factory, "T-7-1")
    assert again.waybill not in (None, first.waybill)
    with transaction(factory) as session:
        assert session.get(WaybillRow, first.waybill).status == "void"


def test_no_carrier_holds_and_the_clerk_can_pick_one(factory) -> None:
    seed_reference(factory)
    # COD to Tibet at 60 kg: nobody takes it.
    shipment = released(factory, "T-8", payment={"status": "cod"},
                        address={"province": "西藏自治区", "city": "拉萨市", "district": "城关区",
                                 "detail": "北京中路1号"},
                        lines=[{"sku": "TEA-250G", "qty": 200}])
    held = prepare(factory, shipment)
    assert held.hold == "no_carrier" and held.flags == ["no_carrier"]
    with pytest.raises(ParcelProblem, match="ZTO does not collect cash on delivery"), \
            transaction(factory) as session:
        pick_carrier(session, held.parcel_id, "ZTO", by="clerk-1")
    with pytest.raises(ParcelProblem, match="unknown carrier 'XX'"), \
            transaction(factory) as session:
        pick_carrier(session, held.parcel_id, "XX", by="clerk-1")
    with transaction(factory) as session:
        picked = pick_carrier(session, held.parcel_id, "SF", by="clerk-1")
    assert picked["carrier"] == "SF" and "picked by clerk-1 although it takes at most" in \
        picked["carrier_reason"]
    assert prepare(factory, shipment).waybill == pool_numbers("SF", 1)[0]


def test_parcels_released_together_never_share_a_number(factory) -> None:
    seed_reference(factory, numbers={"ZTO": 40})
    shipments = [released(factory, f"C-{i}") for i in range(12)]
    results: dict[str, str | None] = {}
    errors: list[BaseException] = []

    def run(sid: str) -> None:
        try:
            results[sid] = prepare(factory, sid).waybill
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in shipments]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(results.values())) == 12 and None not in results.values()
    with transaction(factory) as session:
        assert pool.free_count(session, "ZTO") == 28
