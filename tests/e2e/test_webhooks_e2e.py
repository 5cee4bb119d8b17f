"""Outbound webhooks end to end: a real worker posting to a real local receiver.

The worker is built with `Settings(webhook_url=..., webhook_secrets=...)` and one
`httpx.AsyncClient`; orders start with `Settings.order_policy()`, which turns
delivery on. The receiver (`tests/harness/webhook_receiver.py`) verifies every request
with the `standardwebhooks` package, de-duplicates by `webhook-id` and answers
as scripted. A 410 Gone disables the URL until `oms webhooks enable URL` (run as
the real CLI) re-enables it and sends what was held meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal

import httpx
import pytest
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from models.db import transaction
from models.settings import Settings
from outbox.store import endpoints
from outbox.webhooks import new_secret
from tests.harness import ROOT
from tests.harness.documents import HOT, fast_policy, make_order
from tests.harness.flow import Flow, running_flow
from tests.harness.reference import load_sample
from tests.harness.webhook_receiver import Answer, WebhookReceiver

pytestmark = pytest.mark.e2e

SECRET = new_secret()  # made for this test session


@asynccontextmanager
async def webhook_flow(
    env: WorkflowEnvironment, db_url: str, script: Callable[[str, int], Answer]
) -> AsyncIterator[tuple[Flow, WebhookReceiver, Settings]]:
    policy = fast_policy()
    policy.approval.threshold = Decimal("50.00")  # every order here is flagged for approval
    with WebhookReceiver(SECRET, script=script) as receiver:
        settings = Settings(
            webhook_url=receiver.url,
            webhook_secrets=SecretStr(SECRET),
            webhook_timeout=5.0,
            policy=policy,
            database_url=db_url,
        )
        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(settings.webhook_timeout)) as http,
            running_flow(env.client, db_url, settings, http) as flow,
        ):
            load_sample(flow.factory, {(HOT, "HZ"): 5})
            yield flow, receiver, settings


async def run_flagged_cod_order(flow: Flow, settings: Settings, order_id: str) -> None:
    """A cash-on-delivery order: the buyer confirms, an operator approves, the warehouse ships."""
    policy = settings.order_policy()
    assert policy.webhook_enabled
    await flow.start(make_order(order_id, [(HOT, 2)], payment="cod"), policy)
    await flow.stage(order_id, "awaiting_buyer")
    await flow.signal(
        order_id, "buyer_confirmed", {"note": "buyer confirmed cash on delivery by phone"}
    )
    state = await flow.stage(order_id, "awaiting_approval")
    assert "needs_approval" in state.flags
    await flow.signal(order_id, "approve", {"note": "known buyer", "by": "ops"})
    await flow.stage(order_id, "released")
    await flow.ship_all(order_id)
    assert (await flow.finish(order_id)).stage == "completed"
    flow.assert_settled(order_id)


def first_attempt_fails_for(suffix: str, answer: int) -> Callable[[str, int], Answer]:
    return lambda event_id, attempt: answer if event_id.endswith(suffix) and attempt == 1 else 200


def always_fails_for(suffix: str, answer: int) -> Callable[[str, int], Answer]:
    return lambda event_id, attempt: answer if event_id.endswith(suffix) else 200


async def test_every_event_of_an_approved_order_arrives_signed_exactly_once(
    dev_env: WorkflowEnvironment, sqlite_url: str
) -> None:
    script = first_attempt_fails_for(":tracking_to_platform", 500)
    async with webhook_flow(dev_env, sqlite_url, script) as (flow, receiver, settings):
        order_id = flow.oid("WB")
        await run_flagged_cod_order(flow, settings, order_id)
        events = flow.events(order_id)

    assert receiver.received and all(r.signature_valid for r in receiver.received)
    assert receiver.duplicates == 0
    # Every outbox event was delivered, once, under its own id.
    assert {e["status"] for e in events} == {"delivered"}
    assert receiver.unique_ids == {e["id"] for e in events}
    assert all(receiver.accepted_count(e["id"]) == 1 for e in events)
    types = {e["type"] for e in events}
    assert {
        "status_change",
        "buyer_message",
        "pick_list",
        "tracking_to_platform",
        "buyer_shipped_notice",
    } <= types

    (tracking,) = [e for e in events if e["type"] == "tracking_to_platform"]
    assert receiver.attempts_for(tracking["id"]) == 2  # a scripted 500, then accepted
    assert [r.answer for r in receiver.received if r.event_id == tracking["id"]] == [500, 200]
    accepted = next(r for r in receiver.received if r.event_id == tracking["id"] and r.accepted)
    body = json.loads(accepted.body)
    assert (body["id"], body["type"], body["order_id"]) == (
        tracking["id"],
        "tracking_to_platform",
        order_id,
    )
    assert (
        body["data"]["tracking_no"] == tracking["payload"]["tracking_no"]
        and body["data"]["carrier"] == "SF"
    )
    assert accepted.event_type == "tracking_to_platform"

    stages = [
        json.loads(r.body)["data"]["stage"]
        for r in receiver.received
        if r.event_type == "status_change"
    ]
    assert {"awaiting_buyer", "awaiting_approval", "released", "completed"} <= set(stages)


@pytest.mark.postgres
async def test_an_event_the_receiver_rejects_is_marked_failed_and_the_order_still_completes(
    dev_env: WorkflowEnvironment, pg_url: str
) -> None:
    script = always_fails_for(":buyer_shipped_notice", 400)
    async with webhook_flow(dev_env, pg_url, script) as (flow, receiver, settings):
        order_id = flow.oid("WF")
        await run_flagged_cod_order(flow, settings, order_id)
        events = flow.events(order_id)
        status = flow.status(order_id)

    (failed,) = [e for e in events if e["status"] == "failed"]
    assert failed["type"] == "buyer_shipped_notice" and failed["attempts"] == 1
    assert receiver.attempts_for(failed["id"]) == 1  # a 400 is never retried
    assert failed["id"] not in receiver.unique_ids
    assert {e["status"] for e in events if e is not failed} == {"delivered"}
    assert receiver.duplicates == 0

    assert status is not None and status["stage"] == "completed"
    assert "webhook_failed" in status["flags"]
    assert any(e["type"] == "webhook_failed" and "400" in e["error"] for e in status["events"])


async def test_a_cancelled_order_delivers_its_refund_request_and_cancel_notice(
    dev_env: WorkflowEnvironment, sqlite_url: str
) -> None:
    script = first_attempt_fails_for(":refund", 503)
    async with webhook_flow(dev_env, sqlite_url, script) as (flow, receiver, settings):
        load_sample(flow.factory, {(HOT, "HZ"): 1})
        order_id = flow.oid("WC")
        await flow.start(make_order(order_id, [(HOT, 3)]), settings.order_policy())
        await flow.stage(order_id, "backordered")
        await flow.signal(order_id, "cancel", {"reason": "buyer found it elsewhere"})
        assert (await flow.finish(order_id)).stage == "cancelled"
        flow.assert_settled(order_id)
        events = flow.events(order_id)

    assert {e["status"] for e in events} == {"delivered"}
    assert receiver.duplicates == 0 and all(r.signature_valid for r in receiver.received)
    by_type = {e["type"]: e for e in events}
    refund = by_type["refund_request"]
    assert refund["payload"]["amount"] == "105.00"
    assert [r.answer for r in receiver.received if r.event_id == refund["id"]] == [503, 200]
    notice = by_type["buyer_cancel_notice"]
    assert receiver.accepted_count(notice["id"]) == 1
    body = json.loads(next(r.body for r in receiver.received if r.event_id == notice["id"]))
    assert body["data"] == {"reason": "buyer found it elsewhere"}


async def oms(settings: Settings, *args: str) -> tuple[int, str, str]:
    """`python starter.py ARGS` against this test's database and webhook settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMS_", "TEMPORAL_"))}
    env.update(
        OMS_DATABASE_URL=str(settings.database_url),
        OMS_WEBHOOK_URL=str(settings.webhook_url),
        OMS_WEBHOOK_SECRETS=SECRET,
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "starter.py"), *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_a_410_gone_disables_the_url_until_an_operator_re_enables_it(
    dev_env: WorkflowEnvironment, sqlite_url: str
) -> None:
    gone = {"on": True}

    def script(event_id: str, attempt: int) -> Answer:
        return 410 if gone["on"] and event_id.endswith(":tracking_to_platform") else 200

    async with webhook_flow(dev_env, sqlite_url, script) as (flow, receiver, settings):
        first = flow.oid("G1")
        await run_flagged_cod_order(flow, settings, first)
        with transaction(flow.factory) as session:
            [endpoint] = endpoints(session)
            assert (endpoint.url, endpoint.status) == (receiver.url, "disabled")
            assert endpoint.disabled_by_event and endpoint.disabled_by_event.startswith(first)
        events = {e["id"]: e for e in flow.events(first)}
        gone_event = events[endpoint.disabled_by_event]
        assert gone_event["status"] == "failed" and receiver.attempts_for(gone_event["id"]) == 1
        held_first = [e for e in events.values() if e["status"] == "held"]

        # Later orders are not blocked, and nothing is sent to the URL meanwhile.
        sent_before = len(receiver.received)
        second = flow.oid("G2")
        await run_flagged_cod_order(flow, settings, second)
        assert len(receiver.received) == sent_before
        held = [e for e in flow.events() if e["status"] == "held"]
        assert {e["id"] for e in flow.events(second)} <= {e["id"] for e in held}
        assert len(held) == len(held_first) + len(flow.events(second))
        status = flow.status(second)
        assert status is not None and status["stage"] == "completed"

        code, out, err = await oms(settings, "events")
        assert code == 0 and f"webhook {receiver.url} DISABLED since" in out, out + err
        assert f"oms webhooks enable {receiver.url}" in out

        # The operator re-enables it: what was held is sent, signed, once each.
        gone["on"] = False
        code, out, err = await oms(settings, "webhooks", "enable", receiver.url)
        assert code == 0, out + err
        assert f"held events: {len(held)} delivered, 0 failed, 0 still held" in out
        assert {e["id"] for e in held} <= receiver.unique_ids
        assert all(r.signature_valid for r in receiver.received)
        assert receiver.duplicates == 0
        assert not [e for e in flow.events() if e["status"] == "held"]
        code, out, _ = await oms(settings, "webhooks", "list")
        assert f"{receiver.url}  enabled" in out and "0 event(s) held" in out
        code, _, err = await oms(settings, "webhooks", "enable", receiver.url)
        assert code == 1 and "is not disabled" in err
