"""The OMS's errors, defined once: a common base, the `ApplicationError` type names, and the one
classifier of bad data.

* `OmsError`: the base of every error class of the project's own.
* `ErrorType`: the type names of the non-retryable `ApplicationError`s the OMS raises, and that
  the retry policies name (`workflows/order/steps.py`); `application_error` builds one.
* Bad data: an error of the data, not of the moment, fails the same way on every attempt, so no
  retry may run on it for ever. `is_bad_data` says which errors are (the builtins' value, type,
  arithmetic and lookup errors, pydantic's validation errors, the database's DataError, a value
  the driver could not bind); a database that is down, locked or busy, a lost race and network
  errors are not. `BAD_DATA_TYPES` names the concrete types, for a retry policy's
  `non_retryable_error_types` (which matches a type by its exact name).

`no_retry_on_bad_data` makes an activity raise its bad data that way.

Pure: no database, no HTTP (the workflow imports it); database errors are told by their class
names, so this module needs no driver.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeVar

import structlog
from pydantic import ValidationError
from temporalio.exceptions import ApplicationError

from models.documents import validation_messages


class OmsError(Exception):
    """The base of the OMS's own errors: each says in words what is wrong."""


class ErrorType(StrEnum):
    LEDGER = "LedgerError"  # the ledger refused: an unknown transfer, too few units
    UNKNOWN_EVENT = "UnknownEvent"  # an outbox event that is not there
    INVALID_DOCUMENT = "InvalidDocument"  # an order document no step can process
    INVALID_INPUT = "InvalidInput"  # a workflow started with an input that is no order
    REFUSED = "Refused"  # an operator's action refused by the workflow
    WEBHOOK_REJECTED = "WebhookRejected"  # a 4xx from the webhook receiver
    PLATFORM_UNAVAILABLE = "PlatformUnavailable"  # a platform's rate limit or outage: retried
    SHOP_UNKNOWN = "ShopUnknown"  # a shop's sync for a shop that is not there
    PARCEL = "ParcelProblem"  # the shipping desk: a parcel no retry can help (no Cainiao client...)
    PLATFORM_REFUSED = "PlatformRefused"  # the shipping desk: the waybill service refused the call


def application_error(kind: ErrorType, message: str) -> ApplicationError:
    """A non-retryable `ApplicationError` of one of the OMS's types."""
    return ApplicationError(message, type=str(kind), non_retryable=True)


# The concrete type names of bad data, as an activity's raw exception reaches a retry policy.
BAD_DATA_TYPES = (
    ErrorType.INVALID_DOCUMENT.value,
    "ValueError",
    "TypeError",
    "OverflowError",
    "ZeroDivisionError",
    "InvalidOperation",
    "KeyError",
    "IndexError",
    "UnicodeEncodeError",
    "UnicodeDecodeError",
    "JSONDecodeError",
    "ValidationError",
    "PydanticSerializationError",
    "DataError",
)
# What every bad-data error is an instance of (by class name, anywhere in its MRO).
_BAD_DATA_BASES = frozenset({"ValueError", "TypeError", "ArithmeticError", "LookupError", "DataError"})


def is_bad_data(exc: BaseException) -> bool:
    """True for an error no retry can fix. A database that is down, locked or busy
    (OperationalError), a lost race (IntegrityError) and network errors are not: they pass."""
    names = _sqlalchemy_names(exc)
    if "StatementError" in names and "DBAPIError" not in names:
        return True  # a value the driver could not bind (raised before any round trip)
    return any(cls.__name__ in _BAD_DATA_BASES for cls in type(exc).__mro__)


def _sqlalchemy_names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__ if cls.__module__.startswith("sqlalchemy")}


def _is_statement_error(exc: BaseException) -> bool:
    return "StatementError" in _sqlalchemy_names(exc)


log = structlog.get_logger()
_F = TypeVar("_F", bound=Callable[..., Any])


def no_retry_on_bad_data(fn: _F) -> _F:
    """An activity whose bad-data errors are non-retryable `ApplicationError`s, typed by the
    error's class and worded without the input's values (a ValidationError by its fields)."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ApplicationError:
            raise
        except Exception as exc:
            if not is_bad_data(exc):
                raise
            if isinstance(exc, ValidationError):
                message = "; ".join(validation_messages(exc))
            elif _is_statement_error(exc):  # the driver's words, never the statement's parameters
                message = f"{type(exc).__name__}: {type(exc.orig).__name__}: {exc.orig}"
            else:
                message = f"{type(exc).__name__}: {exc}"
            log.warning("step failed on bad data", activity=fn.__name__, error=type(exc).__name__)
            raise ApplicationError(
                message[:1000], type=type(exc).__name__, non_retryable=True
            ) from exc

    return run  # type: ignore[return-value]
