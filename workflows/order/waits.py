"""Every wait of the order: a timer, a policy for when it fires, and a cancel that cuts it short.

No order is ever silently stuck. A wait that expires cancels the order or holds it for an
operator (`expire`, by the policy of what it waited for); a step that failed for good
holds it too (`hold_failed_step`). While the main flow waits here, the persister writes
the order's state and the UI's search attributes are brought up to date.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.enums import Flag, Stage, TimeoutAction, WaitingFor
    from models.errors import OmsError

if TYPE_CHECKING:
    from workflows.order.context import Order

A_YEAR = timedelta(days=365)


class Cancelled(OmsError):
    """The order is to be cancelled (by an operator, a policy or a reject), with this reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Waits:
    def __init__(self, o: Order) -> None:
        self.o = o
        # A refund asked for on the platform holds the order in any wait: whether one is due,
        # and the hold (True: pick lists were withdrawn). Wired by `refund_hold.wire`.
        self.refund_due: Callable[[], bool] = lambda: False
        self.refund_hold: Callable[[], Awaitable[bool]] | None = None
        # An address the buyer changed on the platform is checked again in any wait (and a
        # released order's pick list amended). Wired by `address_change.wire`.
        self.address_due: Callable[[], bool] = lambda: False
        self.address_amend: Callable[[], Awaitable[None]] | None = None

    async def wait(self, condition: Callable[[], bool], timeout: timedelta) -> bool:
        """Wait for `condition` up to `timeout` (False: the timer fired); a cancel interrupts any
        wait; a refund asked for on the platform holds the order meanwhile (`refund_hold`)."""
        s, persistence = self.o.state, self.o.persistence
        s.prereview = None  # the catalog may change while the order waits: review afresh
        intercept = lambda: self.refund_due() and not condition()  # noqa: E731
        amend = lambda: self.address_due() and not condition()  # noqa: E731
        wake = lambda: condition() or s.inbox.cancel is not None or intercept() or amend()  # noqa: E731
        deadline = workflow.now() + timeout
        while True:
            persistence.paused_on = wake
            self.o.visibility.publish_due()
            try:
                await workflow.wait_condition(wake, timeout=timeout)
            except TimeoutError:
                self.raise_if_cancelled()
                return False
            finally:
                persistence.paused_on = None
            self.raise_if_cancelled()
            if amend():
                assert self.address_amend is not None  # wired whenever an address can change
                await self.address_amend()
                timeout = deadline - workflow.now()
                if timeout <= timedelta(0):
                    return condition()
                continue
            if not intercept():
                return True
            assert self.refund_hold is not None  # wired whenever a refund can be due
            if await self.refund_hold():
                return True  # its pick lists were withdrawn: the caller looks again
            timeout = deadline - workflow.now()
            if timeout <= timedelta(0):
                return condition()

    def raise_if_cancelled(self) -> None:
        cancel = self.o.state.inbox.cancel
        if cancel is not None:
            raise Cancelled(cancel.reason)

    async def expire(self, what: str, action: TimeoutAction, flag: Flag) -> None:
        """A wait ran out: cancel, or hold the order until an operator resumes or cancels it."""
        s = self.o.state
        inbox = s.inbox
        s.flag(flag)
        s.log("timeout", waiting_for=what, action=str(action))
        if action == TimeoutAction.CANCEL:
            raise Cancelled(f"no {what} before the deadline ({flag})")
        s.held_from = s.stage
        waiting = s.waiting
        s.set_stage(Stage.ON_HOLD, WaitingFor.OPERATOR)
        await self.o.steps.emit(
            "on_hold", {"held_from": str(s.held_from), "reason": str(flag)}, f"hold-{self.o.steps.ops}"
        )
        await self.wait(
            lambda: inbox.resume is not None or bool(inbox.confirmations) or inbox.decision_new
            or bool(inbox.transfers_arrived) or (what == "stock" and s.stock_done()),
            A_YEAR,
        )
        inbox.resume = None
        assert s.held_from is not None
        s.set_stage(s.held_from, waiting)
        s.held_from = None
        s.drop_flag(flag)

    async def hold_failed_step(self, step: str, error: str) -> None:
        """A step failed for good (bad data): hold the order until an operator resumes (the step
        runs again) or cancels it. Its state and the reason are written while it waits."""
        s = self.o.state
        stage, waiting, held_from = s.stage, s.waiting, s.held_from
        s.flag(Flag.STEP_FAILED)
        s.log("step_failed", step=step, error=error)
        await self.o.steps.ensure_recorded()
        s.held_from = s.effective_stage
        s.set_stage(Stage.ON_HOLD, WaitingFor.OPERATOR)
        await self.wait(lambda: s.inbox.resume is not None, A_YEAR)
        s.inbox.resume = None
        s.set_stage(stage, waiting)
        s.held_from = held_from
        s.drop_flag(Flag.STEP_FAILED)
        s.log("step_retried", step=step)
