"""OrderWorkflow: one durable workflow per order, run the way an experienced clerk runs it.

check → [awaiting_buyer] → [awaiting_payment] → allocating → [backordered |
awaiting_transfer] → reviewing → [awaiting_approval] → released → picking →
packed → shipped → completed; cancel in any stage before shipped; a timeout
whose policy is `hold` parks the order `on_hold` for an operator.

Why it looks the way it does:

* Determinism. Only `workflow.now()`, `workflow.uuid4()` and timers; every
  read or write of the database is an activity. Ids of events and idempotency
  keys are derived from the order id and a workflow counter, so a retried
  activity finds its own earlier work.
* Signals never fail the workflow. Each arrives as raw JSON, is validated here
  against its `models.payloads` model and against the current stage
  (`_refusal`), and is recorded in the timeline as accepted or rejected. The
  CLI asks the same question first with the `refusal` query.
* Every wait has a timer and a policy (`_wait`): reminders, escalations, and
  on expiry cancel or hold. Nothing is ever silently stuck.
* Compensation is registered before the step it undoes (`_undo`) and runs in
  reverse on cancel. A cancel that arrives while an activity runs is handled
  right after that activity: it is never lost.
* The database is the source of truth for lists and reports: a background
  task (`_persist_loop`) writes the workflow's state and new timeline entries
  after every change, in batches.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ValidationError

    from activities.check_rules import clears_intake, standing_findings
    from activities.inventory import InventoryActivities
    from activities.orders import CheckOrderInput, OrderActivities, ShipmentUpdatesInput, refund_for
    from activities.outbox import OutboxActivities, jsonable
    from activities.webhooks import RETRY_HTTP
    from models.documents import OrderDocument
    from models.enums import (
        Channel,
        FindingClass,
        FindingCode,
        Flag,
        PaymentStatus,
        ShortagePolicy,
        SignalName,
        Stage,
        TimeoutAction,
        WaitingFor,
    )
    from models.payloads import (
        AllocateInput,
        Approve,
        BuyerConfirmed,
        Cancel,
        ContactInput,
        Delivered,
        DeliverInput,
        EmitInput,
        LineState,
        OrderInput,
        OrderOutcome,
        OrderSnapshot,
        PaymentReceived,
        PersistInput,
        PickException,
        PickExceptionInput,
        RefundInput,
        Reject,
        ReleaseInput,
        ReleaseStockInput,
        Resume,
        ReviewInput,
        ShipmentState,
        ShipmentUpdateInput,
        ShipmentUpdateResult,
        ShortageDecision,
        StockArrived,
        TransferArrivalInput,
        WarehouseEvent,
        WithdrawInput,
    )
    from models.settings import Policy
    from models.types import Finding, TimelineEvent

# Changes of the workflow's steps, guarded so that workflows started before them replay
# (tests/test_replay_histories.py). Drop a guard once no workflow older than it runs.
PATCH_CHECK_RESERVES = "check-reserves-when-clear"  # 2026-11-29: check_order reserves a clean order
PATCH_RELEASE_WRITES_STATE = "release-writes-state"  # 2026-11-29: release_order records the release
PATCH_PERSIST_WHEN_PAUSED = "persist-when-paused"  # 2026-11-29: no state write beside a woken flow
PATCH_WAREHOUSE_WITH_STATE = "warehouse-events-with-state"  # 2026-11-29: picked/packed/shipped ride the state write
# 2026-11-30: a workflow started from here on decides every change above with this one
# patch, in its first activation, and upserts search attributes once per pause. A patch
# taken after a local activity is unsafe: when the server splits the workflow task
# between that activity's result and the `patched` call (a long step, a query), replay
# resolves the activity inside the earlier task, before the server's record of the patch
# is known, takes the old branch and fails on the marker (seen on the release patch).
# The first activation is always the start of the first task.
PATCH_FLOW_2026_11_30 = "order-flow-2026-11-30"

# Search attributes of SPEC §5.5 (registered on the dev server by worker.py).
SA_STAGE = SearchAttributeKey.for_keyword("OrderStage")
SA_WAITING = SearchAttributeKey.for_keyword("WaitingFor")
SA_FLAGS = SearchAttributeKey.for_keyword_list("OrderFlags")
SA_SKUS = SearchAttributeKey.for_keyword_list("OrderSkus")
SA_WAREHOUSE = SearchAttributeKey.for_keyword("Warehouse")
SA_TOTAL = SearchAttributeKey.for_float("OrderTotal")
SA_PLATFORM = SearchAttributeKey.for_keyword("Platform")
SEARCH_ATTRIBUTES = (SA_STAGE, SA_WAITING, SA_FLAGS, SA_SKUS, SA_WAREHOUSE, SA_TOTAL, SA_PLATFORM)

# Short database steps: retried quickly and for long (the database may be restarting);
# business errors are non-retryable ApplicationErrors.
RETRY_DB = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=["LedgerError", "UnknownEvent"],
)
DB_TIMEOUT = timedelta(seconds=30)

# Which stages accept which operator signals (besides the checks in `_refusal`).
_WAREHOUSE_STAGES = {Stage.RELEASED, Stage.PICKING, Stage.PACKED}
_SHORT_STAGES = {Stage.BACKORDERED, Stage.AWAITING_TRANSFER}
_PRE_ALLOCATION = {
    Stage.RECEIVED,
    Stage.CHECKING,
    Stage.AWAITING_BUYER,
    Stage.AWAITING_PAYMENT,
}

_SIGNAL_MODELS: dict[str, type[BaseModel]] = {
    SignalName.BUYER_CONFIRMED: BuyerConfirmed,
    SignalName.PAYMENT_RECEIVED: PaymentReceived,
    SignalName.SHORTAGE_DECISION: ShortageDecision,
    SignalName.RESTOCK_ARRIVED: StockArrived,
    SignalName.TRANSFER_ARRIVED: BaseModel,  # {"transfer_id": ...}; checked by hand
    SignalName.APPROVE: Approve,
    SignalName.REJECT: Reject,
    SignalName.PICKED: WarehouseEvent,
    SignalName.PACKED: WarehouseEvent,
    SignalName.SHIPPED: WarehouseEvent,
    SignalName.PICK_EXCEPTION: PickException,
    SignalName.DELIVERED: Delivered,
    SignalName.CANCEL: Cancel,
    SignalName.RESUME: Resume,
}


class _Cancelled(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Held(Exception):
    """A wait expired under policy `hold`: park the order for an operator."""


@workflow.defn(name="OrderWorkflow")
class OrderWorkflow:
    def __init__(self) -> None:
        self._order: OrderDocument | None = None
        self._policy = Policy()
        self._stage = Stage.RECEIVED
        self._waiting: WaitingFor | None = None
        self._since: datetime | None = None
        self._flags: list[str] = []
        self._findings: list[Finding] = []
        self._lines: list[LineState] = []
        self._shipments: list[ShipmentState] = []
        self._timeline: list[dict[str, Any]] = []
        self._persisted = 0
        self._dirty = False
        self._closing = False
        self._persisting = False
        self._steps = 0  # database steps of the main flow in flight (the persister waits them out)
        self._deliveries: list[Any] = []
        self._undo: list[tuple[str, Callable[[], Any]]] = []
        self._ops = 0
        # signal inboxes
        self._cancel: Cancel | None = None
        self._confirmations: list[BuyerConfirmed] = []
        self._payment: PaymentReceived | None = None
        self._decision: ShortagePolicy | None = None
        self._decision_new = False
        self._transfers_arrived: list[str] = []
        self._pending_transfers: dict[str, dict[str, Any]] = {}
        self._approval: Approve | Reject | None = None
        self._warehouse: list[tuple[str, WarehouseEvent | PickException]] = []
        self._delivered = False
        self._resume: Resume | None = None
        self._held_from: Stage | None = None
        self._buyer_confirmed = False
        self._refund_amount: Decimal | None = None
        self._refund_status: str | None = None
        self._cancel_reason: str | None = None
        self._reviewed = False
        # The order is recorded by the first check (same transaction); until then, when it was submitted.
        self._unrecorded_since: datetime | None = None
        # The price review check_order computed with its findings, for the document it checked;
        # used by the reviewing stage while that document is unchanged and nothing was awaited since.
        self._prereview: tuple[OrderDocument, Any] | None = None
        self._contact_no: int | None = None  # the latest contact, which a confirmation answers
        # The reservation check_order made when it cleared the order; `_allocate` takes it.
        self._preallocated: Any = None
        # Warehouse events applied to the state and not yet written, with what each should consume.
        self._unwritten: list[tuple[ShipmentUpdateInput, Any]] = []
        # What the main flow waits for while it is paused in `_wait_raw` (None: it is not).
        self._paused_on: Callable[[], bool] | None = None
        # Started on today's code (PATCH_FLOW_2026_11_30): every change is in, no guard is asked
        # again, and search attributes changed by a burst of steps are upserted once, when the
        # burst pauses (`_publish_due`).
        self._current_flow = False
        self._attributes_due = False

    # ================================================================== run

    @workflow.run
    async def run(self, inp: OrderInput) -> OrderOutcome:
        self._current_flow = workflow.patched(PATCH_FLOW_2026_11_30)
        self._order = inp.order
        self._policy = inp.policy
        self._since = workflow.now()
        self._lines = [
            LineState(line_no=i, sku=line.sku, qty=line.qty, unit_price=line.unit_price)
            for i, line in enumerate(inp.order.lines, start=1)
        ]
        persister = asyncio.create_task(self._persist_loop())
        # Registered before any step they undo. Both read what the database holds for
        # the order and are idempotent, so they also undo work of a workflow task that
        # ran its local activities and then failed before the workflow could learn of it.
        self._undo_push("release_stock", self._release_all_stock)
        self._undo_push("withdraw_pick_lists", self._withdraw_pick_lists)
        self._unrecorded_since = inp.submitted_at  # recorded by the first check, in its transaction
        self._log("received", platform=inp.order.platform, lines=len(self._lines))
        self._set_stage(Stage.RECEIVED)
        reason: str | None = None
        try:
            await self._process()
        except _Cancelled as cancelled:
            reason = cancelled.reason
            await self._compensate(reason)
        self._closing = True
        self._dirty = True
        self._publish_due()
        await workflow.wait_condition(lambda: persister.done())
        await self._drain_deliveries()
        self._publish_due()
        return OrderOutcome(order_id=inp.order.order_id, stage=str(self._stage), reason=reason)

    async def _process(self) -> None:
        await self._intake()
        await self._fulfil()
        if self._policy.pick.complete_on == "delivered":
            self._set_stage(Stage.SHIPPED, None)
            # No delivery scan within 60 days: the parcel is taken as delivered.
            await self._wait_raw(lambda: self._delivered, timedelta(days=60))
        self._set_stage(Stage.COMPLETED, None)

    # ============================================================ intake

    async def _intake(self) -> None:
        """Check; ask the buyer until clean; wait for the money."""
        assert self._order is not None
        rounds = 0
        while True:
            self._set_stage(Stage.CHECKING)
            findings = await self._check()
            if clears_intake(findings) and not self._must_confirm():
                return  # the rule check_order reserved by, when it was asked to
            rejects = [f for f in findings if f.cls == FindingClass.REJECT]
            if rejects:
                raise _Cancelled("cannot be processed: " + ", ".join(f"{f.code} ({f.field})" for f in rejects))
            buyer = [f for f in findings if f.cls == FindingClass.BUYER]
            if buyer or self._must_confirm():
                rounds += 1
                if rounds > self._policy.confirmation.max_rounds:
                    rounds = 0
                    await self._expire("buyer", self._policy.confirmation.timeout_action, Flag.BUYER_TIMEOUT)
                    if not self._confirmations:
                        continue
                await self._ask_buyer(buyer)
                continue
            await self._await_payment()  # what is left to stop it: the money (unpaid)

    async def _check(self) -> list[Finding]:
        assert self._order is not None
        checked = self._order
        # A check that clears the order also reserves its stock, in the same step: a clean
        # order then costs one database step less. Not when the buyer must confirm anyway.
        reserve = None
        if self._uses(PATCH_CHECK_RESERVES) and not self._must_confirm():
            reserve = self._allocate_input()  # undone by release_stock, registered in `run`
        result = await self._db(
            OrderActivities.check_order,
            CheckOrderInput(
                order=checked,
                policy=self._policy,
                submitted_at=self._unrecorded_since,
                buyer_confirmed=self._buyer_confirmed,
                reserve=reserve,
            ),
        )
        self._unrecorded_since = None
        self._prereview = (checked, result.review)
        self._preallocated = result.allocation
        findings = standing_findings(result.findings, buyer_confirmed=self._buyer_confirmed)
        self._findings = findings
        codes = [str(f.code) for f in findings]
        self._flags = sorted(set(self._flags) - set(FindingCode) | set(codes))
        self._log("checked", findings=[f.public() for f in findings])
        self._touch()
        return findings

    def _uses(self, patch_id: str) -> bool:
        """A change guarded by `patch_id`: always in for a workflow started on today's code;
        for one started earlier, decided where that change was first guarded (its history
        has the marker there, or not at all)."""
        return self._current_flow or workflow.patched(patch_id)

    def _must_confirm(self) -> bool:
        """The policy asks every buyer to confirm, and this one has not yet."""
        return self._policy.confirmation.mode == "always" and not self._buyer_confirmed

    async def _ask_buyer(self, findings: list[Finding]) -> None:
        """Contact the buyer, remind on schedule, and on the deadline apply the timeout policy."""
        assert self._order is not None
        policy = self._policy.confirmation
        channel = policy.channel
        self._set_stage(Stage.AWAITING_BUYER, WaitingFor.BUYER)
        reminder = 0
        deadline = workflow.now() + policy.timeout
        while not self._confirmations:
            await self._contact(findings, channel, reminder)
            until = deadline
            if reminder < policy.max_reminders:
                until = min(deadline, workflow.now() + policy.remind_every)
            if await self._wait_raw(lambda: bool(self._confirmations), until - workflow.now()):
                break
            if workflow.now() >= deadline:
                await self._expire("buyer", policy.timeout_action, Flag.BUYER_TIMEOUT)
                deadline = workflow.now() + policy.timeout
                reminder = 0
                continue
            reminder += 1
        self._apply_confirmations()

    async def _contact(self, findings: list[Finding], channel: Channel, reminder: int) -> None:
        assert self._order is not None
        result = await self._db(
            OrderActivities.contact_buyer,
            ContactInput(
                order=self._order,
                findings=findings,
                channel=channel,
                reminder=reminder,
                event_id=self._key(f"contact-{reminder}"),
            ),
        )
        self._contact_no = result.contact_no
        self._log("contact", channel=str(channel), reminder=reminder, asks_for=[f.field for f in findings])
        self._deliver(result.event_ids)

    def _apply_confirmations(self) -> None:
        assert self._order is not None
        doc = self._order.model_dump(mode="json")
        changes: list[dict[str, Any]] = []
        for confirmation in self._confirmations:
            data = confirmation.model_dump(exclude_none=True)
            for field, path in (
                ("phone", ("buyer", "phone")),
                ("name", ("buyer", "name")),
                ("province", ("address", "province")),
                ("city", ("address", "city")),
                ("district", ("address", "district")),
                ("detail", ("address", "detail")),
                ("postal_code", ("address", "postal_code")),
            ):
                if field in data and doc[path[0]].get(path[1]) != data[field]:
                    changes.append({"field": ".".join(path), "old": doc[path[0]].get(path[1]), "new": data[field]})
                    doc[path[0]][path[1]] = data[field]
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
            self._log(
                "contact_outcome",
                note=confirmation.note,
                channel=str(confirmation.channel or ""),
                contact_no=self._contact_no,
            )
        for change in changes:
            self._log("correction", **_mask_change(change))
        self._order = OrderDocument.model_validate(doc)
        self._confirmations.clear()
        self._buyer_confirmed = True
        self._touch()

    async def _await_payment(self) -> None:
        assert self._order is not None
        self._set_stage(Stage.AWAITING_PAYMENT, WaitingFor.PAYMENT)
        window = self._policy.payment.unpaid_window
        while self._payment is None:
            got = await self._wait_raw(lambda: self._payment is not None, window)
            if not got:
                self._flag(Flag.PAYMENT_TIMEOUT)
                raise _Cancelled(f"unpaid after {window}")
        payment = self._payment
        doc = self._order.model_dump(mode="json")
        doc["payment"] = {
            **doc.get("payment", {}),
            "status": "paid",
            "amount": str(payment.amount),
            "transaction_id": payment.transaction_id,
            "method": payment.method or doc.get("payment", {}).get("method"),
        }
        self._order = OrderDocument.model_validate(doc)
        self._payment = None
        self._log("payment", amount=str(payment.amount), transaction_id=payment.transaction_id)

    # ========================================================== fulfilment

    async def _fulfil(self) -> None:
        """Allocate, wait for stock if needed, review once, release, track; loop while lines reopen."""
        while True:
            self._raise_if_cancelled()  # a cancel that came in during the last step: stop here
            if any(line.open_qty > 0 for line in self._lines):
                await self._allocate()
            if self._must_wait_for_stock():
                await self._wait_for_stock()
                continue
            if not self._reviewed:
                await self._review()
            self._raise_if_cancelled()  # never send a pick list for an order already cancelled
            released = await self._release()
            await self._track_warehouse()
            if any(line.open_qty > 0 or line.backordered > 0 for line in self._lines):
                continue
            if released and any(line.reserved > 0 for line in self._lines):
                continue  # stock arrived (restock) while the warehouse worked: release it too
            return

    def _shortage_policy(self) -> ShortagePolicy:
        assert self._order is not None
        return self._decision or self._order.shortage_policy or self._policy.shortage.default

    def _must_wait_for_stock(self) -> bool:
        waiting = any(line.backordered > 0 for line in self._lines)
        if not waiting:
            return False
        ready = any(line.reserved > 0 for line in self._lines)
        return not (self._shortage_policy() == ShortagePolicy.PARTIAL and ready)

    def _allocate_input(self) -> AllocateInput:
        """What allocation is asked for the open units now (takes the next idempotency key)."""
        assert self._order is not None
        policy = self._shortage_policy()
        rest = self._policy.shortage.partial_remainder
        return AllocateInput(
            order_id=self._order.order_id,
            op_key=self._key("allocate"),
            needs=[
                {"line_no": line.line_no, "sku": line.sku, "qty": line.open_qty}
                for line in self._lines
                if line.open_qty > 0
            ],
            buyer_province=self._order.address.province,
            order_time=self._order.created_at or workflow.now(),
            policy=policy,
            split_allowed=self._policy.shortage.split_allowed,
            rule=self._policy.shortage.warehouse_rule,
            backorder_rest=policy != ShortagePolicy.PARTIAL or rest == "backorder",
        )

    async def _allocate(self) -> None:
        assert self._order is not None
        self._set_stage(Stage.ALLOCATING)
        policy = self._shortage_policy()
        rest = self._policy.shortage.partial_remainder
        self._undo_push("release_stock", self._release_all_stock)
        if self._preallocated is not None:
            # reserved by the check that cleared the order, nothing awaited since
            result, self._preallocated = self._preallocated, None
        else:
            result = await self._db(InventoryActivities.allocate, self._allocate_input())
        by_line = {line.line_no: line for line in self._lines}
        for line_no, _wh, qty in result.reserved:
            by_line[line_no].reserved += qty
        for line_no, _wh, qty in result.backordered:
            by_line[line_no].backordered += qty
        for transfer in result.transfers:
            by_line[transfer["line_no"]].backordered += transfer["qty"]
            self._pending_transfers[transfer["id"]] = transfer
            self._log("transfer_requested", **transfer)
            events = await self._db(
                OrderActivities.emit_event,
                EmitInput(
                    order_id=self._order.order_id,
                    type="transfer_request",
                    payload=transfer,
                    event_id=self._key(f"transfer-{transfer['id']}"),
                ),
            )
            self._deliver(events)
        shortfalls = [s.model_dump() for s in result.plan.shortfalls]
        self._log(
            "allocated",
            reserved=[list(r) for r in result.reserved],
            shortfalls=shortfalls,
            policy=str(policy),
        )
        if result.plan.shortfalls:
            if policy == ShortagePolicy.CANCEL:
                raise _Cancelled("out of stock: " + ", ".join(f"{s['sku']} x{s['qty']}" for s in shortfalls))
            if policy == ShortagePolicy.PARTIAL:
                self._flag(Flag.PARTIAL_SHIPMENT)
                if rest == "refund":
                    await self._cancel_open_units("partial shipment: the rest is refunded")
                if not any(line.reserved > 0 for line in self._lines):
                    raise _Cancelled("out of stock: nothing could be reserved for a partial shipment")
        self._touch()

    async def _wait_for_stock(self) -> None:
        """backordered / awaiting_transfer until everything is reserved, a decision, or the deadline."""
        transfers = bool(self._pending_transfers)
        stage = Stage.AWAITING_TRANSFER if transfers else Stage.BACKORDERED
        waiting = WaitingFor.TRANSFER if transfers else WaitingFor.STOCK
        self._set_stage(stage, waiting)
        deadline = (
            self._policy.shortage.transfer_deadline if transfers else self._policy.shortage.backorder_deadline
        )
        started = workflow.now()
        while any(line.backordered > 0 for line in self._lines):
            remaining = deadline - (workflow.now() - started)
            got = remaining > timedelta(0) and await self._wait_raw(
                lambda: bool(self._transfers_arrived) or self._decision_new or self._stock_done(),
                remaining,
            )
            if not got:
                flag = Flag.TRANSFER_TIMEOUT if transfers else Flag.BACKORDER_TIMEOUT
                await self._expire("stock", self._policy.shortage.timeout_action, flag)
                started = workflow.now()
                continue
            while self._transfers_arrived:
                await self._receive_transfer(self._transfers_arrived.pop(0))
            if self._decision_new:
                self._decision_new = False
                await self._apply_decision()
                return
            self._touch()

    def _stock_done(self) -> bool:
        return not any(line.backordered > 0 for line in self._lines)

    async def _apply_decision(self) -> None:
        decision = self._shortage_policy()
        self._log("shortage_decision_applied", policy=str(decision))
        if decision == ShortagePolicy.CANCEL:
            raise _Cancelled("shortage: cancelled by the operator")
        if decision in (ShortagePolicy.TRANSFER, ShortagePolicy.PARTIAL):
            if decision == ShortagePolicy.PARTIAL and self._policy.shortage.partial_remainder == "backorder":
                if not any(line.reserved > 0 for line in self._lines):
                    raise _Cancelled("shortage: nothing in stock to ship partially")
                self._flag(Flag.PARTIAL_SHIPMENT)
                return
            # give the queued units back to allocation under the new policy
            await self._release_backorders()
            if decision == ShortagePolicy.PARTIAL:
                await self._cancel_open_units("partial shipment: the rest is refunded")
                self._flag(Flag.PARTIAL_SHIPMENT)
                if not any(line.reserved > 0 for line in self._lines):
                    raise _Cancelled("shortage: nothing in stock to ship partially")

    async def _release_backorders(self) -> None:
        assert self._order is not None
        waiting_lines = [line.line_no for line in self._lines if line.backordered > 0]
        await self._db(
            InventoryActivities.release_stock,
            ReleaseStockInput(
                order_id=self._order.order_id,
                op_key=self._key("unqueue"),
                line_nos=waiting_lines,
                include_reserved=False,
            ),
        )
        self._pending_transfers.clear()
        for line in self._lines:
            line.backordered = 0

    async def _receive_transfer(self, transfer_id: str) -> None:
        try:
            arrived = await self._db(
                InventoryActivities.transfer_arrival,
                TransferArrivalInput(transfer_id=transfer_id, op_key=self._key(f"arrive-{transfer_id}")),
            )
        except ActivityError as err:
            self._log("signal_rejected", signal="transfer_arrived", reason=_cause(err))
            return
        self._pending_transfers.pop(transfer_id, None)
        self._move_backordered_to_reserved(arrived["line_no"], arrived["qty"])
        self._log("transfer_arrived", transfer_id=transfer_id, qty=arrived["qty"])

    def _move_backordered_to_reserved(self, line_no: int, qty: int) -> None:
        for line in self._lines:
            if line.line_no == line_no:
                moved = min(qty, line.backordered)
                line.backordered -= moved
                line.reserved += moved
        self._touch()

    async def _cancel_open_units(self, reason: str) -> None:
        """Units that will not ship (refund remainder): cancelled on the line, their paid share refunded now.

        The share is pro rata of what was paid (discounts and fees included), the same
        rule as `refund_for` on cancel, so partial refunds and a later cancel add up to the cent.
        """
        for line in self._lines:
            line.cancelled += max(line.open_qty, 0)
        paid = self._paid_amount()
        ordered = sum((Decimal(li.qty) * (li.unit_price or Decimal(0)) for li in self._lines), Decimal(0))
        if paid <= 0 or ordered <= 0:
            return
        kept = sum((Decimal(li.qty - li.cancelled) * (li.unit_price or Decimal(0)) for li in self._lines), Decimal(0))
        owed = paid - (paid * kept / ordered).quantize(Decimal("0.01"))
        await self._refund(owed - (self._refund_amount or Decimal(0)), reason)

    async def _review(self) -> None:
        assert self._order is not None
        self._set_stage(Stage.REVIEWING)
        if self._prereview is not None and self._prereview[0] is self._order and self._prereview[1] is not None:
            review = self._prereview[1]  # computed by check_order on this very document, no wait since
        else:
            review = await self._db(OrderActivities.review_order, ReviewInput(order=self._order, policy=self._policy))
        self._prereview = None
        known = {(f.code, f.field) for f in self._findings}
        for finding in review.findings:
            if (finding.code, finding.field) not in known:
                self._findings.append(finding)
                self._flag(str(finding.code))
        self._log("reviewed", totals=review.totals.model_dump(mode="json"),
                  findings=[f.public() for f in review.findings])
        reasons = [f"{f.code} ({f.field})" for f in self._findings if f.cls in (FindingClass.REVIEW, FindingClass.PAYMENT)]
        if review.totals.total > self._policy.approval.threshold:
            reasons.append(f"total {review.totals.total} over the approval threshold {self._policy.approval.threshold}")
        if not self._payment_settled():
            reasons.append("payment not settled")
        if reasons:
            self._flag(Flag.NEEDS_APPROVAL)
            await self._await_approval(reasons)
        self._reviewed = True

    async def _await_approval(self, reasons: list[str]) -> None:
        assert self._order is not None
        self._set_stage(Stage.AWAITING_APPROVAL, WaitingFor.APPROVAL)
        self._log("approval_requested", reasons=reasons)
        escalations = 0
        while self._approval is None:
            got = await self._wait_raw(lambda: self._approval is not None, self._policy.approval.escalate_after)
            if not got:
                # An approval never happens by itself: escalate and keep waiting.
                escalations += 1
                self._flag(Flag.APPROVAL_OVERDUE)
                await self._emit("approval_escalation", {"reasons": reasons, "escalation": escalations},
                                 f"approval-escalation-{escalations}")
        decision = self._approval
        if isinstance(decision, Reject):
            raise _Cancelled(f"rejected in review: {decision.reason}")
        self._drop_flag(Flag.APPROVAL_OVERDUE)
        self._drop_flag(Flag.NEEDS_APPROVAL)
        self._log("approved", note=decision.note, by=decision.by)

    async def _release(self) -> int:
        """Pick lists for the held stock not yet released; returns how many shipments were written."""
        assert self._order is not None
        if not any(line.reserved > 0 for line in self._lines):
            return 0
        if not self._payment_settled():
            raise _Cancelled("payment not settled at release")
        remarks = [r for r in [self._order.remarks] if r]
        self._undo_push("withdraw_pick_lists", self._withdraw_pick_lists)
        inp = ReleaseInput(
            order_id=self._order.order_id,
            op_key=self._key("release"),
            remarks=remarks,
            first_shipment_no=len(self._shipments) + 1,
        )
        if not self._uses(PATCH_RELEASE_WRITES_STATE):
            result = await self._db(OrderActivities.release_order, inp)
            self._released(result)
            self._log("released", shipments=[s["id"] for s in result.shipments])
            self._set_stage(Stage.RELEASED, WaitingFor.WAREHOUSE)
            return len(result.shipments)
        # The order is released the moment its pick lists are written: both go into one
        # transaction, so the pause that follows (waiting for the warehouse) needs no
        # write of its own. The step fills in the ids of the pick lists it made.
        if self._persisting:
            await workflow.wait_condition(lambda: not self._persisting)  # no older write lands after this one
        if self._unwritten:
            await self._write_warehouse_events()  # their results are delivered and checked there
        released = self._log("released", shipments=[])
        self._set_stage(Stage.RELEASED, WaitingFor.WAREHOUSE)
        inp.state, upto = self._state_write()
        inp.released_entry_seq = released["seq"]
        try:
            result = await self._db(OrderActivities.release_order, inp)
        except BaseException:
            self._touch()  # not written: the persister writes it
            raise
        released["data"]["shipments"] = [s["id"] for s in result.shipments]
        self._persisted = max(self._persisted, upto)
        self._released(result)
        return len(result.shipments)

    def _released(self, result: Any) -> None:
        for data in result.shipments:
            self._shipments.append(ShipmentState.model_validate(data))
        self._deliver(result.event_ids)

    async def _track_warehouse(self) -> None:
        """Warehouse events per shipment, with the pick SLA: reminder, escalation, `pick_overdue`."""
        open_shipments = lambda: [s for s in self._shipments if s.status not in ("shipped", "cancelled")]  # noqa: E731
        released_at = workflow.now()
        reminded = escalated = False
        pick = self._policy.pick
        while open_shipments():
            elapsed = workflow.now() - released_at
            if not reminded:
                timer = pick.remind_after - elapsed
            elif not escalated:
                timer = pick.escalate_after - elapsed
            else:
                timer = timedelta(days=1)
            got = await self._wait_raw(lambda: bool(self._warehouse), max(timer, timedelta(seconds=1)))
            if not got:
                if not reminded:
                    reminded = True
                    self._flag(Flag.PICK_OVERDUE)
                    await self._emit("pick_reminder", {"shipments": [s.id for s in open_shipments()]}, "pick-reminder")
                elif not escalated:
                    escalated = True
                    self._flag(Flag.PICK_ESCALATED)
                    await self._emit("pick_escalation", {"shipments": [s.id for s in open_shipments()]},
                                     "pick-escalation")
                continue
            while self._warehouse:
                # Picked, packed, shipped often come together: one database step for the run of them.
                run: list[tuple[str, WarehouseEvent]] = []
                while self._warehouse and not isinstance(self._warehouse[0][1], PickException):
                    kind, plain = self._warehouse.pop(0)
                    assert isinstance(plain, WarehouseEvent)
                    run.append((kind, plain))
                if run:
                    await self._warehouse_events(run)
                else:
                    kind, event = self._warehouse.pop(0)
                    await self._warehouse_event(kind, event)
                if any(line.open_qty > 0 for line in self._lines):
                    return  # a pick exception sent units back to allocation
        self._drop_flag(Flag.PICK_OVERDUE)
        self._drop_flag(Flag.PICK_ESCALATED)

    async def _warehouse_event(self, kind: str, event: WarehouseEvent | PickException) -> None:
        assert self._order is not None
        shipment = self._shipment_for(event.shipment)
        if shipment is None:
            return
        if isinstance(event, PickException):
            result = await self._db(
                InventoryActivities.pick_exception,
                PickExceptionInput(
                    order_id=self._order.order_id,
                    shipment_id=shipment.id,
                    sku=event.sku,
                    qty=event.qty,
                    reason=event.reason,
                    op_key=self._key("pick-exception"),
                ),
            )
            for line_no, qty in result.lines:
                for line in self._lines:
                    if line.line_no == line_no:
                        line.reserved -= qty
                for item in shipment.lines:
                    if item["line_no"] == line_no:
                        item["qty"] -= qty
            shipment.lines = [item for item in shipment.lines if item["qty"] > 0]
            if not shipment.lines:
                await self._update_shipment(shipment, "cancelled")
            self._log("pick_exception", shipment=shipment.id, sku=event.sku, qty=event.qty, reason=event.reason)
            self._touch()
            return
        await self._warehouse_events([(kind, event)])

    async def _warehouse_events(self, run: list[tuple[str, WarehouseEvent]]) -> None:
        """Picked / packed / shipped events in a row: written in one step, then applied one by one."""
        assert self._order is not None
        todo: list[tuple[str, WarehouseEvent, ShipmentState, ShipmentUpdateInput]] = []
        for kind, event in run:
            shipment = self._shipment_for(event.shipment)
            if shipment is not None:
                todo.append((kind, event, shipment, self._shipment_input(shipment, kind, event)))
        if not todo:
            return
        if self._uses(PATCH_WAREHOUSE_WITH_STATE):
            # Applied now, written with the state they lead to (the next write: the pause
            # after them, or the order's last), in one transaction: what a shipment holds
            # is what it ships. The write reports what it consumed; `_written` compares.
            for kind, event, shipment, inp in todo:
                expected = ShipmentUpdateResult(shipped_lines=_shipment_lines(shipment) if kind == "shipped" else [])
                self._unwritten.append((inp, expected))
                self._shipment_updated(shipment, kind, event, expected)
                self._apply_shipment_result(expected)
            return
        results = await self._db(
            OrderActivities.update_shipments, ShipmentUpdatesInput(updates=[item[3] for item in todo])
        )
        for (kind, event, shipment, _inp), result in zip(todo, results, strict=True):
            self._shipment_updated(shipment, kind, event, result)
            self._apply_shipment_result(result)

    def _apply_shipment_result(self, result: Any) -> None:
        for line_no, qty in result.shipped_lines:
            for line in self._lines:
                if line.line_no == line_no:
                    line.reserved -= qty
                    line.shipped += qty
        statuses = {s.status for s in self._shipments if s.status != "cancelled"}
        if statuses == {"shipped"}:
            if not any(line.backordered > 0 or line.open_qty > 0 or line.reserved > 0 for line in self._lines):
                self._set_stage(Stage.SHIPPED, None)
        elif statuses <= {"packed", "shipped"}:
            self._set_stage(Stage.PACKED, WaitingFor.WAREHOUSE)
        elif statuses <= {"picked", "packed", "shipped"}:
            self._set_stage(Stage.PICKING, WaitingFor.WAREHOUSE)
        self._touch()

    def _shipment_input(self, shipment: ShipmentState, kind: str, event: WarehouseEvent | None) -> ShipmentUpdateInput:
        assert self._order is not None
        return ShipmentUpdateInput(
            order_id=self._order.order_id,
            shipment_id=shipment.id,
            kind=kind,
            op_key=self._key(f"{kind}-{shipment.shipment_no}"),
            carrier=event.carrier if event else None,
            tracking_no=event.tracking_no if event else None,
            parcels=event.parcels if event else None,
            weight_g=event.weight_g if event else None,
        )

    async def _update_shipment(self, shipment: ShipmentState, kind: str, event: WarehouseEvent | None = None) -> Any:
        result = await self._db(OrderActivities.update_shipment, self._shipment_input(shipment, kind, event))
        self._shipment_updated(shipment, kind, event, result)
        return result

    def _shipment_updated(self, shipment: ShipmentState, kind: str, event: WarehouseEvent | None, result: Any) -> None:
        shipment.status = kind
        if event is not None and kind == "shipped":
            shipment.carrier, shipment.tracking_no = event.carrier, event.tracking_no
        self._log(kind, shipment=shipment.id, carrier=shipment.carrier, tracking_no=shipment.tracking_no)
        self._deliver(result.event_ids)

    def _shipment_for(self, number: int | None) -> ShipmentState | None:
        candidates = [s for s in self._shipments if s.status not in ("shipped", "cancelled")]
        if number is not None:
            candidates = [s for s in self._shipments if s.shipment_no == number]
        return candidates[0] if candidates else None

    # ========================================================= cancellation

    async def _compensate(self, reason: str) -> None:
        """Undo in reverse whatever was done, refund what was paid and not shipped, tell the buyer."""
        assert self._order is not None
        self._cancel_reason = reason
        self._log("cancelling", reason=reason, undo=[name for name, _ in reversed(self._undo)])
        done: set[str] = set()
        for name, step in reversed(self._undo):
            if name in done:
                continue
            done.add(name)
            result = step()
            if asyncio.iscoroutine(result):
                await result
        for line in self._lines:
            left = line.qty - line.shipped - line.cancelled
            line.cancelled += left
            line.reserved = line.backordered = 0
        # refund_for is the whole refund the order owes; what was refunded earlier
        # (a partial remainder) is part of it, not on top of it.
        owed = refund_for(self._lines, paid=self._paid_amount()) - (self._refund_amount or Decimal(0))
        if owed > 0:
            await self._refund(owed, reason)
        await self._emit("buyer_cancel_notice", {"reason": reason}, "cancel-notice")
        self._set_stage(Stage.CANCELLED, None)

    async def _release_all_stock(self) -> None:
        assert self._order is not None
        result = await self._db(
            InventoryActivities.release_stock,
            ReleaseStockInput(order_id=self._order.order_id, op_key=self._key("release-all")),
        )
        await self._signal_served(result.served)

    async def _withdraw_pick_lists(self) -> None:
        """Every pick list of the order that has not shipped is withdrawn, with an event to the warehouse."""
        assert self._order is not None
        result = await self._db(
            OrderActivities.withdraw_shipments,
            WithdrawInput(order_id=self._order.order_id, op_key=self._key("withdraw")),
        )
        for shipment in self._shipments:
            if shipment.id in result.shipment_ids:
                shipment.status = "cancelled"
                self._log("cancelled", shipment=shipment.id)
        self._deliver(result.event_ids)

    async def _signal_served(self, served: list[dict[str, Any]]) -> None:
        for item in served:
            if item["order_id"] == (self._order.order_id if self._order else None):
                continue
            handle = workflow.get_external_workflow_handle(f"order-{item['order_id']}")
            self._publish_due()  # the signal's round trip ends this workflow task
            try:
                await handle.signal(SignalName.RESTOCK_ARRIVED, item)
            except Exception as exc:  # the other order may have ended meanwhile
                self._log("signal_failed", target=item["order_id"], error=str(exc))

    async def _refund(self, amount: Decimal, reason: str) -> None:
        assert self._order is not None
        amount = amount.quantize(Decimal("0.01"))
        if amount <= 0:
            return
        events = await self._db(
            OrderActivities.request_refund,
            RefundInput(
                order_id=self._order.order_id,
                amount=amount,
                reason=reason,
                refund_id=self._key("refund"),
            ),
        )
        self._refund_amount = (self._refund_amount or Decimal(0)) + amount
        self._refund_status = "requested"
        self._log("refund", amount=str(amount), reason=reason)
        self._deliver(events)

    def _paid_amount(self) -> Decimal:
        assert self._order is not None
        payment = self._order.payment
        if payment.status == PaymentStatus.PAID:
            return payment.amount or Decimal(0)
        return Decimal(0)

    def _payment_settled(self) -> bool:
        assert self._order is not None
        status = self._order.payment.status
        return status == PaymentStatus.PAID or (status == PaymentStatus.COD and self._buyer_confirmed_cod())

    def _buyer_confirmed_cod(self) -> bool:
        return self._buyer_confirmed or self._policy.confirmation.mode == "on_findings"

    # ================================================================ waits

    async def _wait_raw(self, condition: Callable[[], bool], timeout: timedelta) -> bool:
        """Wait for `condition` up to `timeout`; a cancel interrupts any wait."""
        self._prereview = None  # the catalog may change while the order waits: review afresh
        wake = lambda: condition() or self._cancel is not None  # noqa: E731
        self._paused_on = wake
        self._publish_due()
        try:
            await workflow.wait_condition(wake, timeout=timeout)
        except TimeoutError:
            self._raise_if_cancelled()
            return False
        finally:
            self._paused_on = None
        self._raise_if_cancelled()
        return True

    async def _expire(self, what: str, action: TimeoutAction, flag: Flag) -> None:
        """A wait ran out: cancel, or hold the order until an operator resumes or cancels it."""
        self._flag(flag)
        self._log("timeout", waiting_for=what, action=str(action))
        if action == TimeoutAction.CANCEL:
            raise _Cancelled(f"no {what} before the deadline ({flag})")
        self._held_from = self._stage
        waiting = self._waiting
        self._set_stage(Stage.ON_HOLD, WaitingFor.OPERATOR)
        await self._emit("on_hold", {"held_from": str(self._held_from), "reason": str(flag)}, f"hold-{self._ops}")
        await self._wait_raw(
            lambda: self._resume is not None or bool(self._confirmations) or self._decision_new
            or bool(self._transfers_arrived) or self._stock_done_if(what),
            timedelta(days=365),
        )
        self._resume = None
        assert self._held_from is not None
        self._set_stage(self._held_from, waiting)
        self._held_from = None
        self._drop_flag(flag)

    def _stock_done_if(self, what: str) -> bool:
        return what == "stock" and self._stock_done()

    def _raise_if_cancelled(self) -> None:
        if self._cancel is not None:
            raise _Cancelled(self._cancel.reason)

    # ============================================================== signals

    @workflow.signal(dynamic=True)
    def on_signal(self, name: str, args: Sequence[RawValue]) -> None:
        """Every signal lands here: validated, checked against the stage, recorded either way."""
        try:
            payload = workflow.payload_converter().from_payload(args[0].payload) if args else {}
        except Exception as exc:  # not JSON at all: record it, never fail the workflow
            self._log("signal_rejected", signal=name, reason=f"payload could not be read: {exc}")
            return
        refusal, parsed = self._validate(name, {} if payload is None else payload)
        if refusal:
            self._log("signal_rejected", signal=name, reason=refusal)
            return
        self._accept(name, parsed)

    @workflow.query(name="refusal")
    def refusal(self, name: str, payload: dict[str, Any]) -> str | None:
        """Why this signal would not apply now (None: it would). The CLI asks before sending."""
        return self._validate(name, payload or {})[0]

    @workflow.query(name="state")
    def state(self) -> OrderSnapshot:
        return self._snapshot()

    def _validate(self, name: str, payload: Any) -> tuple[str | None, Any]:
        if name not in _SIGNAL_MODELS:
            return f"unknown signal {name!r}", None
        if not isinstance(payload, dict):
            return "payload must be a JSON object", None
        if name == SignalName.TRANSFER_ARRIVED:
            transfer_id = payload.get("transfer_id")
            if not isinstance(transfer_id, str) or not transfer_id:
                return "transfer_id: a transfer id is required", None
            parsed: Any = transfer_id
        else:
            try:
                parsed = _SIGNAL_MODELS[name].model_validate(payload)
            except ValidationError as exc:
                return "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'payload'}: {e['msg']}" for e in exc.errors()
                ), None
        return self._refusal(name, parsed), parsed

    def _refusal(self, name: str, parsed: Any) -> str | None:
        stage = self._stage
        effective = self._held_from if stage == Stage.ON_HOLD and self._held_from else stage
        where = f"the order is {stage}" + (f" (held from {self._held_from})" if self._held_from else "")
        if stage.is_final:
            return f"the order is {stage}"
        if name == SignalName.CANCEL:
            # Before `shipped` a cancel takes back whatever has not left yet (a partly
            # shipped order included); once every unit has left there is nothing to take back.
            # (No lines yet: the signal came with the start, before `run` read the order.)
            left = [line.qty - line.shipped - line.cancelled for line in self._lines]
            if not stage.can_cancel or (left and not any(n > 0 for n in left)):
                return f"{where}: a shipped order cannot be cancelled"
            return None
        if name == SignalName.BUYER_CONFIRMED:
            return None if effective == Stage.AWAITING_BUYER else f"{where}, not waiting for the buyer"
        if name == SignalName.PAYMENT_RECEIVED:
            if self._order and self._order.payment.status == PaymentStatus.PAID:
                return "the order is already paid"
            return None if effective in _PRE_ALLOCATION else f"{where}, not waiting for payment"
        if name == SignalName.SHORTAGE_DECISION:
            return None if effective in _SHORT_STAGES else f"{where}: the order is not short of stock"
        if name == SignalName.RESTOCK_ARRIVED:
            line = next((li for li in self._lines if li.line_no == parsed.line_no), None)
            if line is None or line.backordered < parsed.qty:
                return f"line {parsed.line_no} does not wait for {parsed.qty} units"
            return None
        if name == SignalName.TRANSFER_ARRIVED:
            if parsed not in self._pending_transfers:
                return f"transfer {parsed} is not pending for this order"
            return None
        if name in (SignalName.APPROVE, SignalName.REJECT):
            if self._approval is not None:
                return "a decision was already recorded"
            return None if stage == Stage.AWAITING_APPROVAL else f"{where}, not waiting for approval"
        if name in (SignalName.PICKED, SignalName.PACKED, SignalName.SHIPPED, SignalName.PICK_EXCEPTION):
            return self._warehouse_refusal(name, parsed, where)
        if name == SignalName.DELIVERED:
            return None if stage == Stage.SHIPPED else f"{where}, not shipped yet"
        if name == SignalName.RESUME:
            return None if stage == Stage.ON_HOLD else f"{where}, not on hold"
        return f"unknown signal {name!r}"

    def _warehouse_refusal(self, name: str, parsed: Any, where: str) -> str | None:
        if self._stage not in _WAREHOUSE_STAGES and not any(
            s.status not in ("shipped", "cancelled") for s in self._shipments
        ):
            return f"{where}: nothing is released to the warehouse"
        number = parsed.shipment
        if number is None:
            open_ = [s for s in self._shipments if s.status not in ("shipped", "cancelled")]
            if len(open_) > 1:
                return f"{len(open_)} shipments are open: name one with --shipment"
            shipment = open_[0] if open_ else None
        else:
            shipment = next((s for s in self._shipments if s.shipment_no == number), None)
        if shipment is None:
            return f"no open shipment {number or ''}".strip()
        pending = [k for k, e in self._warehouse if e.shipment in (None, shipment.shipment_no)]
        status = pending[-1] if pending else shipment.status
        if status in ("shipped", "cancelled"):
            return f"shipment {shipment.shipment_no} is already {status}"
        if name == SignalName.PICKED and status != "released":
            return f"shipment {shipment.shipment_no} is {status}, not waiting to be picked"
        if name == SignalName.PACKED and status not in ("released", "picked"):
            return f"shipment {shipment.shipment_no} is already {status}"
        if name == SignalName.SHIPPED:
            if not parsed.carrier or not parsed.tracking_no:
                return "a shipped event needs a carrier and a tracking number"
            if parsed.carrier.upper() not in {c.upper() for c in self._policy.pick.carriers}:
                return f"carrier {parsed.carrier!r} is not one of {', '.join(self._policy.pick.carriers)}"
        if name == SignalName.PICK_EXCEPTION:
            held = sum(item["qty"] for item in shipment.lines if item["sku"] == parsed.sku)
            if held < parsed.qty:
                return f"shipment {shipment.shipment_no} holds {held} of {parsed.sku}, not {parsed.qty}"
        return None

    def _accept(self, name: str, parsed: Any) -> None:
        data = parsed.model_dump(mode="json", exclude_none=True) if isinstance(parsed, BaseModel) else {"id": parsed}
        if name == SignalName.BUYER_CONFIRMED:
            data = _mask_confirmation(data)
        self._log("signal", signal=name, **data)
        if name == SignalName.CANCEL:
            self._cancel = parsed
        elif name == SignalName.BUYER_CONFIRMED:
            self._confirmations.append(parsed)
        elif name == SignalName.PAYMENT_RECEIVED:
            self._payment = parsed
        elif name == SignalName.SHORTAGE_DECISION:
            self._decision = parsed.policy
            self._decision_new = True
        elif name == SignalName.RESTOCK_ARRIVED:
            self._move_backordered_to_reserved(parsed.line_no, parsed.qty)
        elif name == SignalName.TRANSFER_ARRIVED:
            self._transfers_arrived.append(parsed)
        elif name in (SignalName.APPROVE, SignalName.REJECT):
            self._approval = parsed
        elif name in (SignalName.PICKED, SignalName.PACKED, SignalName.SHIPPED, SignalName.PICK_EXCEPTION):
            if parsed.shipment is None:
                open_ = [s for s in self._shipments if s.status not in ("shipped", "cancelled")]
                parsed = parsed.model_copy(update={"shipment": open_[0].shipment_no})
            self._warehouse.append((name, parsed))
        elif name == SignalName.DELIVERED:
            self._delivered = True
        elif name == SignalName.RESUME:
            self._resume = parsed
        self._touch()

    # ============================================================ plumbing

    async def _db(self, method: Any, arg: Any) -> Any:
        """A short database step as a local activity: no server round trip, retried by RETRY_DB."""
        if self._unwritten and method is not OrderActivities.persist_state:
            await self._write_warehouse_events()  # every step sees the shipments as they are
        self._steps += 1
        try:
            return await workflow.execute_local_activity_method(
                method, arg, start_to_close_timeout=DB_TIMEOUT, retry_policy=RETRY_DB
            )
        finally:
            self._steps -= 1

    async def _emit(self, type_: str, payload: dict[str, Any], key: str) -> None:
        assert self._order is not None
        events = await self._db(
            OrderActivities.emit_event,
            EmitInput(order_id=self._order.order_id, type=type_, payload=payload, event_id=self._key(key)),
        )
        self._log("event", type=type_, **payload)
        self._deliver(events)

    def _deliver(self, event_ids: list[str]) -> None:
        """Push outbox events to the webhook (when configured) without blocking the order."""
        if not self._policy.webhook_enabled:
            return
        for event_id in event_ids:
            handle = workflow.start_activity_method(
                OutboxActivities.deliver_event,
                DeliverInput(event_id=event_id),
                start_to_close_timeout=timedelta(seconds=30),
                schedule_to_close_timeout=timedelta(days=1),
                retry_policy=RETRY_HTTP,
            )
            self._deliveries.append(handle)

    async def _drain_deliveries(self) -> None:
        for handle in self._deliveries:
            try:
                await handle
            except ActivityError as err:
                self._flag(Flag.WEBHOOK_FAILED)
                self._log("webhook_failed", error=_cause(err))
        if Flag.WEBHOOK_FAILED in self._flags:
            await self._persist_once()

    def _key(self, what: str) -> str:
        """A stable idempotency key / event id: the same on every replay and retry."""
        self._ops += 1
        assert self._order is not None
        return f"{self._order.order_id}:{self._ops}:{what}"

    def _undo_push(self, name: str, step: Callable[[], Any]) -> None:
        if all(existing != name for existing, _ in self._undo):
            self._undo.append((name, step))

    def _set_stage(self, stage: Stage, waiting: WaitingFor | None = None) -> None:
        if stage == self._stage and waiting == self._waiting and self._timeline:
            return
        previous = self._stage
        self._stage = stage
        self._waiting = waiting
        self._since = workflow.now()
        self._log("stage", stage=str(stage), previous=str(previous), waiting_for=str(waiting) if waiting else None)
        self._publish()
        self._touch()

    def _publish(self) -> None:
        """Search attributes and the one-line current details for the Web UI."""
        assert self._order is not None
        waits = f"waiting for {self._waiting} since {self._since:%Y-%m-%d %H:%M:%S} UTC" if self._waiting else "working"
        workflow.set_current_details(f"{self._stage}: {waits}" + (f" · flags: {', '.join(self._flags)}" if self._flags else ""))
        if not self._policy.search_attributes:
            return
        if self._current_flow:
            self._attributes_due = True
            return
        self._upsert_search_attributes()

    def _publish_due(self) -> None:
        """At a pause: the search attributes as they are now, once for every change since the last.

        Commands reach the server when the workflow task ends, and a burst of local
        activities runs inside one task: the upserts of its stages (checking, allocating,
        reviewing, released) would all land together anyway. One upsert is one history
        event and one visibility write instead of four.
        """
        if self._attributes_due:
            self._attributes_due = False
            self._upsert_search_attributes()

    def _upsert_search_attributes(self) -> None:
        assert self._order is not None
        warehouses = sorted({s.warehouse for s in self._shipments})
        total = float(self._order.total) if self._order.total is not None else 0.0
        workflow.upsert_search_attributes(
            [
                SA_STAGE.value_set(str(self._stage)),
                SA_WAITING.value_set(str(self._waiting) if self._waiting else "none"),
                SA_FLAGS.value_set(list(self._flags)),
                SA_SKUS.value_set(sorted({line.sku for line in self._lines})),
                SA_WAREHOUSE.value_set(",".join(warehouses) or "none"),
                SA_TOTAL.value_set(total),
                SA_PLATFORM.value_set(self._order.platform),
            ]
        )

    def _flag(self, flag: str) -> None:
        if flag not in self._flags:
            self._flags.append(flag)
            self._flags.sort()
            self._publish()
            self._touch()

    def _drop_flag(self, flag: str) -> None:
        if flag in self._flags:
            self._flags.remove(flag)
            self._publish()
            self._touch()

    def _log(self, type_: str, **data: Any) -> dict[str, Any]:
        entry = {"seq": len(self._timeline) + 1, "at": workflow.now(), "type": type_, "data": data}
        self._timeline.append(entry)
        self._touch()
        return entry

    def _touch(self) -> None:
        self._dirty = True

    def _snapshot(self) -> OrderSnapshot:
        assert self._order is not None
        return OrderSnapshot(
            order_id=self._order.order_id,
            stage=str(self._stage),
            waiting_for=str(self._waiting) if self._waiting else None,
            stage_since=self._since or workflow.now(),
            flags=list(self._flags),
            findings=list(self._findings),
            document=self._order,
            lines=[line.model_copy() for line in self._lines],
            shipments=[s.model_copy() for s in self._shipments],
            refund_amount=self._refund_amount,
            refund_status=self._refund_status,
            cancel_reason=self._cancel_reason,
            held_from=str(self._held_from) if self._held_from else None,
            decision=self._decision,
        )

    async def _persist_loop(self) -> None:
        """Write state and new timeline entries once the main flow pauses, batching what piled up.

        Not while a step runs: a clean order goes from received to released in one
        burst of steps, and one write when it settles (then after each warehouse
        event) costs far fewer local activities than a write after every change.
        """
        if self._uses(PATCH_PERSIST_WHEN_PAUSED):
            # Only while the main flow waits and nothing it waits for has come: a signal that
            # wakes it (picked, packed, shipped, ...) leads into a step, and the write waits
            # for the pause after that step instead of running beside it.
            while True:
                await workflow.wait_condition(
                    lambda: self._dirty
                    and (self._closing or (self._steps == 0 and self._paused_on is not None and not self._paused_on()))
                )
                await self._persist_once()
                if self._closing and not self._dirty:
                    return
        while True:
            await workflow.wait_condition(lambda: self._dirty and (self._steps == 0 or self._closing))
            # A signal wakes the main flow and this loop in the same pass: let the main flow
            # run first, and when it went on into a step, write once that burst settles.
            await asyncio.sleep(0)
            if self._steps and not self._closing:
                continue
            await self._persist_once()
            if self._closing and not self._dirty:
                return

    async def _persist_once(self) -> None:
        updates = self._unwritten
        state, upto = self._state_write()
        self._persisting = True
        try:
            result = await self._db(OrderActivities.persist_state, state)
        finally:
            self._persisting = False
        self._persisted = max(self._persisted, upto)
        self._deliver(result.event_ids)
        self._written(updates, result.shipments)

    async def _write_warehouse_events(self) -> None:
        """Warehouse events applied but not yet in the database: write them (with the state) now."""
        if self._persisting:
            await workflow.wait_condition(lambda: not self._persisting)  # it may be writing them
        if self._unwritten:
            await self._persist_once()

    def _written(self, updates: list[tuple[ShipmentUpdateInput, Any]], results: list[Any]) -> None:
        for (inp, expected), result in zip(updates, results, strict=True):
            self._deliver(result.event_ids)
            if list(map(tuple, result.shipped_lines)) != list(map(tuple, expected.shipped_lines)):
                # Never seen: the ledger consumed other units than the shipment listed.
                self._flag("ledger_mismatch")
                self._log("ledger_mismatch", shipment=inp.shipment_id,
                          expected=[list(x) for x in expected.shipped_lines],
                          consumed=[list(x) for x in result.shipped_lines])

    def _state_write(self) -> tuple[PersistInput, int]:
        """The order's state now and the timeline entries not yet written (up to the index returned).

        Clears `_dirty`: a change made while the write is in flight sets it again. Takes the
        warehouse events not yet written along.
        """
        self._dirty = False
        updates, self._unwritten = self._unwritten, []
        upto = len(self._timeline)
        events = [
            TimelineEvent(seq=e["seq"], at=e["at"], type=e["type"], data=jsonable(e["data"]))
            for e in self._timeline[self._persisted : upto]
        ]
        stage_events = [e for e in events if e.type == "stage"]
        return PersistInput(
            snapshot=self._snapshot(),
            events=events,
            # Keyed by the timeline, not `_key`: this loop runs beside the main flow, and
            # batches differ when a workflow task is re-run after a worker crash, so taking
            # a number from the shared counter here would shift every later idempotency key.
            status_event_id=(
                f"{self._order.order_id}:status:{stage_events[-1].seq}" if stage_events and self._order else None
            ),
            shipment_updates=[inp for inp, _ in updates],
        ), upto


def _shipment_lines(shipment: ShipmentState) -> list[tuple[int, int]]:
    """(line_no, qty) a shipment holds, as the ledger reports what shipping it consumed."""
    qty: dict[int, int] = {}
    for item in shipment.lines:
        qty[item["line_no"]] = qty.get(item["line_no"], 0) + item["qty"]
    return sorted(qty.items())


def _cause(err: BaseException) -> str:
    cause = err.__cause__
    if isinstance(cause, ApplicationError):
        return cause.message
    return str(cause or err)


def _mask(value: Any) -> Any:
    if not isinstance(value, str) or len(value) < 4:
        return value
    keep = max(1, len(value) // 4)
    return value[:keep] + "*" * (len(value) - 2 * keep) + value[-keep:]


def _mask_change(change: dict[str, Any]) -> dict[str, Any]:
    if change["field"] in ("buyer.phone", "address.detail"):
        return {**change, "old": _mask(change["old"]), "new": _mask(change["new"])}
    return change


def _mask_confirmation(data: dict[str, Any]) -> dict[str, Any]:
    return {k: (_mask(v) if k in ("phone", "detail") else v) for k, v in data.items()}
