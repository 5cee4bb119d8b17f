"""How the outbox's deliveries are retried and bounded: what the order workflow schedules its
`deliver_event` activities with. Pure (no HTTP): the workflow imports it."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

from models.errors import ErrorType

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
    non_retryable_error_types=[ErrorType.WEBHOOK_REJECTED.value],
)

ATTEMPT_TIMEOUT = timedelta(seconds=30)
"""Suggested start_to_close_timeout for one delivery attempt.

Must exceed the httpx client's own timeout, so that a slow receiver surfaces as an
``httpx.TimeoutException`` (classified, logged) rather than an activity timeout.
"""

DELIVERY_DEADLINE = timedelta(hours=24)
"""Suggested schedule_to_close_timeout: how long an event is retried before an operator is told."""
