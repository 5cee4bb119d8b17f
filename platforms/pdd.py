"""The Pinduoduo open platform client (SPEC §5.10).

``PddClient(api_url=..., app_key=<client_id>, app_secret=<client_secret>,
session=<access_token>).call(type, params)`` posts the signed form (``type``,
``client_id``, ``access_token``, ``timestamp`` in Unix seconds,
``data_type=JSON``, the call's parameters, ``sign``) and returns the inside of
the answer's one ``*_response`` key (Pinduoduo's response names do not follow
from the call's name: ``pdd.order.number.list.increment.get`` answers
``order_sn_increment_get_response``).

Errors (``error_response`` with ``error_code``, ``error_msg``, ``sub_code``,
``sub_msg``) are classified into `platforms.errors`. §5.10 names no
Pinduoduo error codes; these are the ones the platform documents: 10019
(access_token expired) `SessionExpired`; 70031-70034 (call frequency limits)
`RateLimited`; 10016 (sign mismatch) `BadSign`; 20004 with a ``sub_code``
(business refusal) `CallRefused`.
"""

from __future__ import annotations

from typing import Any

from platforms.errors import ErrorCodes, GatewayUnavailable
from platforms.gateway import GatewayClient

PRODUCTION_URL = "https://gw-api.pinduoduo.com/api/router"

CODES = ErrorCodes(
    rate_limited=frozenset({"70031", "70032", "70033", "70034"}),
    session_expired=frozenset({"10019"}),
    refused=frozenset({"20004"}),
    bad_sign=frozenset({"10016"}),
)


class PddClient(GatewayClient):
    """One shop's Pinduoduo access token (see the module's docstring)."""

    platform = "pdd"
    codes = CODES
    error_fields = ("error_code", "error_msg")

    def system_params(self, method: str) -> dict[str, str]:
        form = {
            "type": method,
            "client_id": self.app_key,
            "timestamp": str(int(self.clock())),
            "data_type": "JSON",
        }
        if self.session:
            form["access_token"] = self.session
        return form

    def unwrap(self, method: str, answer: Any) -> dict[str, Any]:
        self.raise_if_error(method, answer)
        bodies = [v for k, v in answer.items() if k.endswith("_response") and isinstance(v, dict)]
        if len(bodies) != 1:
            raise GatewayUnavailable(
                self.platform, method, msg="the answer has no single *_response object"
            )
        return bodies[0]
