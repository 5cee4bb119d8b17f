"""Cainiao e-waybills (电子面单) through the shared TOP client (SPEC §5.10).

`TopCainiao` asks `cainiao.waybill.ii.get` for one parcel under its parcel key as the
`object_id` (the service answers the same number when asked again, so a retried activity
never gets a second one), and cancels with `cainiao.waybill.ii.cancel`. The TOP client of
the carrier's shop (the carrier's `waybill.shop`) comes from `clients(shop)`, injected: the
worker builds it from the shop's stored credentials; tests point it at the stand-in.

Errors are `platforms.errors`: `RateLimited` and `GatewayUnavailable` are retryable (the
parcel waits and the activity retries with backoff; the order is not failed), the others
are answers for a clerk (a refused call, an expired session).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from platforms.errors import GatewayUnavailable
from platforms.top import TopClient

GET = "cainiao.waybill.ii.get"
CANCEL = "cainiao.waybill.ii.cancel"


class TopCainiao:
    def __init__(self, clients: Callable[[str], TopClient]) -> None:
        self._clients = clients

    def issue(self, request: dict[str, Any]) -> tuple[str, str | None]:
        """The waybill code and routing code of the request's one parcel."""
        shop = str(request["shop"])
        body = {k: v for k, v in request.items() if k != "shop"}
        answer = self._clients(shop).call(GET, {
            "param_waybill_cloud_print_apply_new_request": json.dumps(body, ensure_ascii=False),
        })
        wanted = body["trade_order_info_dtos"][0]["object_id"]
        modules = (answer.get("modules") or {}).get("waybill_cloud_print_response") or []
        if isinstance(modules, dict):
            modules = [modules]
        for item in modules:
            if str(item.get("object_id")) == wanted and item.get("waybill_code"):
                return str(item["waybill_code"]), routing_code(item.get("print_data"))
        raise GatewayUnavailable("taobao", GET, msg=f"no waybill for object_id {wanted} in the answer")

    def cancel(self, *, shop: str, cp_code: str, waybill: str) -> bool:
        answer = self._clients(shop).call(CANCEL, {"cp_code": cp_code, "waybill_code": waybill})
        return bool(answer.get("cancel_result"))


def routing_code(print_data: Any) -> str | None:
    """The `routingCode` of a waybill's `print_data` (a JSON text), when the service gave one."""
    if not print_data:
        return None
    try:
        data = json.loads(print_data) if isinstance(print_data, str) else print_data
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    code = data.get("routingCode")
    if code is None and isinstance(data.get("data"), dict):
        code = data["data"].get("routingCode")
    return str(code)[:60] if code else None
