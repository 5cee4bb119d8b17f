"""Drill: the merchant's webhook receiver down for the first 30 s, then up.

A real worker (`python worker.py`) with `OMS_WEBHOOK_URL` and a fresh `whsec_`
secret runs eleven orders on the real dev server: nine shipped to the end, one
cancelled after its release (pick list withdrawn, refund requested), one waiting
for the buyer. For the first 30 s nothing listens on the URL's port (reserved so
that no other socket takes it): every delivery is refused and retried with
backoff. Then the receiver (tests/harness/webhook_receiver.py, verifying each request
with the `standardwebhooks` library) comes up on that port. Every outbox event
must then arrive, signed, exactly once under its id, and the orders be where
they should, their workflows closed or waiting as they should.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from models.tables import OutboxEvent
from outbox.webhooks import new_secret
from tests.harness.documents import numbered_doc
from tests.harness.drills import (
    assert_books_balance,
    db_stages,
    drill_stack,
    signal_all,
    wait_until,
    warehouse_signals,
)
from tests.harness.invariants import delivery_problems, effects_by_order, order_workflow_problems
from tests.harness.stack import OmsStack, write_orders
from tests.harness.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

DOWN_FOR = 30.0
SECRET = new_secret()
SHIPPED = [f"WHD-C{i}" for i in range(9)]
CANCELLED = ["WHD-X0"]
BUYER = ["WHD-B0"]
EXPECTED = {
    **dict.fromkeys(SHIPPED, "completed"),
    **dict.fromkeys(CANCELLED, "cancelled"),
    **dict.fromkeys(BUYER, "awaiting_buyer"),
}


@pytest.fixture
def reserved_port() -> Iterator[socket.socket]:
    """A loopback port bound but not listening: connections to it are refused, and no other
    socket can take it until the receiver does."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock
    finally:
        sock.close()


@pytest.fixture
async def stack(
    dev_env: Any, tmp_path: Path, reserved_port: socket.socket
) -> AsyncIterator[OmsStack]:
    port = reserved_port.getsockname()[1]
    url = f"http://127.0.0.1:{port}/webhook"
    async with drill_stack(
        dev_env, tmp_path / "oms", OMS_WEBHOOK_URL=url, OMS_WEBHOOK_SECRETS=SECRET
    ) as oms:
        yield oms


def outbox(session: Any) -> list[OutboxEvent]:
    events = list(session.execute(select(OutboxEvent).order_by(OutboxEvent.id)).scalars())
    session.expunge_all()
    return events


async def test_every_event_arrives_once_after_the_receiver_was_down_for_30_seconds(
    stack: OmsStack, dev_env: Any, reserved_port: socket.socket, tmp_path: Path
) -> None:
    client = dev_env.client
    await stack.load_sample()
    down_since = time.monotonic()
    docs = [numbered_doc(o, n=700 + i) for i, o in enumerate(SHIPPED + CANCELLED)]
    docs.append(numbered_doc(BUYER[0], n=790, sku="MUG-WHITE", qty=1, unit_price="35.00",
                          shipping_fee="10.00", detail="文三路"))  # fmt: skip
    await stack.ok("submit", str(write_orders(tmp_path / "orders.json", docs)))

    # The orders go on while no event can be delivered.
    released = {**dict.fromkeys(SHIPPED + CANCELLED, "released"), BUYER[0]: "awaiting_buyer"}
    await wait_until(
        lambda: stack.read(db_stages) == released, timeout=60, what="orders released",
        describe=lambda: str(stack.read(db_stages)),
    )  # fmt: skip
    await asyncio.gather(
        *(signal_all(client, warehouse_signals(o, n, ("picked", "packed", "shipped")))
          for n, o in enumerate(SHIPPED)),
        signal_all(client, [(o, "cancel", {"reason": "buyer asked to cancel"}) for o in CANCELLED]),
    )  # fmt: skip
    await wait_until(
        lambda: stack.read(db_stages) == EXPECTED, timeout=60, what="orders at their last stage",
        describe=lambda: str(stack.read(db_stages)),
    )  # fmt: skip
    refused = [e for e in stack.read(outbox) if e.status == "pending" and e.attempts > 0]
    assert refused, "no delivery was attempted while the receiver was down"

    await asyncio.sleep(max(0.0, DOWN_FOR - (time.monotonic() - down_since)))  # the outage
    port = reserved_port.getsockname()[1]
    reserved_port.close()
    with WebhookReceiver(SECRET, port=port) as receiver:

        def all_delivered() -> list[OutboxEvent]:
            events = stack.read(outbox)
            return events if all(e.status == "delivered" for e in events) else []

        events = await wait_until(
            all_delivered, timeout=120, what="every event delivered", interval=0.5,
            describe=lambda: str([(e.id, e.status, e.attempts) for e in stack.read(outbox)
                                  if e.status != "delivered"]),
        )  # fmt: skip
        problems = await order_workflow_problems(
            client, stack.task_queue, EXPECTED, stack.read(db_stages)
        )
        received = receiver.received

    assert problems == []
    assert delivery_problems(events, received) == []
    # Per shipped order: its pick list, the tracking to the platform, the buyer's notice, and a
    # status change for released and for completed, once each. The stages between (picking,
    # packed) are persisted only when the workflow saw their signals in separate tasks, so each
    # of those is there at most once.
    for order_id in SHIPPED:
        kinds = Counter(
            (e.type, (e.payload or {}).get("stage") if e.type == "status_change" else None)
            for e in events if e.order_id == order_id
        )  # fmt: skip
        sure = {("pick_list", None): 1, ("tracking_to_platform", None): 1,
                ("buyer_shipped_notice", None): 1, ("status_change", "released"): 1,
                ("status_change", "completed"): 1}  # fmt: skip
        assert {k: kinds[k] for k in sure} == sure, (order_id, kinds)
        between = {k: n for k, n in kinds.items() if k not in sure}
        assert set(between) <= {("status_change", "picking"), ("status_change", "packed")}, between
        assert all(n == 1 for n in between.values()), (order_id, between)

    effects = stack.read(effects_by_order)
    for order_id, stage in EXPECTED.items():
        want = {
            "pick_list": 0 if order_id in BUYER else 1,
            "reservation": 0 if order_id in BUYER else 1,
            "reserve": 0 if order_id in BUYER else 1,
            "release": 1 if stage == "cancelled" else 0,
            "tracking_to_platform": 1 if stage == "completed" else 0,
            "buyer_shipped_notice": 1 if stage == "completed" else 0,
            "pick_list_withdrawn": 1 if stage == "cancelled" else 0,
            "refund_request": 1 if stage == "cancelled" else 0,
            "refund": 1 if stage == "cancelled" else 0,
            "buyer_message": 1 if order_id in BUYER else 0,
        }
        assert {kind: effects[(order_id, kind)] for kind in want} == want, order_id
    await assert_books_balance(stack)
