"""One error family for every platform gateway (SPEC §5.10).

A gateway's answer is classified once, here, by what the caller should do
about it; the classes say nothing about which platform answered:

* `RateLimited` (TOP code 7, PDD 70031...) and `GatewayUnavailable` (network
  errors, 5xx, a body that is no JSON, the platform's own ``isp.*`` faults):
  try again later, with backoff (`retryable` is true).
* `SessionExpired` (TOP 27, PDD 10019): the shop's token must be renewed
  (`oms shops token`); retrying with the same token is useless.
* `CallRefused` (TOP 15 with a ``sub_code``): the platform refused this call
  for a business reason a clerk can read (e.g. the trade is being refunded).
* `BadSign` (TOP 25): the app secret is wrong; nothing retries it.
* `PlatformError`: any other error code, not retried.

Every error carries the platform's own ``code``, ``msg``, ``sub_code`` and
``sub_msg`` so the shop's ``last_error`` can show the platform's reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.errors import OmsError


class PlatformError(OmsError):
    """A gateway answered with an error (or could not be reached)."""

    retryable = False
    kind = "platform_error"

    def __init__(
        self,
        platform: str,
        method: str,
        *,
        code: str = "",
        msg: str = "",
        sub_code: str = "",
        sub_msg: str = "",
    ) -> None:
        self.platform = platform
        self.method = method
        self.code = code
        self.msg = msg
        self.sub_code = sub_code
        self.sub_msg = sub_msg
        super().__init__(self.reason())

    def reason(self) -> str:
        """The platform's reason as one sentence a clerk can read."""
        parts = [f"{self.platform} {self.method}:"]
        if self.code:
            parts.append(f"code {self.code}")
        if self.msg:
            parts.append(self.msg)
        if self.sub_code:
            parts.append(f"({self.sub_code}{': ' + self.sub_msg if self.sub_msg else ''})")
        elif self.sub_msg:
            parts.append(f"({self.sub_msg})")
        return " ".join(parts)

    def details(self) -> dict[str, str]:
        """The error as plain data (for ApplicationError details and the shop's last error)."""
        return {
            "kind": self.kind,
            "platform": self.platform,
            "method": self.method,
            "code": self.code,
            "msg": self.msg,
            "sub_code": self.sub_code,
            "sub_msg": self.sub_msg,
        }


class RateLimited(PlatformError):
    """The app called too often (TOP 7 "App Call Limited"): retry later."""

    retryable = True
    kind = "rate_limited"


class GatewayUnavailable(PlatformError):
    """The gateway could not be reached or answered no usable JSON: retry later."""

    retryable = True
    kind = "unavailable"


class SessionExpired(PlatformError):
    """The shop's session token expired (TOP 27): wait for `oms shops token`."""

    kind = "session_expired"


class CallRefused(PlatformError):
    """The platform refused the call for a business reason (TOP 15 + sub_code)."""

    kind = "refused"


class BadSign(PlatformError):
    """The signature did not match (TOP 25): the app secret is wrong."""

    kind = "bad_sign"


@dataclass(frozen=True)
class ErrorCodes:
    """How one platform's error codes map onto the error family."""

    rate_limited: frozenset[str]
    session_expired: frozenset[str]
    refused: frozenset[str]
    bad_sign: frozenset[str]


def classify(
    platform: str,
    method: str,
    codes: ErrorCodes,
    *,
    code: str,
    msg: str = "",
    sub_code: str = "",
    sub_msg: str = "",
) -> PlatformError:
    """The error instance for one error answer."""
    cls: type[PlatformError] = PlatformError
    if code in codes.rate_limited or sub_code.startswith("isv.api-call-limited"):
        cls = RateLimited
    elif code in codes.session_expired:
        cls = SessionExpired
    elif code in codes.bad_sign:
        cls = BadSign
    elif sub_code.startswith("isp."):
        cls = GatewayUnavailable  # the platform's own back end failed, not the call
    elif code in codes.refused:
        cls = CallRefused
    return cls(platform, method, code=code, msg=msg, sub_code=sub_code, sub_msg=sub_msg)
