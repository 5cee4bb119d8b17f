"""How the order workflow runs a step: database steps as local activities, events to the outbox.

* A short database step is a local activity (no server round trip), retried by `RETRY_DB`
  for as long as the database needs to come back. Business refusals are non-retryable
  `ApplicationError`s with a `type`.
* A step that fails for good (bad data that no retry can fix) puts the order on hold for an
  operator (`Waits.hold_failed_step`), never a failed workflow: `resume` runs it again,
  `cancel` cancels. Callers that handle a failure themselves say `hold=False`.
* Idempotency keys and event ids (`key`) come from the order id and a counter of the main
  flow only, so every replay and retry asks for the same keys.
* Outbound events are pushed to the webhook by ordinary activities (`RETRY_HTTP`) that the
  order never waits for until it ends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.orders import OrderActivities
    from activities.outbox import OutboxActivities
    from models.enums import Flag
    from models.errors import BAD_DATA_TYPES, ErrorType
    from models.payloads import DeliverInput, EmitInput, RecordOrderInput
    from outbox.policy import RETRY_HTTP

if TYPE_CHECKING:
    from workflows.order.persistence import Persistence
    from workflows.order.state import OrderState

# Short database steps: retried quickly and for long (the database may be restarting, a row
# locked, a race lost); business errors are non-retryable ApplicationErrors. The order
# activities raise bad data non-retryable themselves (`activities.orders.no_retry_on_bad_data`);
# the error types of bad data (`models.errors.BAD_DATA_TYPES`) are listed here too, so that no step of any activity class is
# retried forever on it (a type matches by its exact name).
RETRY_DB = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=[ErrorType.LEDGER.value, ErrorType.UNKNOWN_EVENT.value, *BAD_DATA_TYPES],
)
DB_TIMEOUT = timedelta(seconds=30)

# How a step that failed for good reaches the workflow: an ordinary activity's failure comes
# wrapped in an ActivityError; a local activity's non-retryable one as its ApplicationError.
STEP_FAILED = (ActivityError, ApplicationError)


class Steps:
    def __init__(self, state: OrderState) -> None:
        self.state = state
        self.persistence: Persistence  # wired by the workflow
        self.hold_failed: Callable[[str, str], Awaitable[None]]  # wired: `Waits.hold_failed_step`
        self.ops = 0  # the main flow's key counter
        self.deliveries: list[Any] = []

    async def db(self, method: Any, arg: Any, *, hold: bool = True) -> Any:
        """A short database step as a local activity; a failure no retry can fix holds the order."""
        persistence = self.persistence
        if persistence.unwritten and method is not OrderActivities.persist_state:
            await persistence.write_warehouse_events()  # every step sees the shipments as they are
        while True:
            persistence.steps += 1
            try:
                return await workflow.execute_local_activity_method(
                    method, arg, start_to_close_timeout=DB_TIMEOUT, retry_policy=RETRY_DB
                )
            except STEP_FAILED as err:
                failure = err
            finally:
                persistence.steps -= 1
            if not hold:
                raise failure
            await self.hold_failed(getattr(method, "__name__", str(method)), cause(failure))

    async def emit(self, type_: str, payload: dict[str, Any], key: str) -> None:
        events = await self.db(
            OrderActivities.emit_event,
            EmitInput(order_id=self.state.order_id, type=type_, payload=payload, event_id=self.key(key)),
        )
        self.state.log("event", type=type_, **payload)
        self.deliver(events)

    def deliver(self, event_ids: list[str]) -> None:
        """Push outbox events to the webhook (when configured) without blocking the order."""
        if not self.state.policy.webhook_enabled:
            return
        for event_id in event_ids:
            handle = workflow.start_activity_method(
                OutboxActivities.deliver_event,
                DeliverInput(event_id=event_id),
                start_to_close_timeout=timedelta(seconds=30),
                schedule_to_close_timeout=timedelta(days=1),
                retry_policy=RETRY_HTTP,
            )
            self.deliveries.append(handle)

    async def drain_deliveries(self) -> None:
        for handle in self.deliveries:
            try:
                await handle
            except STEP_FAILED as err:
                self.state.flag(Flag.WEBHOOK_FAILED)
                self.state.log("webhook_failed", error=cause(err))
        if Flag.WEBHOOK_FAILED in self.state.flags:
            await self.persistence.persist_once()

    async def ensure_recorded(self) -> None:
        """The order's row, when its first check never got to write it (that step failed for
        good): so that a held or cancelled order is in the clerk's lists too. Best effort."""
        s = self.state
        if s.unrecorded_since is None:
            return
        try:
            await self.db(
                OrderActivities.record_order,
                RecordOrderInput(order=s.order, submitted_at=s.unrecorded_since),
                hold=False,
            )
        except STEP_FAILED as err:
            s.log("step_failed", step="record_order", error=cause(err))
            return
        s.unrecorded_since = None

    def key(self, what: str) -> str:
        """A stable idempotency key / event id: the same on every replay and retry."""
        self.ops += 1
        return f"{self.state.order_id}:{self.ops}:{what}"


def cause(err: BaseException) -> str:
    """The message of what made an activity fail (its ApplicationError's, when it has one)."""
    if isinstance(err, ApplicationError):
        return err.message
    c = err.__cause__
    if isinstance(c, ApplicationError):
        return c.message
    return str(c or err)
