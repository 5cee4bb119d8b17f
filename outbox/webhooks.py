"""Outbound webhook delivery: Standard Webhooks signing, canonical event bodies, one POST per attempt.

Every request carries the Standard Webhooks headers (https://www.standardwebhooks.com),
so receivers verify it with any Standard Webhooks library:

* ``webhook-id``: the outbox event's id, stable across attempts (receivers de-duplicate on it);
* ``webhook-timestamp``: Unix seconds of this attempt (receivers refuse old ones: no replay);
* ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``, one per
  active secret, space-separated, so a secret can be rotated without downtime;

plus ``X-OMS-Event-Type``. Secrets are ``whsec_`` + base64 of at least 24 random bytes, in
``OMS_WEBHOOK_SECRETS`` (comma-separated, newest first); there is no default secret, and a URL
without one (or a malformed one) stops the worker at start (`WebhookConfigError`).

This module does one HTTP attempt and classifies its outcome; retrying is left to
Temporal. ``WebhookSender.post`` raises ``WebhookRetryable`` for answers worth
repeating (5xx, 408, 429, timeouts, connection errors); as a plain exception it
reaches Temporal as a retryable failure and the activity is retried under
``RETRY_HTTP``. Any other non-2xx answer raises a non-retryable
``ApplicationError(type="WebhookRejected")``: the receiver has looked at the event
and refused it, so repeating the same bytes cannot help and an operator must look.
A 410 Gone also says the URL itself is gone: the outbox disables it
(`activities.outbox`) until an operator re-enables it (``oms webhooks enable URL``).

Delivery is at-least-once (an answer lost after the receiver processed the event
leads to a second attempt), so the body must be byte-for-byte identical on every
attempt. ``encode_event`` guarantees that for the same inputs.

No database code lives here: the ``deliver_event`` activity reads the outbox row,
calls ``encode_event`` and ``WebhookSender.post``, and records the outcome.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping
from datetime import UTC, date, datetime
from datetime import time as dt_time
from decimal import Decimal
from typing import Any
from uuid import UUID

import httpx
import structlog
from temporalio.exceptions import ApplicationError

from models.errors import ErrorType, OmsError

log = structlog.get_logger()

HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"
HEADER_EVENT_TYPE = "X-OMS-Event-Type"
SIGNATURE_VERSION = "v1"
SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES = 24
GONE = 410

RETRYABLE_STATUSES = frozenset({408, 429})
"""Client-error statuses that mean "not now" rather than "never"."""

EXCERPT_CHARS = 200

class WebhookRetryable(OmsError):
    """A delivery attempt failed in a way that another attempt may fix.

    Deliberately not an ``ApplicationError``: Temporal converts it to a retryable
    failure of type ``"WebhookRetryable"``, retried under ``RETRY_HTTP``.
    """

    def __init__(self, message: str, *, status: int | None = None, kind: str | None = None):
        super().__init__(message)
        self.status = status
        self.kind = kind


class WebhookConfigError(OmsError):
    """The webhook settings cannot be used (a URL without a secret, a malformed secret)."""


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def parse_secrets(text: str | None) -> list[bytes]:
    """The key bytes of ``OMS_WEBHOOK_SECRETS`` (comma-separated, newest first).

    Each must be ``whsec_`` + base64 of at least 24 bytes; the error names the secret by its
    position, never by its value.
    """
    items = [item.strip() for item in (text or "").split(",") if item.strip()]
    if not items:
        raise WebhookConfigError("OMS_WEBHOOK_SECRETS holds no secret")
    keys: list[bytes] = []
    for n, item in enumerate(items, start=1):
        where = f"OMS_WEBHOOK_SECRETS secret #{n}"
        if not item.startswith(SECRET_PREFIX):
            raise WebhookConfigError(f"{where} does not start with {SECRET_PREFIX!r}")
        try:
            key = base64.b64decode(item[len(SECRET_PREFIX):], validate=True)
        except (binascii.Error, ValueError):
            raise WebhookConfigError(f"{where} is not valid base64 after {SECRET_PREFIX!r}") from None
        if len(key) < MIN_SECRET_BYTES:
            raise WebhookConfigError(
                f"{where} has {len(key)} bytes; at least {MIN_SECRET_BYTES} random bytes are needed"
            )
        keys.append(key)
    return keys


def signature(key: bytes, event_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` signature."""
    signed = f"{event_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def sign(event_id: str, timestamp: int, body: bytes, keys: list[bytes]) -> str:
    """The ``webhook-signature`` header: one signature per active secret, newest first."""
    return " ".join(signature(key, event_id, timestamp, body) for key in keys)


def signed_headers(event_id: str, event_type: str, body: bytes, keys: list[bytes], *, now: float | None = None) -> dict[str, str]:
    """Every header of one attempt, timestamped now (or at `now`)."""
    timestamp = int(time.time() if now is None else now)
    return {
        "Content-Type": "application/json",
        HEADER_ID: event_id,
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_SIGNATURE: sign(event_id, timestamp, body, keys),
        HEADER_EVENT_TYPE: event_type,
    }


def _as_utc(value: datetime) -> datetime:
    # Naive datetimes are taken as UTC: SQLite drops tzinfo on the way back, and
    # a retry that re-reads the outbox row must still produce the same bytes.
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return _as_utc(value).isoformat()
    if isinstance(value, date | dt_time):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"cannot encode {type(value).__name__} in a webhook body")


