"""RestockWorkflow: stock in, handed out first come first served, then each served order told.

The ledger step (stock in + FIFO hand-out) is one idempotent transaction; the
signals to the served orders follow durably from the workflow, so a crash
between the two can never leave an order waiting for stock it already holds.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.inventory import InventoryActivities
    from models.documents import workflow_id_for
    from models.enums import SignalName
    from models.payloads import RestockInput, RestockResult
    from workflows.inputs import decode_input
    from workflows.order import RETRY_DB


@workflow.defn(name="RestockWorkflow")
class RestockWorkflow:
    @workflow.run
    async def run(self, raw: RawValue = None) -> RestockResult:  # type: ignore[assignment]
        # Decoded here: an input that is no restock fails the workflow naming the field
        # (`workflows.inputs`), instead of failing its first task for ever.
        inp = decode_input(raw, RestockInput)
        try:
            result: RestockResult = await workflow.execute_activity_method(
                InventoryActivities.restock,
                inp,
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=RETRY_DB,
            )
        except ActivityError as err:
            # A business refusal (unknown SKU or warehouse): reported, never a failed workflow.
            cause = err.__cause__
            return RestockResult(error=cause.message if isinstance(cause, ApplicationError) else str(err))
        for item in result.served:
            handle = workflow.get_external_workflow_handle(workflow_id_for(item["order_id"]))
            try:
                await handle.signal(SignalName.RESTOCK_ARRIVED, item)
            except Exception as exc:  # the order ended meanwhile; its cancel released the stock
                workflow.logger.warning("could not signal %s: %s", item["order_id"], exc)
        return result
