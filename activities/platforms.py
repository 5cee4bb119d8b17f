"""The shops' sync activities: a thin adapter over `platforms.sync` (SPEC §3.9).

`PlatformActivities` is built once per worker with the database, the codec key ring and
the settings; its Temporal client is the worker's own (`activity.client()`), used to hand
orders to intake and to send changes to running orders.

Errors: a rate limit or a platform that is down raises a retryable ApplicationError (the
workflow's retry policy backs off); an expired session or a refusal is not an error of the
activity but the shop's state (`token_expired`, `failing`), returned in the result.
"""

from __future__ import annotations

from typing import Any

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from models.db import SessionFactory
from models.documents import OrderDocument, workflow_id_for
from models.errors import ErrorType, application_error
from models.settings import Settings
from platforms.messages import DecryptHeldInput, DecryptHeldResult, WindowInput, WindowResult
from platforms.shops import ShopError
from platforms.sync import Retry, WindowRunner

ORDER_WORKFLOW = "OrderWorkflow"  # by name: activities never import workflows


class PlatformActivities:
    def __init__(
        self,
        factory: SessionFactory,
        settings: Settings,
        ring: Any,
        *,
        http: httpx.Client | None = None,
    ) -> None:
        self.settings = settings
        self.runner = WindowRunner(
            factory=factory,
            ring=ring,
            submit=self._submit,
            temporal=activity.client,
            http=http,
            heartbeat=activity.heartbeat,
        )

    async def _submit(self, document: OrderDocument, *, pii_unavailable: str | None = None) -> str:
        """Intake of one order, as `commands.intake.submit_one` does it: one workflow per
        order id, a resent order `duplicate` (the commands layer sits above this one). With
        `pii_unavailable`, the order starts held for its receiver (`workflows.order.pii_hold`)."""
        from datetime import UTC, datetime

        from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
        from temporalio.exceptions import WorkflowAlreadyStartedError

        from models.payloads import OrderInput

        policy = self.settings.order_policy()
        try:
            await activity.client().start_workflow(
                ORDER_WORKFLOW,
                OrderInput(order=document, policy=policy, submitted_at=datetime.now(UTC),
                           pii_unavailable=pii_unavailable),
                id=workflow_id_for(document.order_id),
                task_queue=self.settings.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            )
        except WorkflowAlreadyStartedError:
            return "duplicate"
        return "started"

    @activity.defn(name="shop_sync_window")
    async def shop_sync_window(self, inp: WindowInput) -> WindowResult:
        """One window of one shop: every order in it handed to intake, then the cursor moves."""
        try:
            return await self.runner.run(inp)
        except Retry as exc:
            raise ApplicationError(
                str(exc), exc.error.details(), type=ErrorType.PLATFORM_UNAVAILABLE.value
            ) from exc
        except ShopError as exc:
            raise application_error(ErrorType.SHOP_UNKNOWN, str(exc)) from exc

    @activity.defn(name="decrypt_held")
    async def decrypt_held(self, inp: DecryptHeldInput) -> DecryptHeldResult:
        """`resume` of an order held `pii_unavailable`: its platform asked again (logged)."""
        try:
            return await self.runner.decrypt_held(inp.order_id)
        except Retry as exc:
            raise ApplicationError(
                str(exc), exc.error.details(), type=ErrorType.PLATFORM_UNAVAILABLE.value
            ) from exc
        except ShopError as exc:
            return DecryptHeldResult(reason=str(exc))

    def all(self) -> list[Any]:
        return [self.shop_sync_window, self.decrypt_held]
