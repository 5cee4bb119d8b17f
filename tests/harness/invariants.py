"""The invariants of SPEC §8, checked against a live database (and Temporal, when given).

`check_invariants(session)` returns one readable line per violation; an empty
list means the books balance. Used by the end-to-end and durability tests, and
usable by hand against any OMS database:

    with transaction(factory) as session:
        assert check_invariants(session) == []

After a drill (tests/test_drill_*.py), `order_workflow_problems` compares each
order's stage in the database with its workflow's (closed workflows by their
outcome, open ones by their `state` query) and with where the drill expects it;
`effects_by_order` counts what each order did (stock movements, outbox events,
refunds) so that a drill can say how often each effect must have happened; and
`delivery_problems` holds the outbox against what a webhook receiver accepted.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session
from temporalio.client import WorkflowFailureError

from inventory.audit import audit
from models.documents import workflow_id_for
from models.enums import EventStatus, MovementKind, ReservationStatus
from models.payloads import OrderOutcome, OrderSnapshot
from models.tables import (
    Order,
    OrderLineRow,
    OutboxEvent,
    Refund,
    Reservation,
    Shipment,
    StockMovement,
    TimelineEntry,
)

FINAL_STAGES = ("completed", "cancelled")
BAD_WORKFLOW_ENDS = ("FAILED", "TERMINATED", "TIMED_OUT", "CANCELED", "CONTINUED_AS_NEW")


def check_invariants(session: Session) -> list[str]:
    """SPEC §8.1–§8.4 against the database; one line per problem."""
    return [
        *_ledger(session),
        *_order_lines(session),
        *_nothing_ships_unpaid(session),
        *_one_effect_per_op(session),
        *_refunds(session),
    ]


async def workflow_problems(client: Any, query: str) -> list[str]:
    """SPEC §8.6: every order workflow that closed, closed Completed (not Failed/Terminated/...)."""
    problems: list[str] = []
    async for wf in client.list_workflows(query):
        status = wf.status.name if wf.status is not None else "UNKNOWN"
        if status in BAD_WORKFLOW_ENDS:
            problems.append(f"workflow {wf.id} ended {status}")
    return problems


async def check_all(
    session: Session, client: Any = None, task_queue: str | None = None
) -> list[str]:
    """`check_invariants` plus, with a Temporal client, the workflow endings of this task queue."""
    problems = check_invariants(session)
    if client is not None:
        query = 'WorkflowType="OrderWorkflow"'
        if task_queue:
            query += f' AND TaskQueue="{task_queue}"'
        problems += await workflow_problems(client, query)
    return problems


async def order_workflow_problems(
    client: Any,
    task_queue: str,
    expected: Mapping[str, str],
    db_stages: Mapping[str, str],
    *,
    concurrency: int = 16,
    close_timeout: float = 60.0,
) -> list[str]:
    """SPEC §8.6 after a drill: every order settled where it should, its workflow agreeing.

    For each expected order: its stage in the database is the expected one; a finished
    order's (completed, cancelled) workflow closed Completed (within `close_timeout`) with
    that stage as its outcome;
    any other order's workflow is Running and its `state` query shows that stage. No order
    workflow on the task queue ended Failed, Terminated, TimedOut, ..., and none is Running
    that the drill does not know of (stuck or lost track of).
    """
    problems: list[str] = []
    gate = asyncio.Semaphore(concurrency)

    async def one(order_id: str, stage: str) -> None:
        if db_stages.get(order_id) != stage:
            problems.append(
                f"order {order_id}: stage in the database {db_stages.get(order_id)}, expected {stage}"
            )
        handle = client.get_workflow_handle(workflow_id_for(order_id), result_type=OrderOutcome)
        async with gate:
            if stage in FINAL_STAGES:  # its workflow closes once its last deliveries are done
                try:
                    seen = (await asyncio.wait_for(handle.result(), close_timeout)).stage
                except TimeoutError:
                    problems.append(f"order {order_id} is {stage}, its workflow still open")
                    return
                except WorkflowFailureError as exc:
                    problems.append(f"order {order_id} is {stage}, its workflow ended: {exc.cause}")
                    return
            else:
                seen = (await handle.query("state", result_type=OrderSnapshot)).stage
            status = (await handle.describe()).status
        want = "COMPLETED" if stage in FINAL_STAGES else "RUNNING"
        if status is None or status.name != want:
            problems.append(f"order {order_id} is {stage} but its workflow is {status}")
        if seen != stage:
            problems.append(f"order {order_id}: its workflow says {seen}, expected {stage}")

    await asyncio.gather(*(one(o, stage) for o, stage in expected.items()))
    base = f'WorkflowType="OrderWorkflow" AND TaskQueue="{task_queue}"'
    problems += await workflow_problems(client, base)
    async for wf in client.list_workflows(base + ' AND ExecutionStatus="Running"'):
        order_id = wf.id.removeprefix("order-")
        if expected.get(order_id) not in (None, *FINAL_STAGES):
            continue
        status = (await client.get_workflow_handle(wf.id).describe()).status
        if status is not None and status.name == "RUNNING":  # the list may lag; describe does not
            problems.append(f"workflow {wf.id} still Running; expected: {expected.get(order_id)}")
    return sorted(problems)


def effects_by_order(session: Session) -> Counter[tuple[str | None, str]]:
    """(order id, effect) → how often: stock movements by kind, outbox events by type,
    "reservation" rows (whatever their status now) and "refund" rows. A drill states how many
    of each every order must have (SPEC §8.4)."""
    effects: Counter[tuple[str | None, str]] = Counter()
    effects.update(session.execute(select(StockMovement.order_id, StockMovement.kind)).all())
    effects.update(session.execute(select(OutboxEvent.order_id, OutboxEvent.type)).all())
    effects.update((o, "refund") for o in session.execute(select(Refund.order_id)).scalars())
    effects.update(
        (o, "reservation") for o in session.execute(select(Reservation.order_id)).scalars()
    )
    return effects


def delivery_problems(events: Iterable[OutboxEvent], received: Iterable[Any]) -> list[str]:
    """SPEC §4 after a receiver outage: every outbox event delivered and seen by the receiver
    exactly once under its id, answered 2xx; nothing else accepted; every request signed so
    that the receiver's Standard Webhooks library verified it. `received`: the receiver's
    requests (`event_id`, `accepted`, `signature_valid`; tests/harness/webhook_receiver.py)."""
    requests = list(received)
    seen = Counter(r.event_id for r in requests)
    accepted = Counter(r.event_id for r in requests if r.accepted)
    problems = [f"request for {r.event_id}: {r.verify_error}" for r in requests if not r.signature_valid]
    ids = set()
    for event in events:
        ids.add(event.id)
        if event.status != str(EventStatus.DELIVERED):
            problems.append(f"event {event.id} ({event.type}) is {event.status}: {event.last_error}")
        if (seen[event.id], accepted[event.id]) != (1, 1):
            problems.append(
                f"event {event.id}: {seen[event.id]} requests, {accepted[event.id]} accepted; "
                "expected one, accepted"
            )
    problems += [f"receiver accepted unknown event {i}" for i in set(accepted) - ids]
    return problems


# ----------------------------------------------------------------- §8.1


def _ledger(session: Session) -> list[str]:
    return [f"ledger: {p}" for p in audit(session)]


# ----------------------------------------------------------------- §8.2


def _order_lines(session: Session) -> list[str]:
    problems = []
    stages = dict(session.execute(select(Order.order_id, Order.stage)).all())
    for line in session.execute(
        select(OrderLineRow).order_by(OrderLineRow.order_id, OrderLineRow.line_no)
    ).scalars():
        accounted = line.reserved + line.shipped + line.backordered + line.cancelled
        parts = (line.reserved, line.shipped, line.backordered, line.cancelled)
        name = f"order {line.order_id} line {line.line_no}"
        if min(parts) < 0:
            problems.append(
                f"{name}: negative figure in reserved/shipped/backordered/cancelled {parts}"
            )
        if stages.get(line.order_id) in FINAL_STAGES:
            if accounted != line.qty:
                problems.append(
                    f"{name} ({stages[line.order_id]}): {parts} sum to {accounted}, ordered {line.qty}"
                )
        elif accounted > line.qty:
            problems.append(f"{name}: {parts} sum to {accounted}, more than the {line.qty} ordered")
    return problems


# ----------------------------------------------------------------- §8.3


def _nothing_ships_unpaid(session: Session) -> list[str]:
    problems = []
    shipped = session.execute(
        select(Order).where(
            Order.order_id.in_(select(Shipment.order_id).where(Shipment.status == "shipped"))
        )
    ).scalars()
    for order in shipped:
        status = ((order.document or {}).get("payment") or {}).get("status")
        if status == "pending":
            paid = session.execute(
                select(func.count())
                .select_from(TimelineEntry)
                .where(TimelineEntry.order_id == order.order_id, TimelineEntry.type == "payment")
            ).scalar_one()
            if not paid:
                problems.append(f"order {order.order_id} shipped with its payment still pending")
    return problems


# ----------------------------------------------------------------- §8.4


def _one_effect_per_op(session: Session) -> list[str]:
    problems: list[str] = []
    # Outbox ids are unique (a stable event id is delivered once).
    ids = Counter(session.execute(select(OutboxEvent.id)).scalars())
    problems += [f"outbox event id {i} appears {n} times" for i, n in ids.items() if n > 1]

    # One reservation per op: within one operation an order line reserves a SKU at a
    # warehouse once, so (ref, sku, warehouse, order) repeats at most as often as the
    # order has lines of that SKU.
    lines_of: Counter[tuple[str, str]] = Counter(
        (order_id, sku)
        for order_id, sku in session.execute(select(OrderLineRow.order_id, OrderLineRow.sku)).all()
    )
    reserves = session.execute(
        select(
            StockMovement.ref,
            StockMovement.sku,
            StockMovement.warehouse,
            StockMovement.order_id,
            func.count(),
        )
        .where(StockMovement.kind == str(MovementKind.RESERVE))
        .group_by(
            StockMovement.ref, StockMovement.sku, StockMovement.warehouse, StockMovement.order_id
        )
    ).all()
    for ref, sku, wh, order_id, n in reserves:
        if n > max(1, lines_of[(order_id, sku)]):
            problems.append(f"reserve {sku}@{wh} for {order_id} applied {n} times by op {ref}")

    # Net of pick exceptions, an order never holds or ships more than it ordered.
    ordered: dict[tuple[str, str], int] = defaultdict(int)
    shipped_lines: dict[tuple[str, str], int] = defaultdict(int)
    for line in session.execute(select(OrderLineRow)).scalars():
        ordered[(line.order_id, line.sku)] += line.qty
        shipped_lines[(line.order_id, line.sku)] += line.shipped
    reserved_net: dict[tuple[str, str], int] = defaultdict(int)
    shipped_units: dict[tuple[str, str], int] = defaultdict(int)
    for move in session.execute(
        select(StockMovement).where(StockMovement.order_id.is_not(None))
    ).scalars():
        key = (move.order_id, move.sku)
        # Reserved, less what pick exceptions (adjustments) took off the order again.
        if move.kind in (str(MovementKind.RESERVE), str(MovementKind.ADJUST)):
            reserved_net[key] += move.reserved_delta
        elif move.kind == str(MovementKind.SHIP):
            shipped_units[key] -= move.on_hand_delta
    for key, qty in reserved_net.items():
        if qty > ordered.get(key, 0):
            problems.append(
                f"order {key[0]} reserved {qty} of {key[1]} but ordered {ordered.get(key, 0)}"
            )
    stages = dict(session.execute(select(Order.order_id, Order.stage)).all())
    for key in set(shipped_units) | set(shipped_lines):
        if stages.get(key[0]) in FINAL_STAGES and shipped_units.get(key, 0) != shipped_lines.get(
            key, 0
        ):
            problems.append(
                f"order {key[0]}: ledger shipped {shipped_units.get(key, 0)} of {key[1]}, "
                f"its lines say {shipped_lines.get(key, 0)}"
            )
    # Held reservations per order match what the order's movements left reserved.
    held = dict(
        session.execute(
            select(Reservation.order_id, func.sum(Reservation.qty))
            .where(Reservation.status == str(ReservationStatus.HELD))
            .group_by(Reservation.order_id)
        ).all()
    )
    net = dict(
        session.execute(
            select(StockMovement.order_id, func.sum(StockMovement.reserved_delta))
            .where(StockMovement.order_id.is_not(None))
            .group_by(StockMovement.order_id)
        ).all()
    )
    for order_id in set(held) | set(net):
        if (held.get(order_id) or 0) != (net.get(order_id) or 0):
            problems.append(
                f"order {order_id}: held reservations {held.get(order_id) or 0}, "
                f"movements leave {net.get(order_id) or 0} reserved"
            )
    return problems


def _refunds(session: Session) -> list[str]:
    problems = []
    events = Counter(
        session.execute(
            select(OutboxEvent.id).where(OutboxEvent.type == "refund_request")
        ).scalars()
    )
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for refund in session.execute(select(Refund)).scalars():
        totals[refund.order_id] += Decimal(refund.amount)
        if events[refund.id] != 1:
            problems.append(
                f"refund {refund.id} has {events[refund.id]} refund_request events, not 1"
            )
    refund_ids = set(session.execute(select(Refund.id)).scalars())
    problems += [
        f"refund_request event {i} has no refund row" for i in events if i not in refund_ids
    ]
    for order_id, total in totals.items():
        order = session.get(Order, order_id)
        payment = ((order.document or {}).get("payment") or {}) if order else {}
        paid = (
            Decimal(str(payment.get("amount") or 0))
            if payment.get("status") == "paid"
            else Decimal(0)
        )
        if total > paid:
            problems.append(f"order {order_id}: refunded {total}, more than the {paid} paid")
        final = order is not None and order.stage in FINAL_STAGES
        if final and order.refund_amount is not None and Decimal(order.refund_amount) != total:
            problems.append(
                f"order {order_id}: shows refund {order.refund_amount}, refund rows sum to {total}"
            )
    return problems
