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
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

import structlog
from pydantic import BaseModel, ValidationError
from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import DataError, DBAPIError, StatementError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import ledger
from activities.addresses import current_region
from activities.check_rules import (
    address_key,
    check_order,
    clears_intake,
    phone_key,
    standing_findings,
)
from activities.inventory import allocate_in
from activities.messages import buyer_message
from activities.outbox import add_event
from activities.pii import Known, scrub
from activities.pricing import review_prices
from models.db import SessionFactory, insert_new, transaction
from models.documents import (
    OrderDocument,
    created_at_problem,
    stored_document_problems,
    validation_messages,
)
from models.enums import ReservationStatus, ShipmentStatus
from models.payloads import (
    AllocateInput,
    AllocateResult,
    CheckInput,
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
    WithdrawInput,
    WithdrawResult,
)
from models.tables import (
    CatalogRow,
    ContactLog,
    Order,
    OrderFlag,
    OrderLineRow,
    Refund,
    Reservation,
    Shipment,
    TimelineEntry,
    to_utc,
    utcnow,
)
from models.types import CatalogEntry, Finding, FraudContext
from reads.search import index_order

log = structlog.get_logger()

_F = TypeVar("_F", bound=Callable[..., Any])

# Errors of the data, not of the moment: the same input fails the same way on every attempt.
BAD_DATA_ERRORS = (ValueError, TypeError, ArithmeticError, LookupError, DataError)


def is_bad_data(exc: BaseException) -> bool:
    """True for an error no retry can fix. A database that is down, locked or busy
    (OperationalError), a lost race (IntegrityError) and network errors are not: they pass."""
    if isinstance(exc, StatementError) and not isinstance(exc, DBAPIError):
        return True  # a value the driver could not bind (raised before any round trip)
    return isinstance(exc, BAD_DATA_ERRORS)


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
            elif isinstance(exc, StatementError):  # the driver's words, never the statement's parameters
                message = f"{type(exc).__name__}: {type(exc.orig).__name__}: {exc.orig}"
            else:
                message = f"{type(exc).__name__}: {exc}"
            log.warning("step failed on bad data", activity=fn.__name__, error=type(exc).__name__)
            raise ApplicationError(
                message[:1000], type=type(exc).__name__, non_retryable=True
            ) from exc

    return run  # type: ignore[return-value]


def refuse_unprocessable(order: OrderDocument) -> None:
    """The order's document as no step can process it (`stored_document_problems`): one
    non-retryable InvalidDocument naming the fields, before anything is written."""
    problems = stored_document_problems(order, now=utcnow())
    if problems:
        raise ApplicationError("; ".join(problems)[:1000], type="InvalidDocument", non_retryable=True)


class CheckOrderInput(CheckInput):
    """check_order's input.

    `submitted_at`: on the first check, record the order in the same transaction.
    `reserve`: when the findings clear the order for allocation (`clears_intake`),
    reserve its stock right away, in the same step, under that input's key.
    """

    submitted_at: datetime | None = None
    buyer_confirmed: bool = False
    reserve: AllocateInput | None = None


class ShipmentUpdatesInput(BaseModel):
    """Warehouse events for update_shipments, in the order they are applied."""

    updates: list[ShipmentUpdateInput]


class CheckOutcome(BaseModel):
    """The check's findings and the price review computed from the same catalog rows."""

    findings: list[Finding]
    review: ReviewResult | None = None  # None: the reviewing stage calls review_order itself
    allocation: AllocateResult | None = None  # the reservation, when one was asked for and the check cleared


def catalog_entries(session: Any, skus: list[str]) -> dict[str, CatalogEntry]:
    cat = CatalogRow.__table__
    rows = session.execute(select(cat).where(cat.c.sku.in_(sorted(set(skus)))))
    return {
        r.sku: CatalogEntry(
            sku=r.sku,
            name=r.name,
            price=r.price,
            weight_g=r.weight_g,
            attributes=r.attributes or {},
            active=r.active,
            usual_qty=r.usual_qty,
        )
        for r in rows
    }


