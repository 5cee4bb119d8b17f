"""Operator and warehouse actions, answered by the order workflow itself (its Temporal updates).

The CLI, the HTTP API and the console all act through `act`: the body uses the API's field
names (SPEC §5.6: `txn`, `decision`, `tracking`, ...), is checked here against the update's
payload model first (so a bad field is named before anything is sent), and then goes to the
workflow as an update. The workflow's validator refuses with its reason, writing nothing to
the history; otherwise the answer is the order's state once it has settled again. There is
no query-then-signal: what the caller is told is what the workflow decided.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from temporalio.client import (
    Client,
    WorkflowFailureError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowUpdateStage,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from models.documents import workflow_id_for
from models.enums import Action
from models.errors import OmsError
from models.payloads import OrderSnapshot, RestockInput, RestockResult
from models.settings import Settings
from workflows.order.actions import ACTIONS, ORDER_ACTIONS, ActionSpec

# How long a caller waits for the order to settle after its action was accepted. Past it the
# answer is still "accepted" (the workflow has taken the action), with the state as it stands.
SETTLE_TIMEOUT = timedelta(seconds=30)


class NotFound(OmsError):
    """No such order (or transfer)."""


class UnknownOrder(NotFound):
    pass


class BadBody(OmsError):
    """The request names a field wrongly: one entry per bad field, by the API's field names."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors


@dataclass
class Answer:
    accepted: bool
    reason: str | None = None  # the workflow's reason when refused
    order: dict[str, Any] | None = None  # the order's new state (as `status --json` names it)


def spec_of(action: str) -> ActionSpec:
    """The registry's action by its name, or BadBody naming the choices."""
    try:
        return ACTIONS[Action(action)]
    except ValueError:
        names = ", ".join(a.name for a in ORDER_ACTIONS)
        raise BadBody([{"field": "action", "message": f"unknown action {action!r}; one of {names}"}]) from None


def payload_for(action: str, body: Any, *, by: str | None = None) -> dict[str, Any]:
    """The update's payload for an API body, or BadBody naming each wrong field."""
    spec = spec_of(action)
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise BadBody([{"field": "body", "message": "must be a JSON object"}])
    to_payload = spec.renamed
    to_api = {v: k for k, v in to_payload.items()}
    errors: list[dict[str, str]] = []
    data: dict[str, Any] = {}
    for key, value in body.items():
        if key in to_api:  # the payload's own name for a field the API spells otherwise
            errors.append({"field": key, "message": f"not a field of this action (the field is {to_api[key]!r})"})
        else:
            data[to_payload.get(key, key)] = value
    if by is not None and "by" in spec.model.model_fields:
        data["by"] = by  # who acted is who the caller is, not what the body says
    parsed = None
    try:
        parsed = spec.model.model_validate(data)
    except ValidationError as exc:
        for e in exc.errors():
            loc = [str(p) for p in e["loc"]] or ["body"]
            message = "not a field of this action" if e["type"] == "extra_forbidden" else e["msg"]
            errors.append({"field": ".".join([to_api.get(loc[0], loc[0]), *loc[1:]]), "message": message})
    if errors or parsed is None:
        raise BadBody(errors)
    return parsed.model_dump(mode="json", exclude_none=True)


async def act(client: Client, order_id: str, action: str, body: Any, *, by: str | None = None) -> Answer:
    """Apply one action to an order, as its workflow decides: accepted with the new state, or refused."""
    payload = payload_for(action, body, by=by)
    return await _update(client, order_id, spec_of(action).update, payload)


async def _update(client: Client, order_id: str, update: str, payload: dict[str, Any]) -> Answer:
    handle = client.get_workflow_handle(workflow_id_for(order_id))
    try:
        started = await handle.start_update(
            update, payload, wait_for_stage=WorkflowUpdateStage.ACCEPTED, result_type=OrderSnapshot
        )
    except WorkflowUpdateFailedError as err:  # refused by the validator: nothing was written
        return Answer(False, _reason(err))
    except RPCError as err:
        return await _closed_or_unknown(client, order_id, err)
    try:
        snapshot = await asyncio.wait_for(started.result(), SETTLE_TIMEOUT.total_seconds())
    except WorkflowUpdateFailedError as err:  # refused on a second look (another action came first)
        return Answer(False, _reason(err))
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        snapshot = await handle.query("state", result_type=OrderSnapshot)
    return Answer(True, None, order_view(snapshot))


def _reason(err: WorkflowUpdateFailedError) -> str:
    cause = err.cause
    return cause.message if isinstance(cause, ApplicationError) else str(cause or err)


