"""The shipping desk's activities: a thin adapter over `shipping.desk` (issue 20).

Ordinary activities (not local ones): a Cainiao waybill is an HTTP call to the platform,
retried with backoff by Temporal while the service is down (`shipping.retry`); the parcel
key makes every retry ask for the same waybill. A parcel's problem that no retry can fix
(bad data, no carrier configured to issue) is a non-retryable `ParcelProblem`.
"""

from __future__ import annotations

from collections.abc import Callable
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


def _desk(step: Callable[[], T]) -> T:
    """A desk step: a parcel's problem is not retried; a platform error is retried only
    when it may pass."""
    from platforms.errors import PlatformError
    from shipping.parcels import ParcelProblem

    try:
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
