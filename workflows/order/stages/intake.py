"""Intake and check (SPEC §3.1): check the order; ask the buyer until it is clean; wait for the money.

The check is one step that records the order, checks it (buyer, phone, address, items,
payment, fraud signs), reviews its prices and, when nothing stops it, reserves its stock:
a clean order costs one database step here. The intake loop decides by the same rule
(`clears_intake`) that the check reserved by.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.orders import OrderActivities
    from intake.findings import clears_intake, standing_findings
    from models.enums import FindingClass, FindingCode, Flag, Stage
    from models.payloads import CheckOrderInput
    from models.types import Finding
    from workflows.order import patches, pii_hold
    from workflows.order.stages import buyer, inventory, payment
    from workflows.order.waits import Cancelled

if TYPE_CHECKING:
    from workflows.order.context import Order


async def intake(o: Order) -> None:
    s = o.state
    if s.pii_unavailable is not None:  # a shop's order the platform would not decrypt
        await pii_hold.hold(o)
    rounds = 0
    while True:
        s.set_stage(Stage.CHECKING)
        findings = await check(o)
        if clears_intake(findings) and not s.must_confirm():
            return  # the rule check_order reserved by, when it was asked to
        rejects = [f for f in findings if f.cls == FindingClass.REJECT]
        if rejects:
            raise Cancelled("cannot be processed: " + ", ".join(f"{f.code} ({f.field})" for f in rejects))
        asks = [f for f in findings if f.cls == FindingClass.BUYER]
        if asks or s.must_confirm():
            rounds += 1
            if rounds > s.policy.confirmation.max_rounds:
                rounds = 0
                await o.waits.expire("buyer", s.policy.confirmation.timeout_action, Flag.BUYER_TIMEOUT)
                if not s.inbox.confirmations:
                    continue
            await buyer.ask_buyer(o, asks)
            continue
        await payment.await_payment(o)  # what is left to stop it: the money (unpaid)


async def check(o: Order) -> list[Finding]:
    s = o.state
    checked = s.order
    s.address_changed = False  # this check sees the address as it is now
    # A check that clears the order also reserves its stock, in the same step: a clean
    # order then costs one database step less. Not when the buyer must confirm anyway.
    reserve = None
    if o.patches.uses(patches.CHECK_RESERVES) and not s.must_confirm():
        inventory.push_release_stock(o)
        reserve = inventory.allocate_input(o)
    result = await o.steps.db(
        OrderActivities.check_order,
        CheckOrderInput(
            order=checked,
            policy=s.policy,
            submitted_at=s.unrecorded_since,
            buyer_confirmed=s.buyer_confirmed,
            reserve=reserve,
        ),
    )
    s.unrecorded_since = None
    s.prereview = (checked, result.review)
    s.preallocated = result.allocation
    return take_findings(o, result.findings, "checked")


def take_findings(o: Order, found: list[Finding], event: str) -> list[Finding]:
    """A check's findings become the order's (those still standing) and its flags, in the
    timeline as `event`."""
    s = o.state
    findings = standing_findings(found, buyer_confirmed=s.buyer_confirmed)
    s.findings = findings
    codes = [str(f.code) for f in findings]
    s.flags = sorted(set(s.flags) - set(FindingCode) | set(codes))
    s.log(event, findings=[f.public() for f in findings])
    s.touch()
    return findings

