"""What the TOP and Pinduoduo gateways have in common: a signed form post (SPEC §5.10).

Both platforms take every call as an HTTP POST of a form, signed with the
uppercase hex MD5 of ``secret + k1 + v1 + k2 + v2 + ... + secret`` over every
other parameter sorted by name, and answer JSON with the result wrapped in one
``<name>_response`` key or an ``error_response``. `GatewayClient` does the
part they share (turning parameters into form strings, signing, posting,
reading the JSON, retrying what may be retried); `platforms.top.TopClient`
and `platforms.pdd.PddClient` add the system parameters, the unwrapping and
the error codes of each platform.

A caller passes the method name and its parameters and gets the unwrapped
response dict, or one of the `platforms.errors` classes. Both a blocking
(`call`, over `httpx.Client`) and an async (`acall`, over
`httpx.AsyncClient`) form are offered; the HTTP client is passed in (one per
process, as the httpx docs advise) or made once by the gateway client and
closed by `close` / `aclose`.

Retries inside one call (`attempts`, default 1: none) are for callers that
have no retry of their own; Temporal activities leave them at 1 and let the
activity's retry policy do the backoff, so a worker never sleeps inside an
activity for minutes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import httpx

from platforms.errors import ErrorCodes, GatewayUnavailable, PlatformError, classify

DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0)


def form_value(value: Any) -> str:
    """One parameter as the gateways expect it in a form (JSON for lists and objects)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime | date):
        raise TypeError("pass times as the platform's own strings or numbers, not datetimes")
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def md5_sign(secret: str, params: Mapping[str, str]) -> str:
    """Uppercase hex MD5 of secret + k1 + v1 + ... + secret, keys sorted, `sign` left out."""
    body = "".join(f"{k}{params[k]}" for k in sorted(params) if k != "sign")
    return hashlib.md5(f"{secret}{body}{secret}".encode()).hexdigest().upper()


class GatewayClient:
    """A signed form-post client for one shop on one gateway (subclassed per platform)."""

    platform = "gateway"
    codes: ErrorCodes  # the platform's error codes, classified (`platforms.errors`)
    error_fields = ("code", "msg")  # the code's and the message's keys in its error answer

    def __init__(
        self,
        *,
        api_url: str,
        app_key: str,
        app_secret: str,
        session: str | None = None,
        http: httpx.Client | None = None,
        ahttp: httpx.AsyncClient | None = None,
        attempts: int = 1,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not api_url:
            raise ValueError("api_url: the gateway's URL is required")
        if not app_key:
            raise ValueError("app_key: required")
        if not app_secret:
            raise ValueError("app_secret: required")
        if attempts < 1:
            raise ValueError("attempts: at least 1")
        self.api_url = api_url
        self.app_key = app_key
        self._secret = app_secret
        self.session = session
        self._http = http
        self._own_http = http is None
        self._ahttp = ahttp
        self._own_ahttp = ahttp is None
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.clock = clock
        self._sleep = sleep
        self.calls = 0  # requests sent, for the benchmark's calls per order

    def __repr__(self) -> str:  # never print the secret or the session
        return f"{type(self).__name__}(api_url={self.api_url!r}, app_key={self.app_key!r})"

    # --- what each platform defines -------------------------------------------------
    def system_params(self, method: str) -> dict[str, str]:
        raise NotImplementedError

    def unwrap(self, method: str, answer: Any) -> dict[str, Any]:
        raise NotImplementedError

    # --- the shared part ------------------------------------------------------------
    def raise_if_error(self, method: str, answer: Any) -> None:
        """Both gateways answer an error as ``{"error_response": {...}}``: classified by its
        code (a rate limit, the gateway down, an expired session, a refusal)."""
        error = answer.get("error_response")
        if isinstance(error, dict):
            code, msg = self.error_fields
            raise classify(
                self.platform,
                method,
                self.codes,
                code=error_text(error.get(code)),
                msg=error_text(error.get(msg)),
                sub_code=error_text(error.get("sub_code")),
                sub_msg=error_text(error.get("sub_msg")),
            )

    def signed_form(self, method: str, params: Mapping[str, Any] | None = None) -> dict[str, str]:
        """The whole form of one call, system parameters and `sign` included."""
        form = self.system_params(method)
        for key, value in (params or {}).items():
            if value is None:
                continue
            if key in form or key == "sign":
                raise ValueError(f"{key}: a system parameter, set by the client")
            form[key] = form_value(value)
        form["sign"] = md5_sign(self._secret, form)
        return form

    def _read(self, method: str, response: httpx.Response) -> dict[str, Any]:
        if response.status_code >= 500 or response.status_code in (408, 429):
            kind = "rate limited" if response.status_code == 429 else "unavailable"
            raise GatewayUnavailable(
                self.platform, method, code=f"http {response.status_code}", msg=f"gateway {kind}"
            )
        try:
            answer = response.json()
        except ValueError:
            raise GatewayUnavailable(
                self.platform,
                method,
                code=f"http {response.status_code}",
                msg="the gateway answered something that is not JSON",
            ) from None
        if not isinstance(answer, dict):
            raise GatewayUnavailable(
                self.platform, method, msg="the gateway's answer is not a JSON object"
            )
        return self.unwrap(method, answer)

    def _delay(self, attempt: int) -> float:
        return min(self.max_backoff, self.backoff * (2 ** (attempt - 1)))

    def call(self, method: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """One call, blocking; retried `attempts` times for rate limits and network errors."""
        if self._http is None:
            self._http = httpx.Client(timeout=DEFAULT_TIMEOUT)
        for attempt in range(1, self.attempts + 1):
            try:
                self.calls += 1
                try:
                    response = self._http.post(self.api_url, data=self.signed_form(method, params))
                except httpx.RequestError as exc:
                    raise GatewayUnavailable(
                        self.platform, method, msg=f"network error: {type(exc).__name__}"
                    ) from exc
                return self._read(method, response)
            except PlatformError as exc:
                if not exc.retryable or attempt == self.attempts:
                    raise
                self._sleep(self._delay(attempt))
        raise AssertionError("unreachable")

    async def acall(self, method: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """One call, async; retried `attempts` times for rate limits and network errors."""
        if self._ahttp is None:
            self._ahttp = httpx.AsyncClient(timeout=DEFAULT_TIMEOUT)
        for attempt in range(1, self.attempts + 1):
            try:
                self.calls += 1
                try:
                    response = await self._ahttp.post(
                        self.api_url, data=self.signed_form(method, params)
                    )
                except httpx.RequestError as exc:
                    raise GatewayUnavailable(
                        self.platform, method, msg=f"network error: {type(exc).__name__}"
                    ) from exc
                return self._read(method, response)
            except PlatformError as exc:
                if not exc.retryable or attempt == self.attempts:
                    raise
                await asyncio.sleep(self._delay(attempt))
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._http is not None and self._own_http:
            self._http.close()
            self._http = None

    async def aclose(self) -> None:
        if self._ahttp is not None and self._own_ahttp:
            await self._ahttp.aclose()
            self._ahttp = None
        self.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> GatewayClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def error_text(value: Any) -> str:
    """A code or message from an error answer as text ('' when absent)."""
    return "" if value is None else str(value)
