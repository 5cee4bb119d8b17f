"""The clerk's desk at volume (issue 21): bulk actions and paste-to-fill, in the API and the console.

- `POST /v1/orders/actions/{action}`: one action for up to 500 orders. Each order gets its own
  update, and its own answer (accepted with its stage, or refused with the workflow's reason):
  one refusal never stops the others. At most `BULK_CONCURRENCY` updates are in flight at
  once per request, so a bulk of 500 neither floods Temporal nor starves the single actions
  of other clerks.
- `POST /v1/addresses/parse`: a buyer's free-text reply split into the confirm form's fields
  (`intake.parse`); nothing is saved, nothing is logged.
- The console's side: `POST /orders/{id}/parse` fills the confirm form from its paste box
  (a button with `formaction`, so it works without JavaScript), and `POST /bulk/{action}`
  applies a bulk action to the rows ticked in the queue and lists each order's outcome.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from temporalio.service import RPCError

from models.enums import Action
from service.deps import ApiError, Services, allow, forbid_unless, services
from service.keys import Principal
from service.schemas import ActionBody, ErrorBody, OrderAction
from workflows.order.actions import ACTIONS, ActionSpec, api_fields

MAX_BULK = 500
BULK_CONCURRENCY = 8  # updates in flight per bulk request (benchmarks/bulk.py: 32 slowed other orders 5x)
BULK_ACTIONS = ("approve", "reject", "cancel", "resume", "confirm")  # the console's buttons

api = APIRouter(prefix="/v1", responses={
    401: {"model": ErrorBody, "description": "no key, or an unknown or revoked key"},
    403: {"model": ErrorBody, "description": "this key's role may not do this"},
    422: {"model": ErrorBody, "description": "a parameter or body field is not valid"},
})
pages = APIRouter(include_in_schema=False)

OrderId = Annotated[str, Field(min_length=1, max_length=200)]


class BulkBody(ActionBody):
    """The action's own fields (as for one order), and the orders to apply it to."""

    order_ids: list[OrderId] = Field(min_length=1, max_length=MAX_BULK,
                                     description=f"at most {MAX_BULK} order ids, each once")

    @field_validator("order_ids")
    @classmethod
    def _each_once(cls, order_ids: list[str]) -> list[str]:
        seen: set[str] = set()
        for order_id in order_ids:
            if order_id in seen:
                raise ValueError(f"{order_id!r} is listed twice")
            seen.add(order_id)
        return order_ids


class BulkResult(BaseModel):
    order_id: str
    accepted: bool
    reason: str | None = None
    stage: str | None = None


class BulkResponse(BaseModel):
    results: list[BulkResult]


class ParseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=2000, description="the buyer's reply, as pasted")


class ParsedAddress(BaseModel):
    name: str | None
    phone: str | None
    province: str | None
    city: str | None
    district: str | None
    detail: str | None
    postal_code: str | None
    confidence: float = Field(description="0..1: how much was found, and how surely")
    unparsed: str = Field(description="what fitted no field (nothing the buyer wrote is dropped)")


# --------------------------------------------------------------------- bulk


