"""A second shipment of one order (the rest of a partial release, a pick exception's
replacement) never joins its own order's open parcel: it has a parcel of its own."""

from __future__ import annotations

from datetime import UTC, datetime

from models.db import transaction
from models.tables import Shipment
from shipping.desk import prepare
from shipping.parcels import MergeRule, parcels_of
from tests.harness.desk import released, seed_reference


def second_shipment(factory, order_id: str, sku: str, qty: int) -> str:
    shipment_id = f"{order_id}-2"
    with transaction(factory) as session:
        session.add(Shipment(
            id=shipment_id, order_id=order_id, shipment_no=2, warehouse="HZ",
            pick_list={"warehouse": "HZ", "lines": [
                {"line_no": 1, "sku": sku, "name": sku, "qty": qty}]},
            released_at=datetime.now(UTC),
        ))
    return shipment_id


def test_the_rest_of_an_order_gets_its_own_parcel_while_the_first_is_open(factory) -> None:
    seed_reference(factory)
    first = prepare(factory, released(factory, "P-1"), merge=MergeRule())
    # Same SKU as the first parcel's line: joining would collide on (parcel, order, sku).
    rest = prepare(factory, second_shipment(factory, "P-1", "TSHIRT-RED-M", 1), merge=MergeRule())
    assert first.waybill and rest.waybill and rest.waybill != first.waybill
    assert rest.parcel_id == "pcl-P-1-2" != first.parcel_id
    # Another order to the same receiver still joins the open first parcel.
    other = prepare(factory, released(factory, "P-2"), merge=MergeRule())
    assert other.parcel_id == first.parcel_id
    with transaction(factory) as session:
        parcels = {p["parcel_id"]: p for p in parcels_of(session, "P-1")}
    assert parcels["pcl-P-1-1"]["orders"] == ["P-1", "P-2"]
    assert parcels["pcl-P-1-2"]["orders"] == ["P-1"]
    assert [(ln["sku"], ln["qty"]) for ln in parcels["pcl-P-1-2"]["lines"]] == [("TSHIRT-RED-M", 1)]


def test_a_parcel_that_cannot_be_recorded_is_a_parcel_problem_not_a_retry(factory) -> None:
    """A conflict met twice (here a parcel line already there under the parcel's key) is a
    `ParcelProblem` (non-retryable in the activity), never an IntegrityError retried forever."""
    import pytest

    from shipping.parcels import ParcelProblem
    from shipping.tables import ParcelLineRow

    seed_reference(factory)
    shipment_id = released(factory, "Q-1")
    with transaction(factory) as session:
        session.add(ParcelLineRow(parcel_id="pcl-Q-1-1", order_id="Q-1", sku="TSHIRT-RED-M",
                                  name="x", qty=1, weight_g=0))
    with pytest.raises(ParcelProblem, match="pcl|parcel"):
        prepare(factory, shipment_id, merge=MergeRule(enabled=False))