def encode_event(
    event_id: str,
    event_type: str,
    order_id: str,
    payload: Mapping[str, Any],
    created_at: datetime,
) -> bytes:
    """Encode one event as the canonical JSON webhook body.

    Canonical means: sorted keys, no insignificant whitespace, UTF-8 without
    escaping, Decimals as strings (no float rounding), datetimes as ISO 8601 in
    UTC. The same inputs always give the same bytes, so the signature and the
    receiver's view of the event are identical on every retried attempt.
    """
    document = {
        "id": str(event_id),
        "type": str(event_type.value if isinstance(event_type, enum.Enum) else event_type),
        "order_id": str(order_id),
        "created_at": _as_utc(created_at).isoformat(),
        "data": dict(payload),
    }
    text = json.dumps(
        document,
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
        allow_nan=False,
        default=_json_default,
    )
    return text.encode("utf-8")


def _excerpt(response: httpx.Response) -> str:
    try:
        text = response.text
    except Exception:  # an undecodable body must not hide the status
        return "<undecodable body>"
    text = " ".join(text.split())
    if len(text) > EXCERPT_CHARS:
        return text[:EXCERPT_CHARS] + "..."
    return text


class WebhookSender:
    """POSTs signed event bodies to one webhook URL through a shared client.

    The ``httpx.AsyncClient`` is created once per worker process (with its
    timeouts and connection limits) and passed in, so connections are pooled
    across deliveries and tests can point the sender at a real local server.
    """

    def __init__(self, client: httpx.AsyncClient, url: str, secrets: str | list[bytes]):
        if not url:
            raise ValueError("webhook url is empty")
        self._client = client
        self._url = url
        self._keys = parse_secrets(secrets) if isinstance(secrets, str) else list(secrets)
        if not self._keys:
            raise WebhookConfigError("no webhook secret: signatures would prove nothing")

    @classmethod
    def from_settings(cls, client: httpx.AsyncClient, settings: Any) -> WebhookSender | None:
        """The sender for ``OMS_WEBHOOK_URL``, or None without a URL; `WebhookConfigError` for a
        URL without ``OMS_WEBHOOK_SECRETS`` or a malformed secret."""
        keys = check_settings(settings)
        return cls(client, settings.webhook_url, keys) if keys else None

    @property
    def url(self) -> str:
        return self._url

    async def post(self, *, event_id: str, event_type: str, body: bytes) -> int:
        """Make one delivery attempt and return the 2xx status.

        Raises ``WebhookRetryable`` for 408, 429, 5xx, timeouts and transport
        errors, and a non-retryable ``ApplicationError(type="WebhookRejected")``
        (details: ``{"status": ..., "event_id": ...}``) for any other answer.
        """
        headers = signed_headers(event_id, event_type, body, self._keys)
        bound = log.bind(event_id=event_id, event_type=event_type)
        started = time.perf_counter()
        try:
            response = await self._client.post(self._url, content=body, headers=headers)
            response.raise_for_status()
        except httpx.TimeoutException as exc:
            kind = type(exc).__name__
            bound.warning("webhook_timeout", kind=kind, elapsed_ms=_ms_since(started))
            raise WebhookRetryable(f"webhook {event_id}: timeout ({kind})", kind=kind) from exc
        except httpx.RequestError as exc:
            # Connection refused or reset, dropped before an answer, protocol
            # errors. A misconfigured URL also lands here; retrying it is right,
            # because the event is delivered once the worker is restarted with
            # the corrected setting.
            kind = type(exc).__name__
            bound.warning(
                "webhook_transport_error", kind=kind, error=str(exc), elapsed_ms=_ms_since(started)
            )
            raise WebhookRetryable(
                f"webhook {event_id}: transport error ({kind}): {exc}", kind=kind
            ) from exc
        except httpx.HTTPStatusError as exc:
            status = exc.response.status_code
            excerpt = _excerpt(exc.response)
            elapsed = _ms_since(started)
            if status >= 500 or status in RETRYABLE_STATUSES:
                bound.warning("webhook_retryable_status", status=status, elapsed_ms=elapsed)
                raise WebhookRetryable(
                    f"webhook {event_id}: HTTP {status}: {excerpt}", status=status, kind="status"
                ) from exc
            # Other 4xx, and 3xx: redirects are not followed, since the signed
            # body should go where it was configured to go and nowhere else.
            bound.error("webhook_rejected", status=status, excerpt=excerpt, elapsed_ms=elapsed)
            raise ApplicationError(
                f"webhook {event_id} rejected: HTTP {status}: {excerpt}",
                {"status": status, "event_id": event_id},
                type=ErrorType.WEBHOOK_REJECTED.value,
                non_retryable=True,
            ) from exc
        bound.info("webhook_delivered", status=response.status_code, elapsed_ms=_ms_since(started))
        return response.status_code


def check_settings(settings: Any) -> list[bytes]:
    """The secrets' key bytes when a URL is set ([] without one); `WebhookConfigError` otherwise."""
    if not settings.webhook_url:
        return []
    raw = settings.webhook_secrets.get_secret_value() if settings.webhook_secrets else ""
    if not raw.strip():
        raise WebhookConfigError(
            "OMS_WEBHOOK_URL is set but OMS_WEBHOOK_SECRETS is not: set at least one "
            f"{SECRET_PREFIX}... secret (e.g. `oms webhooks new-secret`); there is no default"
        )
    return parse_secrets(raw)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
