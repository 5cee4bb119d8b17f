"""The shipping desk's activities: a thin adapter over `shipping.desk` (issue 20).

Ordinary activities (not local ones): a Cainiao waybill is an HTTP call to the platform,
retried with backoff by Temporal while the service is down (`shipping.retry`); the parcel
key makes every retry ask for the same waybill. A parcel's problem that no retry can fix
(bad data, no carrier configured to issue) is a non-retryable `ParcelProblem`.

Each step heartbeats from a helper thread while it runs (`beating`), and the workflow gives
it a short heartbeat timeout (`shipping.retry.WAYBILL_HEARTBEAT`): a worker that dies in the
middle of a step is seen by the server within seconds, and the step is retried on another
worker then, not after its whole start-to-close timeout (60 s; seen in the kill drill: a
`void_parcels` in flight at the kill held its order a minute).
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from models.errors import ErrorType, application_error
from shipping.payloads import (
    PrepareParcelInput,
    PrepareParcelResult,
    ReaddressInput,
    ReaddressResult,
    VoidParcelsInput,
    VoidParcelsResult,
)


def _business(exc: Exception) -> ApplicationError:
    return application_error(ErrorType.PARCEL, str(exc))


def _retry_may_pass(exc: Any) -> bool:
    """A platform error that may pass (rate limit, the service down, an expired session that
    a clerk renews): the activity is retried with backoff. Any other is the platform's
    refusal, not retried."""
    return bool(getattr(exc, "retryable", False)) or getattr(exc, "kind", "") == "session_expired"


def _refused(exc: Any) -> ApplicationError:
    return application_error(ErrorType.PLATFORM_REFUSED, str(exc))


T = TypeVar("T")
BEAT_EVERY = 2.0  # seconds; well inside shipping.retry.WAYBILL_HEARTBEAT


@contextmanager
def beating(every: float = BEAT_EVERY) -> Iterator[None]:
    """Heartbeat the running activity from a helper thread until the block ends. The blocking
    step (a database transaction, an HTTP call to Cainiao) cannot beat while it waits, and a
    heartbeat says only that this worker is alive: the step's own time is still bounded by
    its start-to-close timeout."""
    context = contextvars.copy_context()  # the activity's context, for the helper thread
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            context.run(activity.heartbeat)

    helper = threading.Thread(target=beat, name="desk-heartbeat", daemon=True)
    helper.start()
    try:
        yield
    finally:
        stop.set()
        helper.join(timeout=every + 1)


def _desk(step: Callable[[], T]) -> T:
    """A desk step, heartbeating while it runs: a parcel's problem is not retried; a platform
    error is retried only when it may pass."""
    from platforms.errors import PlatformError
    from shipping.parcels import ParcelProblem

    try:
        with beating():
            return step()
    except ParcelProblem as exc:
        raise _business(exc) from exc
    except PlatformError as exc:
        if _retry_may_pass(exc):
            raise
        raise _refused(exc) from exc


class ShippingActivities:
    def __init__(self, factory: Any, cainiao: Any = None) -> None:
        self._factory = factory
        self._cainiao = cainiao

    @activity.defn(name="prepare_parcel", no_thread_cancel_exception=True)
    def prepare_parcel(self, inp: PrepareParcelInput) -> PrepareParcelResult:
        """The shipment's parcel, carrier and waybill (each once, under the parcel key)."""
        from shipping.desk import prepare
        from shipping.parcels import MergeRule

        merge = MergeRule(enabled=inp.merge, window=timedelta(seconds=inp.merge_window_s))
        done = _desk(lambda: prepare(self._factory, inp.shipment_id, cainiao=self._cainiao,
                                     merge=merge))
        return PrepareParcelResult(**done.as_dict())

    @activity.defn(name="void_parcels", no_thread_cancel_exception=True)
    def void_parcels(self, inp: VoidParcelsInput) -> VoidParcelsResult:
        """Compensation of a cancel: the order's waybills voided (Cainiao's cancelled)."""
        from shipping.desk import void_order_parcels

        done = _desk(lambda: void_order_parcels(self._factory, inp.order_id, inp.reason,
                                                cainiao=self._cainiao))
        return VoidParcelsResult(**done)

    @activity.defn(name="readdress_parcels", no_thread_cancel_exception=True)
    def readdress_parcels(self, inp: ReaddressInput) -> ReaddressResult:
        """The buyer changed the address: the order's parcels re-labelled for it (a Cainiao
        number issued to the old receiver cancelled, a printed label's number voided)."""
        from shipping.desk import readdress_order_parcels

        done = _desk(lambda: readdress_order_parcels(self._factory, inp.order_id,
                                                     cainiao=self._cainiao))
        return ReaddressResult.model_validate({"parcels": done})