async def _closed_or_unknown(client: Client, order_id: str, err: RPCError) -> Answer:
    if err.status != RPCStatusCode.NOT_FOUND:
        raise err
    try:
        description = await client.get_workflow_handle(workflow_id_for(order_id)).describe()
    except RPCError as again:
        if again.status == RPCStatusCode.NOT_FOUND:
            raise UnknownOrder(f"unknown order {order_id!r}") from None
        raise
    status = description.status.name.lower() if description.status else "closed"
    return Answer(False, f"the order is closed ({status})")


def order_view(snapshot: OrderSnapshot) -> dict[str, Any]:
    """The order's state as the workflow answered it, in the names of `status --json`."""
    return {
        "order_id": snapshot.order_id,
        "stage": snapshot.stage,
        "waiting_for": snapshot.waiting_for,
        "stage_since": snapshot.stage_since.isoformat(),
        "flags": list(snapshot.flags),
        "findings": [f.public() for f in snapshot.findings],
        "lines": [
            {
                "line_no": li.line_no,
                "sku": li.sku,
                "qty": li.qty,
                "reserved": li.reserved,
                "shipped": li.shipped,
                "backordered": li.backordered,
                "cancelled": li.cancelled,
            }
            for li in snapshot.lines
        ],
        "shipments": [
            {
                "id": s.id,
                "shipment_no": s.shipment_no,
                "warehouse": s.warehouse,
                "status": s.status,
                "carrier": s.carrier,
                "tracking_no": s.tracking_no,
            }
            for s in snapshot.shipments
        ],
        "refund": (
            {"amount": str(snapshot.refund_amount), "status": snapshot.refund_status}
            if snapshot.refund_amount is not None
            else None
        ),
        "cancel_reason": snapshot.cancel_reason,
        "held_from": snapshot.held_from,
    }


async def transfer_arrived(client: Client, factory: Any, transfer_id: str) -> Answer:
    """The goods of a transfer arrived: told to the order that waits for them."""
    from models.db import transaction
    from models.tables import Transfer

    def lookup() -> tuple[str, str] | None:
        with transaction(factory) as session:
            transfer = session.get(Transfer, transfer_id)
            return (transfer.order_id, transfer.status) if transfer else None

    found = await asyncio.to_thread(lookup)
    if found is None:
        raise NotFound(f"unknown transfer {transfer_id!r}")
    order_id, status = found
    if status != "in_transit":
        return Answer(False, f"transfer {transfer_id} is {status}, not in transit")
    return await act(client, order_id, Action.TRANSFER_ARRIVED, {"transfer_id": transfer_id})


async def restock(
    client: Client, factory: Any, settings: Settings, sku: Any, qty: Any, warehouse: Any = None
) -> list[dict[str, Any]]:
    """Stock in, handed to waiting orders first come first served (RestockWorkflow); the hand-outs."""
    from sqlalchemy import select

    from models.db import transaction
    from models.tables import CatalogRow, WarehouseRow
    from workflows.restock import RestockWorkflow

    errors = []
    if not isinstance(sku, str) or not sku:
        errors.append({"field": "sku", "message": "a SKU is required"})
    if isinstance(qty, bool) or not isinstance(qty, int) or qty <= 0:
        errors.append({"field": "qty", "message": f"must be a positive whole number, not {qty!r}"})
    if warehouse is not None and (not isinstance(warehouse, str) or not warehouse):
        errors.append({"field": "warehouse", "message": "must be a warehouse code"})
    if errors:
        raise BadBody(errors)

    def check() -> str:
        with transaction(factory) as session:
            problems = []
            if session.get(CatalogRow, sku) is None:
                problems.append({"field": "sku", "message": f"unknown SKU {sku!r}"})
            code = warehouse
            if code is None:
                first = session.execute(
                    select(WarehouseRow).order_by(WarehouseRow.priority, WarehouseRow.code)
                ).scalars().first()
                if first is None:
                    problems.append({"field": "warehouse", "message": "no warehouses loaded"})
                code = first.code if first else ""
            elif session.get(WarehouseRow, code) is None:
                problems.append({"field": "warehouse", "message": f"unknown warehouse {code!r}"})
            if problems:
                raise BadBody(problems)
            return code

    code = await asyncio.to_thread(check)
    op = f"restock-{uuid.uuid4().hex[:12]}"
    try:
        result: RestockResult = await client.execute_workflow(
            RestockWorkflow.run,
            RestockInput(sku=sku, warehouse=code, qty=qty, op_key=op),
            id=op,
            task_queue=settings.task_queue,
        )
    except WorkflowFailureError as exc:
        raise BadBody([{"field": "restock", "message": f"failed: {exc.cause}"}]) from exc
    if result.error:
        raise BadBody([{"field": "restock", "message": result.error}])
    return [{**item, "warehouse": code} for item in result.served]
