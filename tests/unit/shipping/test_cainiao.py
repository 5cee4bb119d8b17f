"""Cainiao waybills through the shared TOP client, against the platforms' stand-in gateway."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from models.db import transaction
from platforms.errors import GatewayUnavailable
from platforms.standin import StandinShop
from shipping import standin as cainiao_standin
from shipping.cainiao import TopCainiao
from shipping.desk import labels_for, prepare
from shipping.tables import ParcelRow
from tests.harness.desk import cainiao_first, cainiao_gateway, pdf_pages_decoded, pdf_text, released


@pytest.fixture
def gateway() -> Iterator[tuple[StandinShop, TopCainiao]]:
    with cainiao_gateway() as pair:
        yield pair


seed = cainiao_first


def test_a_parcel_gets_one_cainiao_waybill_under_its_key(factory, gateway) -> None:
    shop, cainiao = gateway
    seed(factory)
    shipment = released(factory, "CN-1")
    first = prepare(factory, shipment, cainiao=cainiao)
    assert first.carrier == "YUNDA" and first.waybill.startswith("YUNDA77")
    with transaction(factory) as session:
        parcel = session.get(ParcelRow, first.parcel_id)
        parcel.waybill = None  # as if the first answer was lost before it was recorded
        session.add(parcel)
    again = prepare(factory, shipment, cainiao=cainiao)
    assert again.waybill == first.waybill
    request = cainiao_standin.state(shop).requests[0]
    dto = request["trade_order_info_dtos"][0]
    assert request["cp_code"] == "YUNDA" and dto["object_id"] == "pcl-CN-1-1"
    assert dto["order_info"] == {"order_channels_type": "TB", "trade_order_list": ["CN-1"]}
    assert request["sender"]["name"] == "杭州仓发货组"
    assert dto["package_info"]["weight"] == 900
    assert cainiao_standin.state(shop).issued == 1


def test_the_routing_code_is_printed_and_the_barcode_decodes(factory, gateway, tmp_path) -> None:
    _, cainiao = gateway
    seed(factory)
    released(factory, "CN-2")
    pdf, printed = labels_for(factory, ["CN-2"], cainiao=cainiao)
    out = tmp_path / "cn.pdf"
    out.write_bytes(pdf)
    assert pdf_pages_decoded(out, tmp_path) == [printed[0]["waybill"]]
    with transaction(factory) as session:
        routing = session.get(ParcelRow, "pcl-CN-2-1").routing_code
    assert routing and routing in pdf_text(out)[0]


def test_a_waybill_service_that_is_down_leaves_the_parcel_waiting_then_it_goes_on(
        factory, gateway) -> None:
    shop, cainiao = gateway
    seed(factory)
    shipment = released(factory, "CN-3")
    shop.faults.down_next = 1
    with pytest.raises(GatewayUnavailable) as failed:
        prepare(factory, shipment, cainiao=cainiao)
    assert failed.value.retryable
    with transaction(factory) as session:
        parcel = session.get(ParcelRow, "pcl-CN-3-1")
        assert parcel.carrier == "YUNDA" and parcel.waybill is None and parcel.state == "allocated"
    assert prepare(factory, shipment, cainiao=cainiao).waybill.startswith("YUNDA77")


def test_a_cainiao_waybill_is_cancelled(factory, gateway) -> None:
    shop, cainiao = gateway
    seed(factory)
    done = prepare(factory, released(factory, "CN-4"), cainiao=cainiao)
    assert cainiao.cancel(shop="tb-main", cp_code="YUNDA", waybill=done.waybill) is True
    assert done.waybill in cainiao_standin.state(shop).cancelled


def test_a_cancel_voids_the_number_at_once_and_cancels_at_cainiao_when_it_answers(
        factory, gateway) -> None:
    from models.tables import Order
    from shipping.desk import void_order_parcels
    from shipping.tables import WaybillRow

    shop, cainiao = gateway
    seed(factory)
    done = prepare(factory, released(factory, "CN-5"), cainiao=cainiao)
    shop.faults.down_next = 1
    with pytest.raises(GatewayUnavailable):
        void_order_parcels(factory, "CN-5", "buyer asked", cainiao=cainiao)
    with transaction(factory) as session:
        assert session.get(WaybillRow, done.waybill).status == "void"  # never used again
        assert session.get(ParcelRow, done.parcel_id).state == "void"
        assert session.get(Order, "CN-5") is not None
    assert done.waybill not in cainiao_standin.state(shop).cancelled
    again = void_order_parcels(factory, "CN-5", "buyer asked", cainiao=cainiao)  # the retry
    assert again == {"voided": [], "cancelled": [done.waybill]}
    assert done.waybill in cainiao_standin.state(shop).cancelled
    with transaction(factory) as session:
        assert session.get(WaybillRow, done.waybill).status == "cancelled"
    assert void_order_parcels(factory, "CN-5", "buyer asked", cainiao=cainiao) == {
        "voided": [], "cancelled": []}
