"""Order activities: everything the order workflow needs done in the database.

Synchronous methods run in the worker's thread pool. Each one is idempotent:
rows are keyed by ids the workflow chose (event ids, shipment numbers, timeline
sequence numbers), so a retry after a crash finds its own earlier work and
writes nothing twice.

What a retry cannot fix is raised non-retryable (`no_retry_on_bad_data`): bad data (a date
out of range, a document that fails to validate or serialize, a wrong type) fails the same
way on every attempt, so the workflow gets it at once and holds the order with the reason
(`Steps.db`). Everything else, the database down or locked, a lost race, the network, is
retried with backoff by the step's retry policy.

Every synchronous activity here (and in inventory.py, shipping.py) is declared
`no_thread_cancel_exception=True`. Otherwise the SDK, when it cancels a threaded activity (a
workflow task that timed out while its local activities ran, as after a server restart),
raises `CancelledError` into the thread at whatever bytecode it is running, including the
instant between taking the process's SQLite write lock and recording that it holds it: the
lock then leaked and every later database step of the worker waited on it (the dev-server
kill drill with the shipping desk on, 2026-12-05). A cancelled step instead runs its short
transaction to the end, and its result is dropped.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import bindparam, func, select
from temporalio import activity

from intake.address_check import address_key
from intake.buyer import phone_key
from intake.catalog import catalog_entries, catalog_names
from intake.check import check_order
from intake.findings import clears_intake, standing_findings
from intake.messages import buyer_message
from inventory.booking import allocate_in
from inventory.ledger import LedgerError, retrying, run_all_once
from models.db import SessionFactory, insert_new, transaction
from models.documents import (
    OrderDocument,
    stored_document_problems,
)
from models.enums import ReservationStatus, ShipmentStatus
from models.errors import ErrorType, application_error, no_retry_on_bad_data
from models.payloads import (
    CheckOrderInput,
    CheckOutcome,
    ContactInput,
    ContactResult,
    EmitInput,
    PersistInput,
    PersistResult,
    RecordOrderInput,
    RefundInput,
    ReleaseInput,
    ReleaseResult,
    ReviewInput,
    ReviewResult,
    ShipmentUpdateInput,
    ShipmentUpdateResult,
    ShipmentUpdatesInput,
    WithdrawInput,
    WithdrawResult,
)
from models.tables import (
    ContactLog,
    Order,
    OrderLineRow,
    Refund,
    Reservation,
    Shipment,
    to_utc,
    utcnow,
)
from models.types import FraudContext
from orders.shipments import pick_list_region, shipment_state, shipment_work
from orders.store import order_time, released_state, ship_by_of, write_state
from outbox.store import add_event
from pricing.rules import review_prices
from privacy.search_keys import index_order

log = structlog.get_logger()

def _refuse_unprocessable(order: OrderDocument) -> None:
    """The order's document as no step can process it (`stored_document_problems`): one
    non-retryable InvalidDocument naming the fields, before anything is written."""
    problems = stored_document_problems(order, now=utcnow())
    if problems:
        raise application_error(ErrorType.INVALID_DOCUMENT, "; ".join(problems)[:1000])


def _recent_stmt(column: Any) -> Any:
    """Other orders with the same key since a time (fraud signs), built once per key column."""
    orders = Order.__table__
    return (
        select(func.count())
        .select_from(orders)
        .where(
            column == bindparam("b_key"),
            orders.c.order_id != bindparam("b_order"),
            orders.c.created_at >= bindparam("b_since"),
        )
    )


_SAME_PHONE = _recent_stmt(Order.__table__.c.phone_key)
_SAME_ADDRESS = _recent_stmt(Order.__table__.c.address_key)


class OrderActivities:
    def __init__(self, factory: SessionFactory, search_key: bytes | None = None) -> None:
        self._factory = factory
        self._search_key = search_key  # OMS_SEARCH_KEY: the buyer's name and phone as keyed hashes

    @activity.defn(name="record_order", no_thread_cancel_exception=True)
    @no_retry_on_bad_data
    def record_order(self, inp: RecordOrderInput) -> None:
        with transaction(self._factory) as session:
            self._record(session, inp.order, inp.submitted_at, search_key=self._search_key)

    @staticmethod
    def _record(session: Any, order: OrderDocument, submitted_at: datetime,
                search_key: bytes | None = None) -> None:
        """The order's row and lines, once (a retry or a second call finds them and writes nothing)."""
        now = utcnow()
        row = {
            "order_id": order.order_id,
            "workflow_id": order.workflow_id,
            "platform": order.platform,
            "stage": "received",
            "waiting_for": None,
            "stage_since": now,
            "flags": [],
            "findings": [],
            "document": order.model_dump(mode="json"),
            "phone_key": phone_key(order),
            "address_key": address_key(order),
            "total": order.total,
            "created_at": to_utc(order_time(order, submitted_at)),
            "submitted_at": submitted_at,
            "updated_at": now,
        }
        # a platform's ship-by time: the queue's deadline from the start (received is open)
        row["ship_by"] = row["ship_due"] = ship_by_of(row["document"])
        if not insert_new(session, Order.__table__, row):
            return
        index_order(session, order.order_id, row["document"], row["created_at"], search_key)
        session.execute(
            OrderLineRow.__table__.insert(),
            [
                {
                    "order_id": order.order_id,
                    "line_no": no,
                    "sku": line.sku,
                    "qty": line.qty,
                    "unit_price": line.unit_price,
                    "reserved": 0,
                    "shipped": 0,
                    "backordered": 0,
                    "cancelled": 0,
                }
                for no, line in enumerate(order.lines, start=1)
            ],
        )
        log.info("order recorded", order_id=order.order_id)

    @activity.defn(name="check_order", no_thread_cancel_exception=True)
    @no_retry_on_bad_data
    def check_order(self, inp: CheckOrderInput) -> CheckOutcome:
        """Check the order; on the first check also record it, and review its prices from the same catalog read.

        One transaction instead of three (record, check, review): the workflow uses the
        review at the reviewing stage while the document is the one checked here. When
        the workflow asks (`inp.reserve`) and the check clears the order, its stock is
        reserved too, in the same transaction: a clean order goes from check to reserved
        in one step and one commit. A lost race over the stock runs the whole check again.
        """
        return retrying(
            self._factory, lambda session: self._check(session, inp), what=f"check of {inp.order.order_id}"
        )

    def _check(self, session: Any, inp: CheckOrderInput) -> CheckOutcome:
        order = inp.order
        _refuse_unprocessable(order)
        if inp.submitted_at is not None:
            self._record(session, order, inp.submitted_at, search_key=self._search_key)
        catalog = catalog_entries(session, [line.sku for line in order.lines])
        since = to_utc(order.created_at or utcnow()) - inp.policy.fraud.window
        fraud = FraudContext(
            orders_same_phone=self._recent(session, _SAME_PHONE, phone_key(order), order.order_id, since),
            orders_same_address=self._recent(
                session, _SAME_ADDRESS, address_key(order), order.order_id, since
            ),
        )
        findings = check_order(order, catalog=catalog, policy=inp.policy, fraud=fraud)
        review: ReviewResult | None = None
        try:
            totals, review_findings = review_prices(order, catalog, inp.policy.pricing)
            review = ReviewResult(totals=totals, findings=review_findings)
        except Exception:  # noqa: BLE001 (let the reviewing stage meet the error where it always did)
            log.warning("price review deferred to the reviewing stage", order_id=order.order_id)
        log.info("order checked", order_id=order.order_id, findings=[f.code for f in findings])
        allocation = None
        if inp.reserve is not None and clears_intake(
            standing_findings(findings, buyer_confirmed=inp.buyer_confirmed)
        ):
            allocation = allocate_in(session, inp.reserve)
        return CheckOutcome(findings=findings, review=review, allocation=allocation)

    @staticmethod
    def _recent(session: Any, stmt: Any, key: str | None, order_id: str, since: Any) -> int:
        """Other orders with this key since `since`, by one of the prebuilt counts (`_recent_stmt`)."""
        if not key:
            return 0
        return int(session.execute(stmt, {"b_key": key, "b_order": order_id, "b_since": since}).scalar_one())

    @activity.defn(name="contact_buyer", no_thread_cancel_exception=True)
    @no_retry_on_bad_data
    def contact_buyer(self, inp: ContactInput) -> ContactResult:
        order = inp.order
        with transaction(self._factory) as session:
            if any(line.name is None for line in order.lines):
                # Name the goods as the shop shows them ("您购买的「红色T恤 M码」").
                names = catalog_entries(session, [line.sku for line in order.lines])
                lines = [
                    line
                    if line.name or line.sku not in names
                    else line.model_copy(update={"name": names[line.sku].name})
                    for line in order.lines
                ]
                order = order.model_copy(update={"lines": lines})
        text = buyer_message(order, inp.findings, channel=inp.channel, reminder=inp.reminder)
        with transaction(self._factory) as session:
            existing = (
                session.execute(
                    select(ContactLog).where(
                        ContactLog.order_id == order.order_id,
                        ContactLog.text == text,
                        ContactLog.reminder == inp.reminder,
                    )
                )
                .scalars()
                .first()
            )
            created = add_event(
                session,
                event_id=inp.event_id,
                order_id=order.order_id,
                type="buyer_message" if inp.channel != "phone" else "call_task",
                payload={
                    "channel": str(inp.channel),
                    "text": text,
                    "reminder": inp.reminder,
                    "asks_for": [f.field for f in inp.findings],
                },
            )
            if existing is not None and created is None:
                return ContactResult(contact_no=existing.contact_no, event_ids=[])
            number = (
                session.execute(
                    select(func.max(ContactLog.contact_no)).where(
                        ContactLog.order_id == order.order_id
                    )
                ).scalar_one()
                or 0
            ) + 1
            session.add(
                ContactLog(
                    order_id=order.order_id,
                    contact_no=number,
                    channel=str(inp.channel),
                    text=text,
                    at=utcnow(),
                    reminder=inp.reminder,
                    outcome="sent",
                )
            )
        log.info(
            "buyer contacted",
            order_id=order.order_id,
            channel=str(inp.channel),
            reminder=inp.reminder,
        )
        return ContactResult(contact_no=number, event_ids=[inp.event_id] if created else [])

    @activity.defn(name="review_order", no_thread_cancel_exception=True)
    @no_retry_on_bad_data
    def review_order(self, inp: ReviewInput) -> ReviewResult:
        with transaction(self._factory) as session:
            catalog = catalog_entries(session, [line.sku for line in inp.order.lines])
        totals, findings = review_prices(inp.order, catalog, inp.policy.pricing)
        return ReviewResult(totals=totals, findings=findings)

    @activity.defn(name="release_order", no_thread_cancel_exception=True)
    @no_retry_on_bad_data
    def release_order(self, inp: ReleaseInput) -> ReleaseResult:
        """Write one pick list per warehouse for the held stock not yet released, and send it.

        With `inp.state`, the order's state as released goes into the same transaction:
        the pick lists and the stage that announces them are written together, and the
        workflow needs no separate step to record the pause that follows.
        """
        ships, res = Shipment.__table__, Reservation.__table__
        with transaction(self._factory) as session:
            existing = session.execute(
                select(ships).where(
                    ships.c.order_id == inp.order_id, ships.c.shipment_no >= inp.first_shipment_no
                )
            ).all()
            if existing:  # a retry: the pick lists were written the first time
                shipments = [shipment_state(s._mapping) for s in existing]
                return ReleaseResult(
                    shipments=shipments, event_ids=released_state(session, inp, shipments, self._search_key)
                )
            holds = session.execute(
                select(res.c.id, res.c.warehouse, res.c.line_no, res.c.sku, res.c.qty)
                .where(
                    res.c.order_id == inp.order_id,
                    res.c.status == str(ReservationStatus.HELD),
                    res.c.shipment_id.is_(None),
                )
                .order_by(res.c.warehouse, res.c.line_no, res.c.id)
            ).all()
            by_wh: dict[str, list[Any]] = {}
            for hold in holds:
                by_wh.setdefault(hold.warehouse, []).append(hold)
            names = catalog_names(session, [h.sku for h in holds])
            ship_to = pick_list_region(session, inp)
            states: list[dict[str, Any]] = []
            event_ids: list[str] = []
            now = utcnow()
            for offset, (warehouse, wh_holds) in enumerate(sorted(by_wh.items())):
                no = inp.first_shipment_no + offset
                shipment_id = f"{inp.order_id}-{no}"
                merged: dict[tuple[int, str], int] = {}
                for hold in wh_holds:
                    merged[(hold.line_no, hold.sku)] = merged.get((hold.line_no, hold.sku), 0) + hold.qty
                session.execute(
                    res.update()
                    .where(res.c.id.in_([h.id for h in wh_holds]))
                    .values(shipment_id=shipment_id, updated_at=now)
                )
                lines = [
                    {"line_no": line_no, "sku": sku, "name": names.get(sku, sku), "qty": qty}
                    for (line_no, sku), qty in sorted(merged.items())
                ]
                pick_list = {
                    "warehouse": warehouse,
                    "ship_to": ship_to,
                    "lines": lines,
                    "remarks": inp.remarks,
                }
                row = {
                    "id": shipment_id,
                    "order_id": inp.order_id,
                    "shipment_no": no,
                    "warehouse": warehouse,
                    "status": str(ShipmentStatus.RELEASED),
                    "pick_list": pick_list,
                    "carrier": None,
                    "tracking_no": None,
                    "released_at": now,
                }
                session.execute(ships.insert(), row)
                states.append(shipment_state(row))
                event_id = f"{inp.op_key}:pick_list:{no}"
                add_event(
                    session,
                    event_id=event_id,
                    order_id=inp.order_id,
                    type="pick_list",
                    payload={"shipment_id": shipment_id, **pick_list},
                )
                event_ids.append(event_id)
            event_ids += released_state(session, inp, states, self._search_key)
        log.info("released to warehouse", order_id=inp.order_id, shipments=len(states))
        return ReleaseResult(shipments=states, event_ids=event_ids)

    @activity.defn(name="update_shipment", no_thread_cancel_exception=True)
    @no_retry_on_bad_data
    def update_shipment(self, inp: ShipmentUpdateInput) -> ShipmentUpdateResult:
        """picked / packed / shipped / cancelled for one shipment; shipped consumes its stock."""
        return self.update_shipments(ShipmentUpdatesInput(updates=[inp]))[0]

    @activity.defn(name="update_shipments", no_thread_cancel_exception=True)
    @no_retry_on_bad_data
    def update_shipments(self, inp: ShipmentUpdatesInput) -> list[ShipmentUpdateResult]:
        """Warehouse events in the order they came, in one transaction; each applied once.

        Each event is keyed by its op_key (`run_all_once`): picked, packed and
        shipped often arrive together, and then cost one transaction.
        """
        ops = [(u.op_key, lambda session, u=u: shipment_work(session, u)) for u in inp.updates]
        try:
            out = run_all_once(self._factory, ops)
        except LedgerError as exc:
            raise application_error(ErrorType.LEDGER, str(exc)) from exc
        return [ShipmentUpdateResult.model_validate(r) for r in out]

    @activity.defn(name="withdraw_shipments", no_thread_cancel_exception=True)
    @no_retry_on_bad_data
    def withdraw_shipments(self, inp: WithdrawInput) -> WithdrawResult:
        """Withdraw every unshipped pick list of the order (idempotent: a retry finds none left)."""
        result = WithdrawResult()
        with transaction(self._factory) as session:
            open_ = (
                session.execute(
                    select(Shipment)
                    .where(
                        Shipment.order_id == inp.order_id,
                        Shipment.status.not_in(
                            [str(ShipmentStatus.SHIPPED), str(ShipmentStatus.CANCELLED)]
                        ),
                    )
                    .order_by(Shipment.shipment_no)
                )
                .scalars()
                .all()
            )
            res = Reservation.__table__
            for shipment in open_:
                shipment.status = str(ShipmentStatus.CANCELLED)
                session.add(shipment)
                if inp.keep_stock:  # held for the order still, released again later
                    session.execute(
                        res.update()
                        .where(res.c.shipment_id == shipment.id,
                               res.c.status == str(ReservationStatus.HELD))
                        .values(shipment_id=None, updated_at=utcnow())
                    )
                event_id = f"{inp.op_key}:{shipment.id}"
                payload = {"shipment_id": shipment.id, "warehouse": shipment.warehouse}
                if inp.reason:
                    payload["reason"] = inp.reason
                add_event(
                    session,
                    event_id=event_id,
                    order_id=inp.order_id,
                    type="pick_list_withdrawn",
                    payload=payload,
                )
                result.shipment_ids.append(shipment.id)
                result.event_ids.append(event_id)
        return result

    @activity.defn(name="request_refund", no_thread_cancel_exception=True)
    @no_retry_on_bad_data
    def request_refund(self, inp: RefundInput) -> list[str]:
        with transaction(self._factory) as session:
            if session.get(Refund, inp.refund_id) is not None:
                return []
            session.add(
                Refund(
                    id=inp.refund_id,
                    order_id=inp.order_id,
                    amount=inp.amount,
                    reason=inp.reason,
                    created_at=utcnow(),
                )
            )
            add_event(
                session,
                event_id=inp.refund_id,
                order_id=inp.order_id,
                type="refund_request",
                payload={"amount": str(inp.amount), "reason": inp.reason},
            )
        log.info("refund requested", order_id=inp.order_id, amount=str(inp.amount))
        return [inp.refund_id]

    @activity.defn(name="emit_event", no_thread_cancel_exception=True)
    @no_retry_on_bad_data
    def emit_event(self, inp: EmitInput) -> list[str]:
        with transaction(self._factory) as session:
            created = add_event(
                session,
                event_id=inp.event_id,
                order_id=inp.order_id,
                type=inp.type,
                payload=inp.payload,
            )
        return [created] if created else []

    @activity.defn(name="persist_state", no_thread_cancel_exception=True)
    @no_retry_on_bad_data
    def persist_state(self, inp: PersistInput) -> PersistResult:
        """Write the workflow's view of the order: row, lines, new timeline entries, status event."""
        with transaction(self._factory) as session:
            return write_state(session, inp, search_key=self._search_key)