async def bulk_act(svc: Services, action: ActionSpec, order_ids: list[str], payload: dict[str, Any],
                   principal: Principal) -> list[dict[str, Any]]:
    """Each order its own update, at most BULK_CONCURRENCY at once; the answers in order."""
    from commands import actions

    gate = asyncio.Semaphore(BULK_CONCURRENCY)

    async def one(order_id: str) -> dict[str, Any]:
        async with gate:
            try:
                answer = await actions.act(svc.client, order_id, action.name, payload, by=principal.name)
            except actions.UnknownOrder:
                return {"order_id": order_id, "accepted": False, "reason": f"unknown order {order_id!r}",
                        "stage": None}
            except actions.BadBody as exc:
                return {"order_id": order_id, "accepted": False, "stage": None,
                        "reason": "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors)}
            except RPCError as exc:
                return {"order_id": order_id, "accepted": False, "stage": None,
                        "reason": f"Temporal did not answer ({exc.message}); try this order again"}
        svc.metrics.action(action.name, answer.accepted)
        return {"order_id": order_id, "accepted": answer.accepted, "reason": answer.reason,
                "stage": (answer.order or {}).get("stage")}

    results = list(await asyncio.gather(*(one(order_id) for order_id in order_ids)))
    unknown_stage = [r["order_id"] for r in results if r["stage"] is None]
    if unknown_stage:  # a refused order's stage, as the database has it
        stages = await run_in_threadpool(svc.read, _stages, unknown_stage)
        for r in results:
            if r["stage"] is None:
                r["stage"] = stages.get(r["order_id"])
    return results


def _stages(session: Any, order_ids: list[str]) -> dict[str, str]:
    from sqlalchemy import select

    from models.tables import Order

    return dict(session.execute(
        select(Order.order_id, Order.stage).where(Order.order_id.in_(order_ids))  # type: ignore[attr-defined]
    ).all())


def _field_errors(exc: ValidationError) -> list[dict[str, str]]:
    return [{"field": ".".join(str(p) for p in e["loc"]) or "body",
             "message": str(e["msg"]).removeprefix("Value error, ")} for e in exc.errors()]


def _unprocessable(errors: list[dict[str, str]]) -> ApiError:
    first = errors[0]
    message = first["message"]
    text = message if message.startswith(first["field"]) else f"{first['field']}: {message}"
    return ApiError(422, text, field=first["field"], errors=errors)


@api.post(
    "/orders/actions/{action}",
    response_model=BulkResponse,
    summary=f"One action for up to {MAX_BULK} orders, each answered by its own workflow",
)
async def bulk_action(
    request: Request,
    body: BulkBody,
    action: OrderAction = Path(description="the action"),
    principal: Principal = Depends(allow("read_orders")),
) -> JSONResponse:
    """`{"order_ids": [...], ...the action's fields}` → one result per order, in order:
    `accepted` with the order's new `stage`, or refused with the workflow's `reason` (and its
    stage). One refusal never stops the others; nothing is applied twice."""
    spec = ACTIONS[Action(action.value)]
    forbid_unless(principal, "warehouse_action" if spec.warehouse else "operator_action")
    fields = ActionBody.model_validate(body.model_dump(exclude={"order_ids"}, exclude_none=True))
    payload, errors = fields.for_action(spec)
    if errors:
        raise _unprocessable(errors)
    results = await bulk_act(services(request), spec, body.order_ids, payload, principal)
    return JSONResponse({"results": results})


# ------------------------------------------------------------------- parse


@api.post(
    "/addresses/parse",
    response_model=ParsedAddress,
    summary="A buyer's free-text reply split into name, phone and address (nothing saved)",
)
async def parse_address(
    body: ParseBody, principal: Principal = Depends(allow("operator_action"))
) -> JSONResponse:
    """In today's division names; `unparsed` keeps what fitted no field."""
    from intake.parse import parse_reply

    parsed = await run_in_threadpool(parse_reply, body.text)
    return JSONResponse(parsed.as_dict())


# ----------------------------------------------------------------- console


@pages.post("/orders/{order_id}/parse")
async def console_parse(request: Request, order_id: str) -> Response:
    """The confirm form's paste box: the page again, the form filled for the clerk to check."""
    from intake.parse import parse_reply
    from service.console import order_page, signed_form

    got = await signed_form(request)
    if isinstance(got, Response):
        return got
    principal, form = got
    text = (form.get("paste") or "").strip()[:2000]
    filled: dict[str, Any] = {k: v for k, v in form.items() if k != "paste" and v.strip()}
    answer = None
    if text:
        parsed = await run_in_threadpool(parse_reply, text)
        found = {k: v for k, v in parsed.as_dict().items()
                 if k in ("name", "phone", "province", "city", "district", "detail", "postal_code") and v}
        filled.update(found)
        filled["confidence"] = parsed.confidence
        filled["unparsed"] = parsed.unparsed
    else:
        answer = {"action": "parse", "accepted": False, "reason": "paste the buyer's reply first"}
    filled["paste"] = text
    return await order_page(request, principal, order_id, answer, fill=filled)


@pages.post("/bulk/{action}")
async def console_bulk(request: Request, action: str) -> Response:
    """The queue's bulk buttons: the action for every ticked row, each order's outcome listed."""
    from service.console import render, signed_form

    got = await signed_form(request)
    if isinstance(got, Response):
        return got
    principal, form = got
    raw = await request.form()
    order_ids = [v for v in raw.getlist("order_ids") if isinstance(v, str) and v]
    fields = {k: v.strip() for k, v in form.items()
              if k not in ("order_ids", "tab", "q") and v.strip()}
    back = str(form.get("tab") or "")
    error = None
    results: list[dict[str, Any]] = []
    try:
        act = ACTIONS[Action(action)]
        if action not in BULK_ACTIONS:
            raise ValueError(action)
    except ValueError:
        error = f"unknown bulk action {action!r}; one of {', '.join(BULK_ACTIONS)}"
    else:
        if not order_ids:
            error = "tick at least one order"
        elif len(order_ids) > MAX_BULK:
            error = f"at most {MAX_BULK} orders at once, not {len(order_ids)}"
        else:
            fields = {k: v for k, v in fields.items() if k in api_fields(act)}  # the bar: note, reason
            try:
                payload, errors = ActionBody.model_validate(fields).for_action(act)
            except ValidationError as exc:
                errors = _field_errors(exc)
            if errors:
                error = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
            else:
                results = await bulk_act(services(request), act, list(dict.fromkeys(order_ids)),
                                         payload, principal)
    accepted = sum(r["accepted"] for r in results)
    return render(request, "bulk.html", principal=principal, page="queue", action=action,
                  results=results, error=error, accepted=accepted, back=back,
                  status_code=422 if error else 200)
