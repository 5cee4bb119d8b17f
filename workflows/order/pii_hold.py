"""A shop's order whose receiver the platform would not decrypt is held at intake (SPEC §3.9).

The shop's sync starts such an order with its document as mapped (the receiver's name,
phone and door address empty: ciphertext is never put in a document) and the platform's
reason (`OrderInput.pii_unavailable`). Before any check, the order is recorded and held:
flag `pii_unavailable`, the reason in the timeline, stage `on_hold` (held from `checking`),
an `on_hold` outbox event. Nothing is checked against a masked value or ciphertext.

It leaves the hold when the receiver arrives, by either way:

* a clerk's `resume`: the order asks its platform again (`decrypt_held`, an activity of the
  shops' worker that decrypts through the shop's credentials and logs it in `pii-log`); a
  refusal again keeps it held with the new reason in the timeline;
* the shop's sync, which asks again on its next runs, decrypts it and sends the receiver as
  `platform_address` (the same signal as an address changed by the buyer).

Then the flag goes and intake checks the order as any other. No patch guards this: only
orders started with the new input field take it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from models.enums import Flag, SignalName, Stage, WaitingFor
    from models.payloads import PlatformAddress
    from platforms.messages import DecryptHeldInput, DecryptHeldResult
    from workflows.order import messages
    from workflows.order.steps import STEP_FAILED, cause
    from workflows.order.waits import A_YEAR

if TYPE_CHECKING:
    from workflows.order.context import Order

# The platform down or rate-limiting: a few tries, then the clerk is told and resumes again.
DECRYPT_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), backoff_coefficient=2.0,
                            maximum_interval=timedelta(seconds=30), maximum_attempts=5)


async def hold(o: Order) -> None:
    """Held until the receiver is decrypted (a `cancel` ends it instead, raised by the wait)."""
    s = o.state
    s.flag(Flag.PII_UNAVAILABLE)
    s.log("pii_unavailable", reason=s.pii_unavailable)
    await o.steps.ensure_recorded()  # the clerk sees it in the queue while it waits
    s.held_from = Stage.CHECKING
    s.set_stage(Stage.ON_HOLD, WaitingFor.OPERATOR)
    await o.steps.emit(
        "on_hold", {"held_from": str(Stage.CHECKING), "reason": str(Flag.PII_UNAVAILABLE)}, "pii-hold"
    )
    while not s.address_changed:
        await o.waits.wait(lambda: s.inbox.resume is not None or s.address_changed, A_YEAR)
        if s.address_changed:
            break  # the shop's sync decrypted it meanwhile
        s.inbox.resume = None
        why = await _decrypt(o)
        if why is not None:
            s.pii_unavailable = why
            s.log("pii_unavailable", reason=why)
    s.pii_unavailable = None
    s.drop_flag(Flag.PII_UNAVAILABLE)
    s.held_from = None
    s.set_stage(Stage.CHECKING)


async def _decrypt(o: Order) -> str | None:
    """Ask the platform again; the receiver applied as the sync would send it, or why not."""
    s = o.state
    try:
        result = await workflow.execute_activity(
            "decrypt_held",
            DecryptHeldInput(order_id=s.order_id),
            result_type=DecryptHeldResult,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=DECRYPT_RETRY,
        )
    except STEP_FAILED as err:
        return f"the platform could not be asked: {cause(err)}"
    if result.receiver is None:
        return result.reason or "not decrypted"
    message = messages.MESSAGES[SignalName.PLATFORM_ADDRESS]
    parsed = PlatformAddress.model_validate(result.receiver)
    messages.accept(s, message, parsed, via="resume")
    return None
