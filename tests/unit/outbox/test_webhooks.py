"""WebhookSender against a real local HTTP server, and inside a real Temporal activity."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import os
import shutil
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    import httpx
    import pytest
    import structlog.testing
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError
    from temporalio.client import WorkflowFailureError
    from temporalio.common import RetryPolicy
    from temporalio.exceptions import ActivityError, ApplicationError, RetryState
    from temporalio.testing import WorkflowEnvironment
    from temporalio.worker import Worker

    from models.settings import Settings
    from outbox.policy import RETRY_HTTP
    from outbox.webhooks import (
        WebhookConfigError,
        WebhookRetryable,
        WebhookSender,
        check_settings,
        encode_event,
        new_secret,
        parse_secrets,
        sign,
        signed_headers,
    )
    from tests.harness.webhook_receiver import DROP, Slow, WebhookReceiver

SECRET = new_secret()  # made for this test session: no secret lives in the code
CREATED_AT = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)


def new_event(payload: dict | None = None) -> tuple[str, bytes]:
    event_id = str(uuid.uuid4())
    body = encode_event(
        event_id,
        "order.status_changed",
        "ORD-1",
        payload if payload is not None else {"total": Decimal("12.50"), "stage": "paid"},
        CREATED_AT,
    )
    return event_id, body


@pytest.fixture
async def client():
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0)) as http:
        yield http


async def post_once(receiver: WebhookReceiver, http: httpx.AsyncClient, event_id: str, body: bytes):
    sender = WebhookSender(http, receiver.url, SECRET)
    return await sender.post(event_id=event_id, event_type="order.status_changed", body=body)


# --- pure functions -------------------------------------------------------------------


def test_the_signature_is_the_standard_webhooks_v1_hmac_of_id_timestamp_and_body():
    key = b"\x01" * 24
    expected = base64.b64encode(
        hmac.new(key, b"msg_1.1714555800.{}", hashlib.sha256).digest()
    ).decode()
    assert sign("msg_1", 1714555800, b"{}", [key]) == f"v1,{expected}"
    # the reference library computes the same value for the same secret
    secret = "whsec_" + base64.b64encode(key).decode()
    when = datetime.fromtimestamp(1714555800, UTC)
    assert Webhook(secret).sign("msg_1", when, "{}") == f"v1,{expected}"


def test_the_reference_verifier_accepts_our_headers_and_refuses_tampering():
    event_id, body = new_event()
    headers = signed_headers(event_id, "order.status_changed", body, parse_secrets(SECRET))
    verifier = Webhook(SECRET)
    assert verifier.verify(body, headers) == json.loads(body)
    assert headers["X-OMS-Event-Type"] == "order.status_changed"
    assert headers["webhook-id"] == event_id
    with pytest.raises(WebhookVerificationError):
        verifier.verify(body.replace(b"ORD-1", b"ORD-2"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        verifier.verify(body, {**headers, "webhook-id": "another-id"})


def test_a_replayed_request_with_an_old_timestamp_is_rejected_by_the_reference_verifier():
    event_id, body = new_event()
    keys = parse_secrets(SECRET)
    captured = signed_headers(event_id, "t", body, keys, now=time.time() - 6 * 60)
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(SECRET).verify(body, captured)
    # the same event, sent again by the OMS, carries this attempt's time and verifies
    assert Webhook(SECRET).verify(body, signed_headers(event_id, "t", body, keys))


def test_a_rotated_secret_gives_two_signatures_and_either_one_verifies():
    newer, older = new_secret(), SECRET
    event_id, body = new_event()
    headers = signed_headers(event_id, "t", body, parse_secrets(f"{newer},{older}"))
    signatures = headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    assert Webhook(newer).verify(body, headers)
    assert Webhook(older).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "holds no secret"),
        ("oms-dev-secret", "does not start with 'whsec_'"),
        ("whsec_not base64!", "not valid base64"),
        ("whsec_" + base64.b64encode(b"x" * 23).decode(), "has 23 bytes; at least 24"),
    ],
)
def test_a_malformed_secret_is_refused_naming_its_position_not_its_value(value, problem):
    with pytest.raises(WebhookConfigError, match=problem) as caught:
        parse_secrets(f"{SECRET},{value}" if value else value)
    if value:
        assert "secret #2" in str(caught.value)
        assert value not in str(caught.value)


def test_a_url_without_a_secret_is_refused_and_there_is_no_default():
    assert "webhook_secret" not in Settings.model_fields
    assert Settings.model_fields["webhook_secrets"].default is None
    with pytest.raises(WebhookConfigError, match="OMS_WEBHOOK_SECRETS is not"):
        check_settings(Settings(webhook_url="http://127.0.0.1:1/hook"))
    assert check_settings(Settings(webhook_url=None)) == []
    assert len(check_settings(Settings(webhook_url="http://h/", webhook_secrets=SECRET))) == 1


def test_encode_event_is_canonical_and_stable():
    payload = {"b": Decimal("10.10"), "a": "Größe", "when": datetime(2024, 5, 1, 11, 30)}
    body = encode_event("e1", "buyer.message", "ORD-7", payload, CREATED_AT)
    assert body == encode_event("e1", "buyer.message", "ORD-7", dict(payload), CREATED_AT)
    assert body.startswith(b'{"created_at":"2024-05-01T09:30:00+00:00","data":{"a":"Gr')
    assert b" " not in body
    assert "Größe".encode() in body
    document = json.loads(body)
    assert document["data"]["b"] == "10.10"
    assert set(document) == {"id", "type", "order_id", "created_at", "data"}


def test_encode_event_gives_the_same_bytes_for_the_same_instant_in_any_zone():
    in_paris = CREATED_AT.astimezone(timezone(timedelta(hours=2)))
    naive_utc = CREATED_AT.replace(tzinfo=None)  # as SQLite hands it back
    expected = encode_event("e1", "t", "o", {}, CREATED_AT)
    assert encode_event("e1", "t", "o", {}, in_paris) == expected
    assert encode_event("e1", "t", "o", {}, naive_utc) == expected


def test_encode_event_refuses_values_it_cannot_encode_canonically():
    with pytest.raises(TypeError):
        encode_event("e1", "t", "o", {"tags": {"a", "b"}}, CREATED_AT)


# --- one attempt against a real server ------------------------------------------------


async def test_a_2xx_answer_returns_the_status_and_the_receiver_verifies_the_signature(client):
    event_id, body = new_event()
    with WebhookReceiver(SECRET, script={event_id: 202}) as receiver:
        assert await post_once(receiver, client, event_id, body) == 202
    [request] = receiver.received
    assert request.signature_valid, request.verify_error
    assert request.signature == sign(
        event_id, int(request.timestamp or 0), body, parse_secrets(SECRET)
    )
    assert abs(int(request.timestamp or 0) - time.time()) < 60
    assert request.event_id == event_id
    assert request.event_type == "order.status_changed"
    assert request.body == body
    assert receiver.unique_ids == {event_id}


async def test_a_wrong_secret_is_refused_by_the_receiver_and_not_retried(client):
    event_id, body = new_event()
    with (
        WebhookReceiver(new_secret()) as receiver,
        pytest.raises(ApplicationError) as caught,
    ):
        await post_once(receiver, client, event_id, body)
    assert caught.value.type == "WebhookRejected"
    assert [r.signature_valid for r in receiver.received] == [False]
    assert receiver.unique_ids == set()


async def test_a_retried_delivery_sends_the_same_bytes_and_headers(client):
    event_id, body = new_event()
    with WebhookReceiver(SECRET, script={event_id: [500]}) as receiver:
        with pytest.raises(WebhookRetryable):
            await post_once(receiver, client, event_id, body)
        assert await post_once(receiver, client, event_id, body) == 200
    first, second = receiver.received
    assert first.body == second.body == body
    # the same id and body; each attempt is signed at its own time (no replayable capture)
    assert first.signature_valid and second.signature_valid
    assert (first.event_id, first.event_type) == (second.event_id, second.event_type)
    assert receiver.attempts_for(event_id) == 2
    assert receiver.unique_ids == {event_id}
    assert receiver.duplicates == 0


@pytest.mark.parametrize("status", [500, 502, 503, 408, 429])
async def test_server_errors_and_not_now_answers_are_retryable(client, status):
    event_id, body = new_event()
    with (
        WebhookReceiver(SECRET, script={event_id: status}) as receiver,
        pytest.raises(WebhookRetryable) as caught,
    ):
        await post_once(receiver, client, event_id, body)
    assert caught.value.status == status
    assert str(status) in str(caught.value)
    assert f"scripted {status}" in str(caught.value)  # an excerpt of the answer


async def test_a_dropped_connection_is_retryable(client):
    event_id, body = new_event()
    with (
        WebhookReceiver(SECRET, script={event_id: DROP}) as receiver,
        pytest.raises(WebhookRetryable) as caught,
    ):
        await post_once(receiver, client, event_id, body)
    assert caught.value.kind == "RemoteProtocolError"
    assert receiver.attempts_for(event_id) == 1


async def test_a_refused_connection_is_retryable(client):
    with WebhookReceiver(SECRET) as receiver:
        url = receiver.url
    event_id, body = new_event()
    sender = WebhookSender(client, url, SECRET)
    with pytest.raises(WebhookRetryable) as caught:
        await sender.post(event_id=event_id, event_type="t", body=body)
    assert caught.value.kind == "ConnectError"


async def test_a_timeout_is_retryable_and_a_late_acceptance_is_deduplicated_by_id():
    event_id, body = new_event()
    async with httpx.AsyncClient(timeout=httpx.Timeout(0.2)) as impatient:
        with WebhookReceiver(SECRET, script={event_id: [Slow(0.6)]}) as receiver:
            with pytest.raises(WebhookRetryable) as caught:
                await post_once(receiver, impatient, event_id, body)
            assert caught.value.kind == "ReadTimeout"
            # The receiver processed the event although the sender gave up;
            # the retry is a second acceptance of the same id.
            assert await post_once(receiver, impatient, event_id, body) == 200
    assert receiver.unique_ids == {event_id}
    assert receiver.duplicates == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 410, 422])
async def test_other_client_errors_are_rejected_without_retry(client, status):
    event_id, body = new_event()
    with (
        WebhookReceiver(SECRET, script={event_id: status}) as receiver,
        pytest.raises(ApplicationError) as caught,
    ):
        await post_once(receiver, client, event_id, body)
    error = caught.value
    assert error.type == "WebhookRejected"
    assert error.non_retryable
    assert error.details[0] == {"status": status, "event_id": event_id}
    assert receiver.attempts_for(event_id) == 1


async def test_a_rejection_is_logged_as_an_error_for_the_operator(client):
    event_id, body = new_event()
    with (
        WebhookReceiver(SECRET, script={event_id: 422}) as receiver,
        structlog.testing.capture_logs() as logs,
        pytest.raises(ApplicationError),
    ):
        await post_once(receiver, client, event_id, body)
    [entry] = [e for e in logs if e["event"] == "webhook_rejected"]
    assert entry["log_level"] == "error"
    assert (entry["event_id"], entry["status"]) == (event_id, 422)


async def test_the_sender_refuses_an_empty_secret(client):
    with pytest.raises(WebhookConfigError):
        WebhookSender(client, "http://127.0.0.1:1/", "")


def test_retry_http_never_retries_a_rejection():
    assert RETRY_HTTP.non_retryable_error_types == ["WebhookRejected"]
    assert RETRY_HTTP.maximum_attempts == 0


# --- inside a real Temporal activity, on the time-skipping test server ------------------


@dataclass
class PostInput:
    event_id: str
    event_type: str
    body: str


class DeliveryActivities:
    def __init__(self, sender: WebhookSender):
        self._sender = sender

    @activity.defn(name="post_webhook_for_test")
    async def post(self, event: PostInput) -> int:
        return await self._sender.post(
            event_id=event.event_id, event_type=event.event_type, body=event.body.encode("utf-8")
        )


FAST_RETRY_HTTP: RetryPolicy = dataclasses.replace(
    RETRY_HTTP,
    initial_interval=timedelta(milliseconds=50),
    maximum_interval=timedelta(milliseconds=200),
)


@workflow.defn
class PostOneEventWorkflow:
    @workflow.run
    async def run(self, event: PostInput) -> int:
        return await workflow.execute_activity_method(
            DeliveryActivities.post,
            event,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=FAST_RETRY_HTTP,
        )


def temporal_test_server() -> str:
    found = shutil.which("temporal-test-server") or shutil.which(
        "temporal-test-server", path=os.path.dirname(sys.executable)
    )
    if found is None:  # never let the SDK download one
        pytest.fail("temporal-test-server not found on PATH or next to the interpreter")
    return found


@pytest.fixture(scope="module")
async def env():
    environment = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=temporal_test_server()
    )
    try:
        yield environment
    finally:
        await environment.shutdown()


async def run_post_workflow(env: WorkflowEnvironment, receiver: WebhookReceiver, event_id, body):
    task_queue = f"webhooks-{uuid.uuid4()}"
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0)) as http:
        activities = DeliveryActivities(WebhookSender(http, receiver.url, SECRET))
        async with Worker(
            env.client,
            task_queue=task_queue,
            workflows=[PostOneEventWorkflow],
            activities=[activities.post],
        ):
            return await env.client.execute_workflow(
                PostOneEventWorkflow.run,
                PostInput(event_id=event_id, event_type="order.status_changed", body=body.decode()),
                id=f"post-{event_id}",
                task_queue=task_queue,
            )


async def test_temporal_retries_a_500_and_a_dropped_connection_then_delivers_once(env):
    event_id, body = new_event()
    with WebhookReceiver(SECRET, script={event_id: [500, DROP]}) as receiver:
        assert await run_post_workflow(env, receiver, event_id, body) == 200
    assert [r.answer for r in receiver.received] == [500, DROP, 200]
    assert {r.body for r in receiver.received} == {body}
    assert all(r.signature_valid for r in receiver.received)
    assert receiver.unique_ids == {event_id}
    assert receiver.accepted_count(event_id) == 1
    assert receiver.duplicates == 0


async def test_temporal_gives_up_on_a_400_after_exactly_one_attempt(env):
    event_id, body = new_event()
    with (
        WebhookReceiver(SECRET, script={event_id: 400}) as receiver,
        pytest.raises(WorkflowFailureError) as caught,
    ):
        await run_post_workflow(env, receiver, event_id, body)
    activity_error = caught.value.cause
    assert isinstance(activity_error, ActivityError)
    assert activity_error.retry_state == RetryState.NON_RETRYABLE_FAILURE
    rejection = activity_error.cause
    assert isinstance(rejection, ApplicationError)
    assert rejection.type == "WebhookRejected"
    assert rejection.non_retryable
    assert receiver.attempts_for(event_id) == 1
    assert receiver.unique_ids == set()
