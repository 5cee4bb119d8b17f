"""The worker's workflow runner: the SDK's sandbox, without its per-payload context trips.

`ContextFreeRunner` is used when the data converter gives the same bytes whatever the
serialization context (`context_free`): ours does, payload codec included, since the codec
ignores the context and runs in the worker, outside the sandbox. The workflow code itself
still runs in the sandbox, with its restrictions.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Sequence

from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import PayloadCodec, SerializationContext, WithSerializationContext
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from runtime.codec import AesGcmCodec
from runtime.worker import ContextFreeRunner, context_free, workflow_runner
from tests.harness.codec_keys import converter
from tests.unit.runtime.sandbox_probe import SandboxProbe


class _PerWorkflowCodec(PayloadCodec, WithSerializationContext):
    """A codec that would seal per workflow (e.g. a key per tenant): it takes the context."""

    def __init__(self, context: SerializationContext | None = None) -> None:
        self.context = context

    def with_context(self, context: SerializationContext) -> _PerWorkflowCodec:
        return _PerWorkflowCodec(context)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(payloads)


class _Recording(PayloadCodec):
    """Our codec, noting where each call runs: in the sandbox or not, on which thread."""

    def __init__(self, inner: PayloadCodec) -> None:
        self.inner = inner
        self.calls: list[tuple[bool, int]] = []

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        self.calls.append((workflow.unsafe.in_sandbox(), threading.get_ident()))
        return await self.inner.encode(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        self.calls.append((workflow.unsafe.in_sandbox(), threading.get_ident()))
        return await self.inner.decode(payloads)


def test_our_converter_with_its_codec_is_context_free_and_gets_the_lighter_runner():
    ours = converter()
    assert isinstance(ours.payload_codec, AesGcmCodec)
    assert not isinstance(ours.payload_codec, WithSerializationContext)
    assert context_free(ours)
    assert isinstance(workflow_runner(ours), ContextFreeRunner)
    assert context_free(pydantic_data_converter)


def test_a_codec_that_takes_the_serialization_context_keeps_the_plain_sandbox():
    # Its bytes may differ per workflow or activity: the context must be asked for.
    per_workflow = dataclasses.replace(pydantic_data_converter, payload_codec=_PerWorkflowCodec())
    assert not context_free(per_workflow)
    assert isinstance(workflow_runner(per_workflow), SandboxedWorkflowRunner)


async def test_the_codec_runs_in_the_worker_outside_the_sandbox(ts_env: WorkflowEnvironment):
    inner = converter().payload_codec
    assert inner is not None
    recording = _Recording(inner)
    client = Client(
        ts_env.client.service_client,
        namespace=ts_env.client.namespace,
        data_converter=dataclasses.replace(converter(), payload_codec=recording),
    )
    task_queue = f"probe-{uuid.uuid4()}"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[SandboxProbe],
        workflow_runner=workflow_runner(client.data_converter),
    ) as worker:
        assert isinstance(worker._workflow_worker._workflow_runner, ContextFreeRunner)  # noqa: SLF001
        result = await client.execute_workflow(
            SandboxProbe.run, id=f"probe-{uuid.uuid4()}", task_queue=task_queue
        )
    assert result == "RestrictedWorkflowAccessError"
    assert recording.calls, "the codec was never called"
    assert not any(in_sandbox for in_sandbox, _ in recording.calls)
    # all on the event loop's thread: workflow code runs on the workflow task threads
    assert {thread for _, thread in recording.calls} == {threading.get_ident()}


async def test_workflow_code_still_runs_in_the_sandbox(ts_env: WorkflowEnvironment):
    task_queue = f"probe-{uuid.uuid4()}"
    async with Worker(
        ts_env.client,
        task_queue=task_queue,
        workflows=[SandboxProbe],
        workflow_runner=workflow_runner(ts_env.client.data_converter),
    ):
        refused = await ts_env.client.execute_workflow(
            SandboxProbe.run, id=f"probe-{uuid.uuid4()}", task_queue=task_queue
        )
    assert refused == "RestrictedWorkflowAccessError"
