"""Buyer confirmation (SPEC §3.2): ask for exactly what is missing, remind, and apply the answer.

The buyer is contacted on the policy's channel (`im`, `sms`, or a `phone` call task for
the clerk) with a message that names the item to confirm; each contact is an outbox event
and a row of the order's communication log. Reminders follow on schedule; on the deadline
the timeout policy applies (cancel, or hold for an operator). The buyer's corrections are
applied to the order and shown old → new in the timeline (phone and detail masked), and
the order is checked again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.orders import OrderActivities
    from models.documents import RECEIVER_FIELDS, OrderDocument
    from models.enums import Channel, Flag, Stage, WaitingFor
    from models.payloads import ContactInput
    from models.types import Finding
    from privacy.mask import mask_correction

if TYPE_CHECKING:
    from workflows.order.context import Order


async def ask_buyer(o: Order, findings: list[Finding]) -> None:
    """Contact the buyer, remind on schedule, and on the deadline apply the timeout policy."""
    s = o.state
    policy = s.policy.confirmation
    s.set_stage(Stage.AWAITING_BUYER, WaitingFor.BUYER)
    reminder = 0
    deadline = workflow.now() + policy.timeout
    while not s.inbox.confirmations:
        await contact(o, findings, policy.channel, reminder)
        until = deadline
        if reminder < policy.max_reminders:
            until = min(deadline, workflow.now() + policy.remind_every)
        if await o.waits.wait(lambda: bool(s.inbox.confirmations), until - workflow.now()):
            break
        if workflow.now() >= deadline:
            await o.waits.expire("buyer", policy.timeout_action, Flag.BUYER_TIMEOUT)
            deadline = workflow.now() + policy.timeout
            reminder = 0
            continue
        reminder += 1
    apply_confirmations(o)


async def contact(o: Order, findings: list[Finding], channel: Channel, reminder: int) -> None:
    s = o.state
    result = await o.steps.db(
        OrderActivities.contact_buyer,
        ContactInput(
            order=s.order,
            findings=findings,
            channel=channel,
            reminder=reminder,
            event_id=o.steps.key(f"contact-{reminder}"),
        ),
    )
    s.contact_no = result.contact_no
    s.log("contact", channel=str(channel), reminder=reminder, asks_for=[f.field for f in findings])
    o.steps.deliver(result.event_ids)


def apply_confirmations(o: Order) -> None:
    s = o.state
    doc = s.order.model_dump(mode="json")
    changes: list[dict[str, Any]] = []
    for confirmation in s.inbox.confirmations:
        data = confirmation.model_dump(exclude_none=True)
        for field, (part, key) in RECEIVER_FIELDS.items():
            if field in data and doc[part].get(key) != data[field]:
                changes.append({"field": f"{part}.{key}", "old": doc[part].get(key), "new": data[field]})
                doc[part][key] = data[field]
        requests = []
        if confirmation.remarks:
            requests.append(confirmation.remarks)
        if confirmation.delivery_window:
            requests.append(f"送达时间: {confirmation.delivery_window}")
        if confirmation.parcel_locker:
            requests.append("放快递柜 (parcel locker)")
        if requests:
            old = doc.get("remarks")
            new = "; ".join([r for r in [old, *requests] if r])
            changes.append({"field": "remarks", "old": old, "new": new})
            doc["remarks"] = new
        s.log(
            "contact_outcome",
            note=confirmation.note,
            channel=str(confirmation.channel or ""),
            contact_no=s.contact_no,
        )
    for change in changes:
        s.log("correction", **_masked(change))
    s.order = OrderDocument.model_validate(doc)
    s.inbox.confirmations.clear()
    s.buyer_confirmed = True
    s.touch()


def _masked(change: dict[str, Any]) -> dict[str, Any]:
    """A correction as the timeline keeps it: a phone or address detail masked (`privacy.mask`)."""
    if change["field"] in ("buyer.phone", "address.detail"):
        return {**change, "old": mask_correction(change["old"]), "new": mask_correction(change["new"])}
    return change
