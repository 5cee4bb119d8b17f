"""Webhook delivery benchmark against a real local HTTP receiver.

Sends 2,000 events, signed by the Standard Webhooks scheme under two active secrets
(a rotation in progress), through ``WebhookSender`` to a ``WebhookReceiver`` that
verifies each with the ``standardwebhooks`` package and answers 500 to the first attempt of every fifth event, with bounded concurrency
and an in-script retry loop standing in for Temporal's activity retries.

    cd /work/main && .venv/bin/python benchmarks/webhooks.py [--events N] [--concurrency N]
        [--connections N]

``--concurrency`` bounds deliveries in flight (as a worker's activity slots
would); ``--connections`` bounds the shared client's pool. They are separate on
purpose: httpcore's pool gets slower per request as it grows. Measured here with
50 deliveries in flight: about 125-210 events/s through 50 pooled connections,
310-360 through 10. A worker should give its one ``httpx.AsyncClient`` a small
pool.

Exits non-zero if any event is lost or accepted under more than one id.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
import structlog  # noqa: E402
from temporalio.exceptions import ApplicationError  # noqa: E402

from outbox.webhooks import WebhookRetryable, WebhookSender, encode_event, new_secret
from tests.harness.webhook_receiver import WebhookReceiver  # noqa: E402

# Made for this run: the receiver knows the older one only, as during a rotation.
NEW_SECRET, OLD_SECRET = new_secret(), new_secret()
MAX_ATTEMPTS = 10  # far more than the script needs; hitting it counts as a loss


def make_events(count: int) -> list[tuple[str, str, bytes]]:
    created_at = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
    events = []
    for index in range(count):
        event_id = str(uuid.uuid4())
        order_id = f"ORD-{index:05d}"
        payload = {"stage": "paid", "total": Decimal("19.99") + index, "lines": index % 7 + 1}
        body = encode_event(event_id, "order.status_changed", order_id, payload, created_at)
        events.append((event_id, order_id, body))
    return events


async def deliver_all(sender, events, concurrency):
    """Deliver every event, retrying retryable failures immediately (no backoff)."""
    semaphore = asyncio.Semaphore(concurrency)
    attempts: dict[str, int] = {}
    rejected: list[str] = []
    gave_up: list[str] = []

    async def deliver(event_id: str, body: bytes) -> None:
        async with semaphore:
            for attempt in range(1, MAX_ATTEMPTS + 1):
                attempts[event_id] = attempt
                try:
                    await sender.post(
                        event_id=event_id, event_type="order.status_changed", body=body
                    )
                    return
                except WebhookRetryable:
                    continue
                except ApplicationError:
                    rejected.append(event_id)
                    return
            gave_up.append(event_id)

    await asyncio.gather(*(deliver(event_id, body) for event_id, _, body in events))
    return attempts, rejected, gave_up


async def run(count: int, concurrency: int, connections: int) -> int:
    events = make_events(count)
    fail_first = {event_id: [500] for event_id, _, _ in events[::5]}
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    with WebhookReceiver(OLD_SECRET, script=fail_first) as receiver:
        async with httpx.AsyncClient(timeout=httpx.Timeout(10.0), limits=limits) as client:
            sender = WebhookSender(client, receiver.url, f"{NEW_SECRET},{OLD_SECRET}")
            started = time.perf_counter()
            attempts, rejected, gave_up = await deliver_all(sender, events, concurrency)
            elapsed = time.perf_counter() - started
        received = receiver.received
        unique_ids = receiver.unique_ids
        duplicates = receiver.duplicates

    expected_ids = {event_id for event_id, _, _ in events}
    lost = expected_ids - unique_ids
    ids_per_order: dict[str, set[str]] = defaultdict(set)
    header_body_mismatch = 0
    for request in received:
        if not request.accepted:
            continue
        document = json.loads(request.body)
        ids_per_order[document["order_id"]].add(request.event_id)
        header_body_mismatch += document["id"] != request.event_id
    under_two_ids = sum(1 for ids in ids_per_order.values() if len(ids) > 1)
    bad_signatures = sum(1 for request in received if not request.signature_valid)
    total_attempts = sum(attempts.values())

    print("webhook delivery benchmark")
    print("  retries: immediate, in-script (stands in for Temporal's backoff; not timed with it)")
    print(f"  events                      {count}")
    print(f"  deliveries in flight        {concurrency}")
    print(f"  pooled connections          {connections}")
    print(f"  scripted first-attempt 500s {len(fail_first)}")
    print(f"  elapsed                     {elapsed:.2f} s")
    print(f"  events delivered/s          {count / elapsed:.0f}")
    print(f"  HTTP requests/s             {len(received) / elapsed:.0f}")
    print(f"  attempts per event          {total_attempts / count:.3f}")
    print(f"  requests seen by receiver   {len(received)}")
    print(f"  unique events received      {len(unique_ids)}")
    print(f"  duplicates (deduplicated)   {duplicates}")
    print(f"  invalid signatures          {bad_signatures}")
    print(f"  rejected (non-retryable)    {len(rejected)}")
    print(f"  lost events                 {len(lost)}")
    print(f"  delivered under two ids     {under_two_ids}")
    print(f"  header/body id mismatches   {header_body_mismatch}")

    failed = lost or gave_up or rejected or under_two_ids or bad_signatures or header_body_mismatch
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--connections", type=int, default=10)
    args = parser.parse_args()
    # Per-attempt info/warning lines would swamp the figures; errors still show.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    return asyncio.run(run(args.events, args.concurrency, args.connections))


if __name__ == "__main__":
    sys.exit(main())
