"""The worker's workflow runner: the SDK's sandbox, without its per-payload context trips.

`ContextFreeRunner` is used only when the data converter gives the same bytes whatever
the serialization context (`context_free`); the workflow code itself still runs in the
sandbox, with its restrictions.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence

from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import PayloadCodec
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities.runtime import ContextFreeRunner, context_free, workflow_runner
from tests.sandbox_probe import SandboxProbe


class _Identity(PayloadCodec):
    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(payloads)


def test_our_converter_is_context_free_and_gets_the_lighter_runner():
    assert context_free(pydantic_data_converter)
    assert isinstance(workflow_runner(pydantic_data_converter), ContextFreeRunner)


def test_a_converter_with_a_codec_keeps_the_plain_sandbox():
    # A codec may encrypt per workflow or per activity: its context must be asked for.
    with_codec = dataclasses.replace(pydantic_data_converter, payload_codec=_Identity())
    assert not context_free(with_codec)
    assert isinstance(workflow_runner(with_codec), SandboxedWorkflowRunner)


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
