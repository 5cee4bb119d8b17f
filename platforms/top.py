"""The Taobao / Tmall open platform (TOP) client (SPEC §5.10).

``TopClient(api_url=..., app_key=..., app_secret=..., session=...).call(method, params)``
posts the signed form (``method``, ``app_key``, ``session``, ``timestamp`` in
China time ``yyyy-MM-dd HH:mm:ss``, ``format=json``, ``v=2.0``,
``sign_method=md5``, the call's parameters, ``sign``) and returns the inside
of ``<name>_response``, where ``<name>`` is the method without its leading
``taobao.``, dots as underscores::

    top.call("taobao.trades.sold.increment.get", {...})   # -> {"total_results": ..., ...}
    top.call("cainiao.waybill.ii.get", {...})             # -> {"modules": {...}}

An ``error_response`` raises one of `platforms.errors`: code 7 `RateLimited`,
27 `SessionExpired`, 25 `BadSign`, 15 `CallRefused` (``isp.*`` sub-codes,
the platform's own faults, `GatewayUnavailable`), anything else `PlatformError`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from platforms.errors import ErrorCodes, GatewayUnavailable
from platforms.gateway import GatewayClient

PRODUCTION_URL = "https://eco.taobao.com/router/rest"
CHINA = timezone(timedelta(hours=8), "Asia/Shanghai")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

CODES = ErrorCodes(
    rate_limited=frozenset({"7"}),
    session_expired=frozenset({"27"}),
    refused=frozenset({"15"}),
    bad_sign=frozenset({"25"}),
)


def response_key(method: str) -> str:
    """``taobao.trades.sold.increment.get`` -> ``trades_sold_increment_get_response``."""
    name = method.removeprefix("taobao.")
    return name.replace(".", "_") + "_response"


def top_time(at: datetime) -> str:
    """A moment as TOP writes it: China time, ``yyyy-MM-dd HH:mm:ss``."""
    if at.tzinfo is None:
        raise ValueError("a TOP time needs an aware datetime")
    return at.astimezone(CHINA).strftime(TIME_FORMAT)


def parse_top_time(text: str) -> datetime:
    """``2026-11-26 10:00:00`` (China time) -> an aware datetime."""
    return datetime.strptime(text.strip(), TIME_FORMAT).replace(tzinfo=CHINA)


class TopClient(GatewayClient):
    """One shop's TOP session (see the module's docstring)."""

    platform = "taobao"
    codes = CODES

    def system_params(self, method: str) -> dict[str, str]:
        form = {
            "method": method,
            "app_key": self.app_key,
            "timestamp": top_time(datetime.fromtimestamp(self.clock(), UTC)),
            "format": "json",
            "v": "2.0",
            "sign_method": "md5",
        }
        if self.session:
            form["session"] = self.session
        return form

    def unwrap(self, method: str, answer: Any) -> dict[str, Any]:
        self.raise_if_error(method, answer)
        key = response_key(method)
        body = answer.get(key)
        if not isinstance(body, dict):
            raise GatewayUnavailable(self.platform, method, msg=f"the answer has no {key!r} object")
        return body


def listed(container: Any, name: str) -> list[Any]:
    """TOP's wrapped lists: ``{"trades": {"trade": [...]}}`` -> ``[...]`` (absent: [])."""
    if not isinstance(container, dict):
        return []
    items = container.get(name)
    if items is None:
        return []
    if isinstance(items, dict):  # a single element sometimes comes unwrapped
        return [items]
    if not isinstance(items, list):
        raise ValueError(f"{name}: expected a list")
    return items
