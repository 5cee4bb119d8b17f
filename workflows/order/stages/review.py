"""Review and approval (SPEC §3.5): recompute the money, confirm payment, and let a person decide.

The money is recomputed from the catalog and the rules (unit prices, coupons, shipping);
orders with `review` or `payment` findings, over the approval threshold, or not settled
wait in `awaiting_approval` for `approve` or `reject` (reject = cancel and refund). An
approval never happens by itself: the wait escalates on a timer and keeps waiting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.orders import OrderActivities
    from models.enums import FindingClass, Flag, Stage, WaitingFor
    from models.payloads import Reject, ReviewInput
    from workflows.order.waits import Cancelled

if TYPE_CHECKING:
    from workflows.order.context import Order


async def review(o: Order) -> None:
    s = o.state
    s.set_stage(Stage.REVIEWING)
    if s.prereview is not None and s.prereview[0] is s.order and s.prereview[1] is not None:
        result = s.prereview[1]  # computed by check_order on this very document, no wait since
    else:
        result = await o.steps.db(OrderActivities.review_order, ReviewInput(order=s.order, policy=s.policy))
    s.prereview = None
    known = {(f.code, f.field) for f in s.findings}
    for finding in result.findings:
        if (finding.code, finding.field) not in known:
            s.findings.append(finding)
            s.flag(str(finding.code))
    s.log("reviewed", totals=result.totals.model_dump(mode="json"), findings=[f.public() for f in result.findings])
    reasons = [f"{f.code} ({f.field})" for f in s.findings if f.cls in (FindingClass.REVIEW, FindingClass.PAYMENT)]
    threshold = s.policy.approval.threshold
    if result.totals.total > threshold:
        reasons.append(f"total {result.totals.total} over the approval threshold {threshold}")
    if not s.payment_settled():
        reasons.append("payment not settled")
    if reasons:
        s.flag(Flag.NEEDS_APPROVAL)
        await await_approval(o, reasons)
    s.reviewed = True


async def await_approval(o: Order, reasons: list[str]) -> None:
    s = o.state
    s.set_stage(Stage.AWAITING_APPROVAL, WaitingFor.APPROVAL)
    s.log("approval_requested", reasons=reasons)
    escalations = 0
    while s.inbox.approval is None:
        got = await o.waits.wait(lambda: s.inbox.approval is not None, s.policy.approval.escalate_after)
        if not got:
            escalations += 1
            s.flag(Flag.APPROVAL_OVERDUE)
            await o.steps.emit(
                "approval_escalation",
                {"reasons": reasons, "escalation": escalations},
                f"approval-escalation-{escalations}",
            )
    decision = s.inbox.approval
    if isinstance(decision, Reject):
        raise Cancelled(f"rejected in review: {decision.reason}")
    s.drop_flag(Flag.APPROVAL_OVERDUE)
    s.drop_flag(Flag.NEEDS_APPROVAL)
    s.log("approved", note=decision.note, by=decision.by)
