"""The Cainiao e-waybill calls on the platforms' TOP stand-in (tests and the demo).

Registered on `platforms.standin`'s TOP method registry: `cainiao.waybill.ii.get` answers one
waybill per `object_id` (the same one when asked again) and a `print_data` with a routing
code; `cainiao.waybill.ii.cancel` cancels a number it issued (once; an unknown number is
refused with code 15). State lives on the stand-in shop (`shop.cainiao`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from platforms.standin import Refuse, StandinShop, top_method


@dataclass
class CainiaoState:
    by_object: dict[str, str] = field(default_factory=dict)
    cancelled: set[str] = field(default_factory=set)
    issued: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)


def state(shop: StandinShop) -> CainiaoState:
    with shop.lock:
        if not hasattr(shop, "cainiao"):
            shop.cainiao = CainiaoState()  # type: ignore[attr-defined]
        return shop.cainiao  # type: ignore[attr-defined]


@top_method("cainiao.waybill.ii.get")
def waybill_get(shop: StandinShop, form: dict[str, str]) -> dict[str, Any]:
    try:
        request = json.loads(form["param_waybill_cloud_print_apply_new_request"])
        cp_code = str(request["cp_code"])
        dtos = list(request["trade_order_info_dtos"])
    except (KeyError, TypeError, ValueError) as exc:
        raise Refuse(41, "Invalid arguments", "isv.invalid-parameter", str(exc)) from exc
    if not 1 <= len(dtos) <= 10:
        raise Refuse(41, "Invalid arguments", "isv.invalid-parameter", "1-10 trade_order_info_dtos")
    s = state(shop)
    out = []
    with shop.lock:
        s.requests.append(request)
        for dto in dtos:
            object_id = str(dto["object_id"])
            code = s.by_object.get(object_id)
            if code is None:
                s.issued += 1
                code = f"{cp_code}{7700000000 + s.issued}"
                s.by_object[object_id] = code
            province = ((dto.get("recipient") or {}).get("address") or {}).get("province") or ""
            out.append({"object_id": object_id, "waybill_code": code, "print_data": json.dumps(
                {"routingCode": f"{len(province) * 37 % 900 + 100}-{cp_code}", "waybillCode": code},
                ensure_ascii=False)})
    return {"modules": {"waybill_cloud_print_response": out}}


@top_method("cainiao.waybill.ii.cancel")
def waybill_cancel(shop: StandinShop, form: dict[str, str]) -> dict[str, Any]:
    s = state(shop)
    code = form.get("waybill_code", "")
    with shop.lock:
        if code not in s.by_object.values():
            raise Refuse(15, "Remote service error", "isv.waybill-not-exist", f"面单 {code} 不存在")
        s.cancelled.add(code)
    return {"cancel_result": True}


if __name__ == "__main__":  # `python -m shipping.standin ARGS`: the platforms' stand-in process
    from platforms.standin.__main__ import main  # (its arguments), answering Cainiao's calls too

    main()
