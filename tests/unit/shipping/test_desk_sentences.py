"""The desk's timeline entries as the console and `oms status` tell them: the carrier with the
reason it was chosen, the numbers voided and those cancelled at Cainiao."""

from __future__ import annotations

from service import timeline

AT = "2026-12-05T02:00:00+00:00"


def test_the_carrier_is_told_with_why_and_the_voided_numbers_by_name() -> None:
    told = timeline.sentences([
        {"at": AT, "type": "parcel", "shipment": "D-1", "parcel": "pcl-D-1", "carrier": "ZTO",
         "waybill": "731090000001", "hold": None,
         "reason": "the cheapest: 中通快递 at ¥4.00 for 800 g to 浙江省"},
        {"at": AT, "type": "parcel", "shipment": "D-2", "parcel": "pcl-D-2", "carrier": None,
         "waybill": None, "hold": "no_carrier", "reason": "no carrier delivers to 西藏自治区"},
        {"at": AT, "type": "waybills_voided", "waybills": ["ZTO7700000001"],
         "cancelled": ["ZTO7700000001"]},
    ])
    assert [t["zh"] for t in told] == [
        "包裹 D-1 选定承运 ZTO（the cheapest: 中通快递 at ¥4.00 for 800 g to 浙江省），"
        "运单号 731090000001。",
        "包裹 D-2 暂缓出单：no carrier delivers to 西藏自治区。",
        "作废 1 个运单号：ZTO7700000001（菜鸟已取消 ZTO7700000001）。",
    ]
    assert told[0]["en"] == ("Shipment D-1: carrier ZTO (the cheapest: 中通快递 at ¥4.00 for "
                             "800 g to 浙江省), waybill 731090000001.")
    assert told[2]["en"] == ("1 waybill(s) voided: ZTO7700000001 (cancelled at Cainiao: "
                             "ZTO7700000001).")
