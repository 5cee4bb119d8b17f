"""Payment (SPEC §3.3): an unpaid order waits for `payment_received`, and is cancelled after the window."""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.documents import OrderDocument
    from models.enums import Flag, Stage, WaitingFor
    from workflows.order.waits import Cancelled

if TYPE_CHECKING:
    from workflows.order.context import Order


async def await_payment(o: Order) -> None:
    s = o.state
    s.set_stage(Stage.AWAITING_PAYMENT, WaitingFor.PAYMENT)
    window = s.policy.payment.unpaid_window
    while s.inbox.payment is None:
        got = await o.waits.wait(lambda: s.inbox.payment is not None, window)
        if not got:
            s.flag(Flag.PAYMENT_TIMEOUT)
            raise Cancelled(f"unpaid after {window}")
    paid = s.inbox.payment
    doc = s.order.model_dump(mode="json")
    doc["payment"] = {
        **doc.get("payment", {}),
        "status": "paid",
        "amount": str(paid.amount),
        "transaction_id": paid.transaction_id,
        "method": paid.method or doc.get("payment", {}).get("method"),
    }
    s.order = OrderDocument.model_validate(doc)
    s.inbox.payment = None
    s.log("payment", amount=str(paid.amount), transaction_id=paid.transaction_id)