def catalog_names(session: Any, skus: list[str]) -> dict[str, str]:
    """SKU -> product name, for pick lists."""
    cat = CatalogRow.__table__
    rows = session.execute(select(cat.c.sku, cat.c.name).where(cat.c.sku.in_(sorted(set(skus)))))
    return {sku: name for sku, name in rows}


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

    @activity.defn(name="record_order")
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
            "created_at": to_utc(_order_time(order, submitted_at)),
            "submitted_at": submitted_at,
            "updated_at": now,
        }
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

    @activity.defn(name="check_order")
    @no_retry_on_bad_data
    def check_order(self, inp: CheckOrderInput) -> CheckOutcome:
        """Check the order; on the first check also record it, and review its prices from the same catalog read.

        One transaction instead of three (record, check, review): the workflow uses the
        review at the reviewing stage while the document is the one checked here. When
        the workflow asks (`inp.reserve`) and the check clears the order, its stock is
        reserved too, in the same transaction: a clean order goes from check to reserved
        in one step and one commit. A lost race over the stock runs the whole check again.
        """
        return ledger.retrying(
            self._factory, lambda session: self._check(session, inp), what=f"check of {inp.order.order_id}"
        )

    def _check(self, session: Any, inp: CheckOrderInput) -> CheckOutcome:
        order = inp.order
        refuse_unprocessable(order)
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

    @activity.defn(name="contact_buyer")
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

    @activity.defn(name="review_order")
    @no_retry_on_bad_data
    def review_order(self, inp: ReviewInput) -> ReviewResult:
        with transaction(self._factory) as session:
            catalog = catalog_entries(session, [line.sku for line in inp.order.lines])
        totals, findings = review_prices(inp.order, catalog, inp.policy.pricing)
        return ReviewResult(totals=totals, findings=findings)

    @activity.defn(name="release_order")
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
                shipments = [_shipment_state(s._mapping) for s in existing]
                return ReleaseResult(
                    shipments=shipments, event_ids=_released_state(session, inp, shipments, self._search_key)
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
            ship_to = _ship_to(session, inp)
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
                states.append(_shipment_state(row))
                event_id = f"{inp.op_key}:pick_list:{no}"
                add_event(
                    session,
                    event_id=event_id,
                    order_id=inp.order_id,
                    type="pick_list",
                    payload={"shipment_id": shipment_id, **pick_list},
                )
                event_ids.append(event_id)
            event_ids += _released_state(session, inp, states, self._search_key)
        log.info("released to warehouse", order_id=inp.order_id, shipments=len(states))
        return ReleaseResult(shipments=states, event_ids=event_ids)

    @activity.defn(name="update_shipment")
    @no_retry_on_bad_data
    def update_shipment(self, inp: ShipmentUpdateInput) -> ShipmentUpdateResult:
        """picked / packed / shipped / cancelled for one shipment; shipped consumes its stock."""
        return self.update_shipments(ShipmentUpdatesInput(updates=[inp]))[0]

    @activity.defn(name="update_shipments")
    @no_retry_on_bad_data
    def update_shipments(self, inp: ShipmentUpdatesInput) -> list[ShipmentUpdateResult]:
        """Warehouse events in the order they came, in one transaction; each applied once.

        Each event is keyed by its op_key (`ledger.run_all_once`): picked, packed and
        shipped often arrive together, and then cost one transaction.
        """
        ops = [(u.op_key, lambda session, u=u: _shipment_work(session, u)) for u in inp.updates]
        try:
            out = ledger.run_all_once(self._factory, ops)
        except ledger.LedgerError as exc:
            raise ApplicationError(str(exc), type="LedgerError", non_retryable=True) from exc
        return [ShipmentUpdateResult.model_validate(r) for r in out]

    @activity.defn(name="withdraw_shipments")
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
            for shipment in open_:
                shipment.status = str(ShipmentStatus.CANCELLED)
                session.add(shipment)
                event_id = f"{inp.op_key}:{shipment.id}"
                add_event(
                    session,
                    event_id=event_id,
                    order_id=inp.order_id,
                    type="pick_list_withdrawn",
                    payload={"shipment_id": shipment.id, "warehouse": shipment.warehouse},
                )
                result.shipment_ids.append(shipment.id)
                result.event_ids.append(event_id)
        return result

    @activity.defn(name="request_refund")
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

    @activity.defn(name="emit_event")
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

    @activity.defn(name="persist_state")
    @no_retry_on_bad_data
    def persist_state(self, inp: PersistInput) -> PersistResult:
        """Write the workflow's view of the order: row, lines, new timeline entries, status event."""
        with transaction(self._factory) as session:
            return write_state(session, inp, search_key=self._search_key)


# Built once: write_state runs at every pause of every order (values come as parameters).
_UPDATE_ORDER = (
    Order.__table__.update()
    .where(Order.__table__.c.order_id == bindparam("b_order"))
    .values({c: bindparam(c) for c in (
        "stage", "waiting_for", "stage_since", "flags", "findings", "document", "phone_key",
        "address_key", "refund_amount", "refund_status", "cancel_reason", "updated_at",
    )})
)
_UPDATE_LINES = (
    OrderLineRow.__table__.update()
    .where(
        OrderLineRow.__table__.c.order_id == bindparam("b_order"),
        OrderLineRow.__table__.c.line_no == bindparam("b_line"),
    )
    .values(
        reserved=bindparam("b_reserved"),
        shipped=bindparam("b_shipped"),
        backordered=bindparam("b_backordered"),
        cancelled=bindparam("b_cancelled"),
    )
)


_ORDER_STAGE = select(
    Order.__table__.c.stage, Order.__table__.c.flags, Order.__table__.c.created_at
).where(Order.__table__.c.order_id == bindparam("b_order"))
_TIMELINE_SEQS = select(TimelineEntry.__table__.c.seq).where(
    TimelineEntry.__table__.c.order_id == bindparam("b_order"),
    TimelineEntry.__table__.c.seq.in_(bindparam("b_seqs", expanding=True)),
)


def write_state(session: Any, inp: PersistInput, search_key: bytes | None = None) -> PersistResult:
    """The workflow's view of the order, in the caller's transaction.

    First the warehouse events the workflow has applied (each once, under its key), so
    the order's stage and the stock it consumed land together.

    Plain table statements rather than ORM objects: this runs for every order at each
    pause, and loading the row (its whole JSON document) only to overwrite it cost
    more than the writes. Idempotent: timeline entries already there are skipped.
    """
    shipments = [
        ShipmentUpdateResult.model_validate(
            ledger.apply_once(session, u.op_key, lambda s, u=u: _shipment_work(s, u))
        )
        for u in inp.shipment_updates
    ]
    snap = inp.snapshot
    event_ids: list[str] = []
    timeline = TimelineEntry.__table__
    # The row's document keeps the buyer's real phone and address (the warehouse ships to
    # them); texts written beside it (timeline, finding messages) get them masked.
    pii = Known.values(phone=snap.document.buyer.phone, detail=snap.document.address.detail)
    current = session.execute(_ORDER_STAGE, {"b_order": snap.order_id}).first()
    if current is None:  # not recorded yet (the first check records it): retry shortly
        raise RuntimeError(f"order {snap.order_id} is not recorded yet")
    stage, old_flags, created_at = current
    stage_changed = stage != snap.stage
    sync_order_flags(session, snap.order_id, created_at, old_flags or [], snap.flags)
    session.execute(
        _UPDATE_ORDER,
        {
            "b_order": snap.order_id,
            "stage": snap.stage,
            "waiting_for": snap.waiting_for,
            "stage_since": snap.stage_since,
            "flags": list(snap.flags),
            "findings": scrub([f.public() for f in snap.findings], pii),
            "document": snap.document.model_dump(mode="json"),
            "phone_key": phone_key(snap.document),
            "address_key": address_key(snap.document),
            "refund_amount": snap.refund_amount,
            "refund_status": snap.refund_status,
            "cancel_reason": snap.cancel_reason,
            "updated_at": utcnow(),
        },
    )
    if snap.lines:
        session.execute(
            _UPDATE_LINES,
            [
                {
                    "b_order": snap.order_id,
                    "b_line": line.line_no,
                    "b_reserved": line.reserved,
                    "b_shipped": line.shipped,
                    "b_backordered": line.backordered,
                    "b_cancelled": line.cancelled,
                }
                for line in snap.lines
            ],
        )
    seqs = [e.seq for e in inp.events]
    known: set[int] = set()
    if seqs:
        known = set(session.execute(_TIMELINE_SEQS, {"b_order": snap.order_id, "b_seqs": seqs}).scalars())
    new = [e for e in inp.events if e.seq not in known]
    if new:
        session.execute(
            timeline.insert(),
            [
                {
                    "order_id": snap.order_id,
                    "seq": e.seq,
                    "at": e.at,
                    "type": e.type,
                    "data": scrub(e.data, pii),
                }
                for e in new
            ],
        )
    for event in new:
        if event.type == "contact_outcome":
            _record_outcome(session, snap.order_id, event.data)
    if stage_changed:  # after a correction or a shipment: what the order is found by
        index_order(session, snap.order_id, snap.document.model_dump(mode="json"), created_at,
                    search_key)
    if stage_changed and inp.status_event_id:
        created = add_event(
            session,
            event_id=inp.status_event_id,
            order_id=snap.order_id,
            type="status_change",
            payload={
                "stage": snap.stage,
                "waiting_for": snap.waiting_for,
                "flags": snap.flags,
            },
        )
        if created:
            event_ids.append(created)
    return PersistResult(event_ids=event_ids, shipments=shipments)


def _order_time(order: OrderDocument, submitted_at: datetime) -> datetime:
    """When the order was placed, for its row: its created_at, or when that is missing or
    implausible (an order held for it must still be listed), when it was submitted."""
    if order.created_at is None or created_at_problem(order.created_at, now=utcnow()):
        return submitted_at
    return order.created_at


def _released_state(session: Any, inp: ReleaseInput, shipments: list[dict[str, Any]],
                    search_key: bytes | None = None) -> list[str]:
    """The order's state once released (when the workflow sent it), with the ids of its pick lists."""
    if inp.state is None:
        return []
    events = [
        e.model_copy(update={"data": {**e.data, "shipments": [s["id"] for s in shipments]}})
        if e.seq == inp.released_entry_seq
        else e
        for e in inp.state.events
    ]
    return write_state(session, inp.state.model_copy(update={"events": events}), search_key).event_ids


def _shipment_work(session: Any, inp: ShipmentUpdateInput) -> dict[str, Any]:
    """One warehouse event on its shipment; shipped consumes its stock."""
    shipments = Shipment.__table__
    now = utcnow()
    result: dict[str, Any] = {"shipped_lines": [], "event_ids": []}
    values: dict[str, Any] = {"status": inp.kind}
    if inp.kind == "picked":
        values["picked_at"] = now
    elif inp.kind == "packed":
        values.update(packed_at=now, parcels=inp.parcels, weight_g=inp.weight_g)
    elif inp.kind == "shipped":
        values.update(shipped_at=now, carrier=inp.carrier, tracking_no=inp.tracking_no)
    # The update names the shipment's warehouse as it goes: one statement, not a read and a write.
    warehouse = session.execute(
        shipments.update()
        .where(shipments.c.id == inp.shipment_id)
        .values(values)
        .returning(shipments.c.warehouse)
    ).scalar_one_or_none()
    if warehouse is None:
        raise ledger.LedgerError(f"unknown shipment {inp.shipment_id}")
    if inp.kind == "shipped":
        result["shipped_lines"] = ledger.consume_shipment(
            session, order_id=inp.order_id, shipment_id=inp.shipment_id, ref=inp.op_key
        )
        for kind in ("tracking_to_platform", "buyer_shipped_notice"):
            eid = f"{inp.op_key}:{kind}"
            add_event(
                session,
                event_id=eid,
                order_id=inp.order_id,
                type=kind,
                payload={
                    "shipment_id": inp.shipment_id,
                    "carrier": inp.carrier,
                    "tracking_no": inp.tracking_no,
                },
            )
            result["event_ids"].append(eid)
    elif inp.kind == "cancelled":
        eid = f"{inp.op_key}:pick_list_withdrawn"
        add_event(
            session,
            event_id=eid,
            order_id=inp.order_id,
            type="pick_list_withdrawn",
            payload={"shipment_id": inp.shipment_id, "warehouse": warehouse},
        )
        result["event_ids"].append(eid)
    return result


def _record_outcome(session: Any, order_id: str, data: dict[str, Any]) -> None:
    # The contact the confirmation answered: a later contact may already be written
    # by the time this timeline batch is persisted.
    stmt = select(ContactLog).where(ContactLog.order_id == order_id)
    if data.get("contact_no") is not None:
        stmt = stmt.where(ContactLog.contact_no == data["contact_no"])
    last = session.execute(stmt.order_by(ContactLog.contact_no.desc())).scalars().first()
    if last is not None:
        last.outcome = "confirmed"
        last.note = data.get("note")
        session.add(last)


def _ship_to(session: Any, inp: ReleaseInput) -> dict[str, str | None] | None:
    """The delivery region on the pick list, in today's division names.

    A buyer may have written a former name (潞西市, or 公主岭市 under 四平市); the warehouse
    gets the current one (德宏州芒市, 长春市公主岭市). Only the country, province, city and
    district: the door address and the buyer's name and phone stay off the pick list.
    """
    if inp.state is not None:
        address = inp.state.snapshot.document.address.model_dump()
    else:
        document = session.execute(
            select(Order.__table__.c.document).where(Order.__table__.c.order_id == inp.order_id)
        ).scalar()
        if not document:
            return None
        address = document.get("address") or {}
    region = current_region(
        address.get("country"),
        address.get("province"),
        address.get("city"),
        address.get("district"),
        address.get("detail"),
    )
    return {"country": address.get("country") or "CN", **region}


def _shipment_state(s: Mapping[str, Any]) -> dict[str, Any]:
    """A shipment's row (fetched, or just written) as the workflow keeps it."""
    return {
        "id": s["id"],
        "shipment_no": s["shipment_no"],
        "warehouse": s["warehouse"],
        "status": s["status"],
        "carrier": s["carrier"],
        "tracking_no": s["tracking_no"],
        "lines": list((s["pick_list"] or {}).get("lines", [])),
    }


def refund_for(lines: list[Any], *, paid: Decimal) -> Decimal:
    """What to refund: the paid amount less the value of what shipped (pro rata, to the cent)."""
    ordered = sum((Decimal(li.qty) * (li.unit_price or Decimal(0)) for li in lines), Decimal(0))
    shipped = sum((Decimal(li.shipped) * (li.unit_price or Decimal(0)) for li in lines), Decimal(0))
    if shipped == 0 or ordered == 0:
        return paid
    share = (paid * shipped / ordered).quantize(Decimal("0.01"))
    return max(paid - share, Decimal("0.00"))


def sync_order_flags(
    session: Any, order_id: str, created_at: datetime, old: list[str], new: list[str]
) -> None:
    """Keep `order_flags` (the list's flag index) in step with the order's flags; nothing to
    write when they did not change, which is most state writes."""
    gone = set(old) - set(new)
    added = [f for f in dict.fromkeys(new) if f not in old]
    table = OrderFlag.__table__
    if gone:
        session.execute(
            table.delete().where(table.c.order_id == order_id, table.c.flag.in_(sorted(gone)))
        )
    for flag in added:
        insert_new(session, table, {"order_id": order_id, "flag": flag, "created_at": created_at})
