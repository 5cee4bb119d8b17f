"""How the order workflow calls the desk's activities: timeouts and the retry policy, by name.

A waybill is an HTTP call to the carrier's service (Cainiao) or a database step (a pool):
retried with backoff up to 5 minutes apart for as long as the service is down, never on bad
data or a parcel problem no retry can fix. Pure (the workflow imports it).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

from models.errors import BAD_DATA_TYPES, ErrorType

RETRY_WAYBILL = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    non_retryable_error_types=[ErrorType.PARCEL.value, ErrorType.PLATFORM_REFUSED.value,
                               *BAD_DATA_TYPES],
)
WAYBILL_TIMEOUT = timedelta(seconds=60)
# The desk's activities heartbeat every 2 s while they run (`activities.shipping.beating`): a
# worker that dies mid-step is seen within this, and the step retried elsewhere.
WAYBILL_HEARTBEAT = timedelta(seconds=10)
# How long a cancel's compensation keeps asking Cainiao to cancel a waybill (already void here).
VOID_WITHIN = timedelta(minutes=10)
