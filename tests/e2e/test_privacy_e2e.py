"""What the Temporal server holds of a buyer, on the real dev server: ciphertext only.

The worker is `python worker.py` and every action the `starter.py` CLI, as an operator
runs them (`tests/e2e_helpers.OmsStack`). The server's view is read the way anyone with
access to it could: `temporal workflow show --output json` and `temporal workflow
describe --output json`, without a codec, every payload's data base64-decoded and
searched for the buyer's name, phone numbers and address details.

Key rotation: orders started under key 1 finish under key 2, and their histories,
which then hold payloads under both, replay and decode; a payload under a key that is
missing from a worker's ring fails that workflow task, which the server retries until
a worker with the key takes it, with nothing lost.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from models.settings import Settings
from models.tables import Order
from runtime.codec import KEY_ID_METADATA, CodecKeyMissing, new_key
from runtime.temporal import data_converter
from tests.conftest import binary
from tests.harness.codec_keys import converter
from tests.harness.documents import numbered_doc
from tests.harness.payload_walk import decode_all, payloads
from tests.harness.stack import OmsStack, write_orders
from workflows.order import OrderWorkflow

pytestmark = pytest.mark.e2e

NAME = "欧阳明月"
PHONE = "13987654321"
NEW_PHONE = "13600001111"
VAGUE = "南京东路步行街"  # no door number: the buyer is asked
DETAIL = "南京东路888号7幢1203室"
SDK_PLAINTEXT = {
    # the SDK's own markers: a patch id, a local activity's id, type and attempt
    "/events[]/markerRecordedEventAttributes/details/patch-data/payloads[]",
    "/events[]/markerRecordedEventAttributes/details/data/payloads[]",
}


def sdk_bookkeeping(where: str) -> bool:
    return where in SDK_PLAINTEXT or "/searchAttributes/" in where


NEEDLES = [NAME, PHONE, NEW_PHONE, VAGUE, DETAIL, "888号7幢1203室"]


def buyer_order(order_id: str, *, detail: str) -> dict[str, Any]:
    doc = numbered_doc(order_id, province="上海市", city="上海市", district="黄浦区", postal_code="200001")
    doc["buyer"] = {"name": NAME, "phone": PHONE, "id": f"buyer-{order_id}"}
    doc["address"]["detail"] = detail
    doc["remarks"] = f"到了请打{PHONE}"
    return doc


def temporal_json(target: str, *args: str) -> Any:
    """A `temporal` CLI command's JSON output, as anyone with server access reads it: no codec."""
    done = subprocess.run(
        [binary("temporal"), *args, "--address", target, "--output", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


def json_payloads(value: Any, path: str = "") -> list[tuple[str, dict[str, bytes], bytes]]:
    """(where, metadata, data) of every payload in the CLI's JSON (payloads print as
    {"metadata": {k: base64}, "data": base64})."""
    found: list[tuple[str, dict[str, bytes], bytes]] = []
    if isinstance(value, dict):
        meta = value.get("metadata")
        if isinstance(meta, dict) and ("data" in value or "encoding" in meta):
            decoded = {k: base64.b64decode(v) for k, v in meta.items()}
            found.append((path, decoded, base64.b64decode(value.get("data") or "")))
        for key, item in value.items():
            if key != "metadata":
                found.extend(json_payloads(item, f"{path}/{key}"))
    elif isinstance(value, list):
        for n, item in enumerate(value):
            found.extend(json_payloads(item, f"{path}[{n}]"))
    return found


def pii_in(text: str) -> list[str]:
    return [needle for needle in NEEDLES if needle in text]


async def run_buyer_path(stack: OmsStack, order_id: str) -> None:
    """A vague address: the buyer is asked, a clerk confirms the corrections, the warehouse ships."""
    await stack.wait_for_stage(order_id, "awaiting_buyer")
    await stack.ok("confirm", order_id, "--phone", NEW_PHONE, "--detail", DETAIL, "--note", f"买家{NAME}来电确认")
    await stack.wait_for_stage(order_id, "released")
    await ship(stack, order_id)


async def ship(stack: OmsStack, order_id: str) -> None:
    await stack.ok("picked", order_id)
    await stack.ok("packed", order_id)
    await stack.ok("shipped", order_id, "--carrier", "SF", "--tracking", f"SF{time.time_ns() % 10**10}")
    await stack.wait_for_stage(order_id, "completed")


@pytest.fixture
async def stack(dev_env: WorkflowEnvironment, tmp_path: Path):
    oms = OmsStack.for_env(dev_env, tmp_path / "oms")
    try:
        yield oms
    finally:
        oms.close()


async def test_the_server_holds_no_buyer_name_phone_or_address_detail(
    dev_env: WorkflowEnvironment, stack: OmsStack, tmp_path: Path
) -> None:
    await stack.start_worker()
    await stack.load_sample()
    tag = stack.task_queue[-6:]
    clean, asked = f"PII-CLEAN-{tag}", f"PII-ASKED-{tag}"
    orders = write_orders(
        tmp_path / "orders.json",
        [buyer_order(clean, detail=DETAIL), buyer_order(asked, detail=VAGUE)],
    )
    await stack.ok("submit", str(orders))
    await stack.wait_for_stage(clean, "released")
    await ship(stack, clean)
    await run_buyer_path(stack, asked)

    for order_id in (clean, asked):
        workflow_id = f"order-{order_id}"
        history = temporal_json(stack.target, "workflow", "show", "-w", workflow_id)
        found = json_payloads(history)
        plaintext: set[str] = set()
        assert len(found) > 10, "the history's payloads were not found in the CLI's output"
        for where, meta, data in found:
            text = data.decode("utf-8", errors="replace")
            assert not pii_in(text), (order_id, where, pii_in(text))
            if meta.get("encoding") != b"binary/encrypted":
                plaintext.add(re.sub(r"\[\d+\]", "[]", where))
            else:
                assert meta.get(KEY_ID_METADATA), where
        # Plaintext only where the SDK writes its own bookkeeping (patch ids, a local
        # activity's type and attempt: no value of ours) and the search attributes.
        assert all(sdk_bookkeeping(w) for w in plaintext), sorted(plaintext)
        assert not pii_in(json.dumps(history, ensure_ascii=False)), "in a failure message?"

        described = temporal_json(stack.target, "workflow", "describe", "-w", workflow_id)
        assert not pii_in(json.dumps(described, ensure_ascii=False))
        attributes = json_payloads(described["workflowExecutionInfo"]["searchAttributes"])
        names = {where.rsplit("/", 1)[-1] for where, _, _ in attributes}
        assert {"OrderStage", "OrderSkus", "Platform"} <= names
        for where, meta, data in attributes:
            assert meta.get("encoding") == b"json/plain", where  # search attributes: plaintext
            assert not pii_in(data.decode()), (where, data)

    # The control: the same history, decoded with the key ring, holds the buyer as submitted.
    decoded = await dev_env.client.get_workflow_handle(f"order-{asked}").fetch_history()
    codec = converter().payload_codec
    assert codec is not None
    for event in decoded.events:
        await decode_all(event, codec)
    plain = b"".join(p.data for event in decoded.events for p in payloads(event)).decode(errors="replace")
    assert NAME in plain and PHONE in plain and DETAIL in plain and NEW_PHONE in plain

    # The OMS's own database: the order row keeps the real values for the warehouse; the
    # timeline and the finding messages beside it mask them.
    status = await stack.status(asked)
    assert status["events"] and status["findings"] is not None
    timeline = json.dumps(status["events"], ensure_ascii=False)
    assert not [n for n in (PHONE, NEW_PHONE, VAGUE, DETAIL) if n in timeline], timeline


def ring_text(*keys: Any) -> str:
    return ",".join(k.text() for k in keys)


def client_with(dev_env: WorkflowEnvironment, *keys: Any) -> Client:
    settings = Settings(codec_keys=SecretStr(ring_text(*keys)))
    return Client(
        dev_env.client.service_client,
        namespace=dev_env.client.namespace,
        data_converter=data_converter(settings),
    )


async def key_ids(client: Client, workflow_id: str) -> set[str]:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return {
        p.metadata[KEY_ID_METADATA].decode()
        for event in history.events
        for p in payloads(event)
        if KEY_ID_METADATA in p.metadata
    }


async def test_orders_started_under_key_1_finish_under_key_2_and_their_histories_decode(
    dev_env: WorkflowEnvironment, stack: OmsStack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    k1 = new_key()
    k2 = new_key([k1.id])
    stack.policy_env = {**stack.policy_env, "OMS_CODEC_KEYS": ring_text(k1)}
    await stack.start_worker()
    await stack.load_sample()
    tag = stack.task_queue[-6:]
    asked = f"ROT-{tag}"
    await stack.ok("submit", str(write_orders(tmp_path / "o.json", [buyer_order(asked, detail=VAGUE)])))
    await stack.wait_for_stage(asked, "awaiting_buyer")

    # The rotation: k2 first, k1 kept; worker and CLI restart with the new ring.
    stack.kill_worker()
    stack.policy_env = {**stack.policy_env, "OMS_CODEC_KEYS": ring_text(k2, k1)}
    await stack.start_worker()
    await run_buyer_path(stack, asked)

    rotated = client_with(dev_env, k2, k1)
    workflow_id = f"order-{asked}"
    assert await key_ids(rotated, workflow_id) == {k1.id, k2.id}
    history = await rotated.get_workflow_handle(workflow_id).fetch_history()
    result = await Replayer(
        workflows=[OrderWorkflow], data_converter=rotated.data_converter
    ).replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
    outcome = await rotated.get_workflow_handle_for(OrderWorkflow.run, workflow_id).result()
    assert outcome.stage == "completed"

    # Without k1 the old part of the history cannot be read, and the error says which key.
    # (The failure itself is sealed too, "Encoded failure"; the worker's log names the cause.)
    with caplog.at_level(logging.ERROR, logger="temporalio.worker._workflow"):
        without_k1 = await Replayer(
            workflows=[OrderWorkflow], data_converter=client_with(dev_env, k2).data_converter
        ).replay_workflow(history, raise_on_replay_failure=False)
    assert without_k1.replay_failure is not None
    causes = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert any(isinstance(c, CodecKeyMissing) and c.key_id == k1.id for c in causes), causes
    assert any(f"codec key {k1.id!r}" in str(c) for c in causes)


async def test_a_payload_under_a_missing_key_retries_until_the_key_is_back(
    dev_env: WorkflowEnvironment, stack: OmsStack, tmp_path: Path
) -> None:
    k1 = new_key()
    k2 = new_key([k1.id])
    stack.policy_env = {**stack.policy_env, "OMS_CODEC_KEYS": ring_text(k1)}
    await stack.start_worker()
    await stack.load_sample()
    asked = f"MISS-{stack.task_queue[-6:]}"
    await stack.ok("submit", str(write_orders(tmp_path / "o.json", [buyer_order(asked, detail=VAGUE)])))
    await stack.wait_for_stage(asked, "awaiting_buyer")

    # A process that already seals with k2 (rotated too early) confirms the order; this
    # worker only knows k1.
    newer = client_with(dev_env, k2, k1)
    await newer.get_workflow_handle(f"order-{asked}").signal(
        "buyer_confirmed", {"phone": NEW_PHONE, "detail": DETAIL, "note": "confirmed by phone"}
    )
    deadline = time.monotonic() + 60
    while k2.id not in stack.worker_log() and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    log = stack.worker_log()
    assert f"payload encrypted with codec key {k2.id!r}, which is not in this process's key ring" in log
    description = await newer.get_workflow_handle(f"order-{asked}").describe()
    assert description.status is not None and description.status.name == "RUNNING"
    assert (await stack.status(asked))["stage"] == "awaiting_buyer"  # waits; nothing lost, nothing failed

    # The key comes back: the retried workflow task decodes the signal and the order goes on.
    stack.kill_worker()
    stack.policy_env = {**stack.policy_env, "OMS_CODEC_KEYS": ring_text(k2, k1)}
    await stack.start_worker()
    status = await stack.wait_for_stage(asked, "released", timeout=90)
    assert any(e["type"] == "correction" for e in status["events"])
    order = stack.read(lambda session: session.get(Order, asked).document)
    assert order["address"]["detail"] == DETAIL and order["buyer"]["phone"] == NEW_PHONE
