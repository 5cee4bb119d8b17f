"""The packing check and the weigh: exact counts, loud refusals, the weight's range."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.db import transaction
from models.settings import WeighPolicy
from models.tables import Order
from shipping import packing
from shipping.desk import prepare
from shipping.parcels import ParcelRow, void_waybill
from tests.harness.desk import released, seed_reference

RED, MUG, TEA = "6901234567892", "6901234567908", "6901234567915"
POLICY = WeighPolicy()


def parcel(factory, order_id: str, **kw) -> str:
    seed_reference(factory)
    done = prepare(factory, released(factory, order_id, **kw))
    assert done.waybill
    return done.waybill


def scan(factory, waybill: str, barcode: str) -> packing.ScanAnswer:
    with transaction(factory) as session:
        return packing.scan(session, waybill, barcode)


def test_the_range_is_ten_percent_and_at_least_fifty_grams() -> None:
    assert packing.expected_range(900, POLICY) == (810, 990)
    assert packing.expected_range(300, POLICY) == (250, 350)
    wrapped = WeighPolicy(packaging_g=100, tolerance=Decimal("0.05"), min_tolerance_g=20)
    assert packing.expected_range(900, wrapped) == (950, 1050)


@given(st.integers(min_value=0, max_value=100_000))
def test_the_expected_weight_is_always_inside_its_range(grams: int) -> None:
    low, high = packing.expected_range(grams, POLICY)
    assert low <= grams <= high and high - grams >= 50 and (grams - low >= 50 or low == 0)


@pytest.mark.parametrize("value, message", [
    (0, "must be more than 0 g"), (-5, "must be more than 0 g"), ("abc", "is not a number"),
    ("", "is required"), (None, "is required"), (True, "is required"), ("NaN", "not a number"),
    ("1e9", "more than any parcel weighs"),
])
def test_a_weight_that_is_no_positive_number_names_the_field(value, message) -> None:
    with pytest.raises(ValueError, match=f"^weight_g: .*{message}"):
        packing.parse_weight(value)


def test_a_parcel_is_verified_when_every_line_is_scanned_then_weighed(factory) -> None:
    waybill = parcel(factory, "PK-1")  # 2 x T-shirt (250 g), 1 x mug (400 g) = 900 g
    first = scan(factory, waybill, RED)
    assert first.accepted and not first.complete
    assert {(ln["sku"], ln["scanned"]) for ln in first.lines} == {("TSHIRT-RED-M", 1), ("MUG-WHITE", 0)}
    assert scan(factory, waybill, MUG).accepted
    last = scan(factory, waybill, RED)
    assert last.accepted and last.complete and last.state == "verified"
    with transaction(factory) as session:
        refused = packing.weigh(session, waybill, 1200, POLICY)
    assert not refused.accepted and refused.expected_g == (810, 990)
    assert refused.reason.startswith("1200 g is outside the expected 810-990 g (items 900 g")
    with transaction(factory) as session:
        weighed = packing.weigh(session, waybill, "905", POLICY)
    assert weighed.accepted and weighed.state == "weighed" and weighed.weight_g == 905


def test_wrong_items_and_one_too_many_count_nothing(factory) -> None:
    waybill = parcel(factory, "PK-2", lines=[{"sku": "MUG-WHITE", "qty": 1}])
    wrong = scan(factory, waybill, TEA)
    assert not wrong.accepted and wrong.reason == "TEA-250G is not in this parcel: take it out"
    unknown = scan(factory, waybill, "0000000000000")
    assert unknown.reason == "unknown barcode 0000000000000: not an item of the catalog"
    label = scan(factory, waybill, waybill)
    assert label.reason == f"{waybill} is a waybill label, not an item"
    assert scan(factory, waybill, MUG).complete
    more = scan(factory, waybill, MUG)
    assert not more.accepted and more.reason == "the parcel is already verified: nothing more goes in"
    assert [ln["scanned"] for ln in more.lines] == [1]


def test_one_more_than_ordered_is_refused_before_the_parcel_completes(factory) -> None:
    waybill = parcel(factory, "PK-3")
    assert scan(factory, waybill, RED).accepted and scan(factory, waybill, RED).accepted
    third = scan(factory, waybill, RED)
    assert not third.accepted
    assert third.reason == "one TSHIRT-RED-M too many: the parcel takes 2, all scanned"
    assert {ln["sku"]: ln["scanned"] for ln in third.lines} == {"TSHIRT-RED-M": 2, "MUG-WHITE": 0}


def test_weighing_before_the_scans_are_complete_is_refused(factory) -> None:
    waybill = parcel(factory, "PK-4")
    with transaction(factory) as session:
        answer = packing.weigh(session, waybill, 900, POLICY)
    assert not answer.accepted and answer.reason.startswith("scan every item first")


def test_an_unknown_waybill_a_void_one_and_a_cancelled_order_are_refused(factory) -> None:
    waybill = parcel(factory, "PK-5")
    with pytest.raises(packing.PackingRefused, match="unknown waybill 'NOPE123'"):
        scan(factory, "NOPE123", RED)
    with transaction(factory) as session:
        order = session.get(Order, "PK-5")
        order.stage, order.cancel_reason = "cancelled", "buyer changed their mind"
        session.add(order)
    with pytest.raises(packing.PackingRefused,
                       match=r"order PK-5 is cancelled \(buyer changed their mind\): do not pack"):
        scan(factory, waybill, RED)
    with transaction(factory) as session:
        void_waybill(session, session.get(ParcelRow, "pcl-PK-5-1"), "order cancelled")
    with pytest.raises(packing.PackingRefused, match=rf"waybill {waybill} is void \(order cancelled\)"):
        scan(factory, waybill, RED)


def test_two_packers_scanning_one_parcel_at_once_keep_the_counts_exact(factory) -> None:
    waybill = parcel(factory, "PK-6", lines=[{"sku": "TSHIRT-RED-M", "qty": 7},
                                              {"sku": "MUG-WHITE", "qty": 3}])
    answers: list[packing.ScanAnswer] = []
    lock = threading.Lock()

    def packer(barcodes: list[str]) -> None:
        for code in barcodes:
            got = scan(factory, waybill, code)
            with lock:
                answers.append(got)

    # 2 packers x (6 T-shirts + 3 mugs) = 12 T-shirts and 6 mugs offered for 7 and 3.
    threads = [threading.Thread(target=packer, args=([RED] * 6 + [MUG] * 3,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    accepted = [a for a in answers if a.accepted]
    assert len(answers) == 18 and len(accepted) == 10
    with transaction(factory) as session:
        lines = {ln["sku"]: ln["scanned"] for ln in packing.line_views(session, "pcl-PK-6-1")}
        assert lines == {"TSHIRT-RED-M": 7, "MUG-WHITE": 3}
        assert session.get(ParcelRow, "pcl-PK-6-1").state == "verified"


@given(st.lists(st.sampled_from([RED, MUG, TEA, "0000000000000"]), max_size=9))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_run_of_scans_counts_exactly_what_the_lines_take(scans: list[str]) -> None:
    """Invariant 12: whatever a packer scans, each line counts min(offered, ordered); every
    other scan is refused and counts nothing; verified exactly when every line is complete."""
    import tempfile

    from models.db import make_engine, migrate, session_factory

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/p.db"
        migrate(url)
        engine = make_engine(url)
        try:
            factory = session_factory(engine)
            waybill = parcel(factory, "HY-1")  # 2 x T-shirt, 1 x mug
            answers = [scan(factory, waybill, code) for code in scans]
            with transaction(factory) as session:
                lines = {ln["sku"]: ln["scanned"]
                         for ln in packing.line_views(session, "pcl-HY-1-1")}
                state = session.get(ParcelRow, "pcl-HY-1-1").state
        finally:
            engine.dispose()
    assert lines == {"TSHIRT-RED-M": min(scans.count(RED), 2),
                     "MUG-WHITE": min(scans.count(MUG), 1)}
    assert sum(a.accepted for a in answers) == sum(lines.values())
    assert (state == "verified") == (lines == {"TSHIRT-RED-M": 2, "MUG-WHITE": 1})


def test_a_pick_exception_takes_the_units_off_the_parcel(factory) -> None:
    """The ledger took one damaged T-shirt off the shipment: the packer is asked for one."""
    from datetime import UTC, datetime

    from models.tables import Reservation

    waybill = parcel(factory, "PK-7")  # 2 x T-shirt, 1 x mug
    now = datetime.now(UTC)
    with transaction(factory) as session:
        for line_no, sku, qty in ((1, "TSHIRT-RED-M", 1), (2, "MUG-WHITE", 1)):
            session.add(Reservation(order_id="PK-7", line_no=line_no, sku=sku, warehouse="HZ",
                                    qty=qty, shipment_id="PK-7-1", status="held",
                                    created_at=now, updated_at=now))
    assert scan(factory, waybill, RED).accepted
    more = scan(factory, waybill, RED)
    assert not more.accepted and more.reason == "one TSHIRT-RED-M too many: the parcel takes 1, all scanned"
    assert scan(factory, waybill, MUG).complete
    with transaction(factory) as session:
        assert session.get(ParcelRow, "pcl-PK-7-1").expected_g == 250 + 400
