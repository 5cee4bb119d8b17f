"""A workflow started by hand with an input that is no order ends at once with the field named.

The OMS starts orders only from checked documents, but an operator can start `OrderWorkflow` or
`RestockWorkflow` from the Temporal UI or `temporal workflow start` with anything. An input the
workflow cannot decode would fail every workflow task and be retried for ever; instead the
workflow fails at once, its failure naming the field (and never echoing the value).
"""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import WorkflowFailureError

from tests.harness.shop import running_shop


@pytest.mark.parametrize(
    ("workflow", "arg", "field"),
    [
        ("OrderWorkflow", {"order": {"order_id": "X"}, "policy": {}}, "order.lines"),
        ("OrderWorkflow", {"order": "13800138000 张三"}, "order"),
        ("OrderWorkflow", [1, 2, 3], "input"),
        ("OrderWorkflow", None, "input"),  # started with no argument at all
        ("RestockWorkflow", {"sku": 5}, "sku"),
    ],
)
async def test_an_input_that_is_no_order_fails_the_workflow_at_once_naming_the_field(
    ts_env, sqlite_url, workflow, arg, field
):
    async with running_shop(ts_env, sqlite_url) as shop:
        args = [] if arg is None else [arg]
        handle = await ts_env.client.start_workflow(
            workflow, args=args, id=f"bad-input-{uuid.uuid4().hex[:8]}", task_queue=shop.task_queue
        )
        with pytest.raises(WorkflowFailureError) as raised:
            await handle.result()
        cause = raised.value.cause
        message = str(getattr(cause, "message", cause))
        prefix, _, problems = message.partition(": ")
        assert prefix.startswith("the input is not a valid "), message
        assert field in [problem.split(": ")[0] for problem in problems.split("; ")], message
        assert getattr(cause, "type", None) == "InvalidInput" and cause.non_retryable
        assert "13800138000" not in message and "张三" not in message
        history = await handle.fetch_history()
        failed_tasks = [e for e in history.events if e.HasField("workflow_task_failed_event_attributes")]
        assert failed_tasks == []
