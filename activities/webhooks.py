"""Outbound webhook delivery: signing, canonical event bodies, one POST per attempt.

This module does one HTTP attempt and classifies its outcome; retrying is left to
Temporal. ``WebhookSender.post`` raises ``WebhookRetryable`` for answers worth
repeating (5xx, 408, 429, timeouts, connection errors); as a plain exception it
reaches Temporal as a retryable failure and the activity is retried under
``RETRY_HTTP``. Any other non-2xx answer raises a non-retryable
``ApplicationError(type="WebhookRejected")``: the receiver has looked at the event
and refused it, so repeating the same bytes cannot help and an operator must look.

Receivers de-duplicate on ``X-OMS-Event-Id``; delivery is at-least-once (an
answer lost after the receiver processed the event leads to a second attempt),
so the body must be byte-for-byte identical on every attempt. ``encode_event``
guarantees that for the same inputs.

No database code lives here: the ``deliver_event`` activity reads the outbox row,
calls ``encode_event`` and ``WebhookSender.post``, and records the outcome.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from decimal import Decimal
from typing import Any
from uuid import UUID

import httpx
import structlog
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

log = structlog.get_logger()

HEADER_EVENT_ID = "X-OMS-Event-Id"
HEADER_EVENT_TYPE = "X-OMS-Event-Type"
HEADER_SIGNATURE = "X-OMS-Signature"
SIGNATURE_PREFIX = "sha256="

WEBHOOK_REJECTED = "WebhookRejected"
"""ApplicationError type for answers that must not be retried (4xx other than 408/429)."""

RETRYABLE_STATUSES = frozenset({408, 429})
"""Client-error statuses that mean "not now" rather than "never"."""

EXCERPT_CHARS = 200

RETRY_HTTP = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    # Unlimited attempts, on purpose. An outbox event exists to be delivered;
    # giving up after N attempts would drop it during any receiver outage longer
    # than a few minutes (with a 60 s cap, 20 attempts last about 15 minutes).
    # Attempts are cheap: Temporal does not write a history event per retry, and
    # at the cap there is one request a minute. The bound is a *time* bound,
    # set by the caller as schedule_to_close_timeout (see DELIVERY_DEADLINE);
    # when it expires the event is marked failed for an operator like a 4xx.
    maximum_attempts=0,
    non_retryable_error_types=[WEBHOOK_REJECTED],
)

ATTEMPT_TIMEOUT = timedelta(seconds=30)
"""Suggested start_to_close_timeout for one delivery attempt.

Must exceed the httpx client's own timeout, so that a slow receiver surfaces as an
``httpx.TimeoutException`` (classified, logged) rather than an activity timeout.
"""

DELIVERY_DEADLINE = timedelta(hours=24)
"""Suggested schedule_to_close_timeout: how long an event is retried before an operator is told."""


class WebhookRetryable(Exception):
    """A delivery attempt failed in a way that another attempt may fix.

    Deliberately not an ``ApplicationError``: Temporal converts it to a retryable
    failure of type ``"WebhookRetryable"``, retried under ``RETRY_HTTP``.
    """

    def __init__(self, message: str, *, status: int | None = None, kind: str | None = None):
        super().__init__(message)
        self.status = status
        self.kind = kind


def sign(body: bytes, secret: str) -> str:
    """Return the ``X-OMS-Signature`` value for *body*: ``"sha256=" + hex HMAC-SHA256``."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def verify(body: bytes, secret: str, header: str | None) -> bool:
    """Check an ``X-OMS-Signature`` header against *body* in constant time."""
    if not header:
        return False
    return hmac.compare_digest(sign(body, secret).encode("ascii"), header.strip().encode("utf-8"))


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

    def __init__(self, client: httpx.AsyncClient, url: str, secret: str):
        if not url:
            raise ValueError("webhook url is empty")
        if not secret:
            raise ValueError("webhook secret is empty: signatures would prove nothing")
        self._client = client
        self._url = url
        self._secret = secret

    @property
    def url(self) -> str:
        return self._url

    async def post(self, *, event_id: str, event_type: str, body: bytes) -> int:
        """Make one delivery attempt and return the 2xx status.

        Raises ``WebhookRetryable`` for 408, 429, 5xx, timeouts and transport
        errors, and a non-retryable ``ApplicationError(type="WebhookRejected")``
        (details: ``{"status": ..., "event_id": ...}``) for any other answer.
        """
        headers = {
            "Content-Type": "application/json",
            HEADER_EVENT_ID: event_id,
            HEADER_EVENT_TYPE: event_type,
            HEADER_SIGNATURE: sign(body, self._secret),
        }
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
                type=WEBHOOK_REJECTED,
                non_retryable=True,
            ) from exc
        bound.info("webhook_delivered", status=response.status_code, elapsed_ms=_ms_since(started))
        return response.status_code


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
