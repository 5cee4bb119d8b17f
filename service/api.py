"""The HTTP API, `/v1` (SPEC §5.6): intake, reads, operator and warehouse actions, stock,
transfers, the outbox; and, for admin keys, keys and reference data.

Reads come from the database (read-only snapshots). Every action goes through
`commands.actions` to the order workflow's Temporal update, so the answer is the workflow's:
200 with the order's new state, or 409 with its reason (and nothing written).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from temporalio.service import RPCError

from models.enums import Action, Stage, WaitingFor
from service.deps import ApiError, Services, allow, forbid_unless, services
from service.keys import Principal
from service.schemas import (
    ActionAccepted,
    ActionBody,
    ActionRefused,
    ErrorBody,
    EventPage,
    IntakeResponse,
    KeyCreate,
    KeyMade,
    KeyOut,
    Loaded,
    OrderAction,
    OrderOut,
    OrderPage,
    RestockBody,
    RestockResponse,
    StockRow,
    ValidationErrorBody,
)
from workflows.order.actions import ACTIONS, ORDER_ACTIONS, api_fields

MAX_BATCH = 1000
MAX_INTAKE_BYTES = 32 * 1024 * 1024  # 1000 documents of up to 32 kB each
SUBMIT_CONCURRENCY = 64

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "no key, or an unknown or revoked key"},
    403: {"model": ErrorBody, "description": "this key's role may not do this"},
    422: {"model": ValidationErrorBody, "description": "a parameter or body field is not valid"},
}
router = APIRouter(prefix="/v1", responses=_ERRORS)


OrderIdPath = Path(min_length=1, max_length=200, description="the order's id, e.g. TB20261126-0001")


# ------------------------------------------------------------------- intake

INTAKE_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "oneOf": [
                    {"$ref": "#/components/schemas/OrderDocument"},
                    {
                        "type": "array",
                        "maxItems": MAX_BATCH,
                        "items": {"$ref": "#/components/schemas/OrderDocument"},
                    },
                ]
            }
        }
    },
}


@router.post(
    "/orders",
    response_model=IntakeResponse,
    summary="Submit one order document or a batch of up to 1000",
    responses={
        400: {"model": ErrorBody, "description": "the body is not JSON, or more than 1000"},
        413: {"model": ErrorBody, "description": "the body is larger than 32 MB"},
        503: {"model": ErrorBody, "description": "Temporal is unreachable: send again"},
    },
    openapi_extra={"requestBody": INTAKE_BODY},
)
async def submit_orders(
    request: Request, principal: Principal = Depends(allow("submit"))
) -> JSONResponse:
    """One result per document, in order: `started` (a new order workflow), `duplicate`
    (that order_id was submitted before, or earlier in this batch) or `rejected` with one
    error per bad field (nothing started). Sending the same batch again is safe."""
    from commands.intake import answer_entries, start_answers
    from service.intake import load_batch

    svc = services(request)
    body = await read_body(request, MAX_INTAKE_BYTES)
    # read and checked off the event loop: a storm of deep or huge documents costs CPU
    answers = await run_in_threadpool(lambda: answer_entries(load_batch(body, MAX_BATCH)))
    try:
        await start_answers(svc.client, svc.settings, answers, concurrency=SUBMIT_CONCURRENCY)
    except RPCError as exc:
        raise ApiError(
            503,
            f"Temporal did not take the orders ({exc.message}); send the batch again: "
            "orders already started are answered duplicate",
        ) from exc
    results = [
        {
            "order_id": a.order_id,
            "result": a.result,
            "errors": [{"field": f, "message": m} for f, m in a.errors],
        }
        for a in answers
    ]
    svc.metrics.intake(results)
    return JSONResponse({"results": results})


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the body is larger than {limit // (1024 * 1024)} MB", field="body")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"the body is larger than {limit // (1024 * 1024)} MB", field="body")
        chunks.append(chunk)
    return b"".join(chunks)


# -------------------------------------------------------------------- reads


@router.get(
    "/orders/{order_id}",
    response_model=OrderOut,
    responses={404: {"model": ErrorBody, "description": "no such order"}},
    summary="One order, as `status --json` prints it",
)
def get_order(
    request: Request,
    order_id: str = OrderIdPath,
    principal: Principal = Depends(allow("read_orders")),
) -> JSONResponse:
    from reads.queries import order_status

    status = services(request).read(order_status, order_id)
    if status is None:
        raise ApiError(404, f"unknown order {order_id!r}", order_id=order_id)
    return JSONResponse(status)


@router.get(
    "/orders",
    response_model=OrderPage,
    summary="Orders, oldest first or by ship-by deadline, by stage / waiting_for / flag, keyset-paginated",
)
def list_orders(
    request: Request,
    stage: Stage | None = Query(None),
    waiting_for: WaitingFor | None = Query(None),
    flag: str | None = Query(None, min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_]*$"),
    limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = Query(None, min_length=1, max_length=400),
    q: str | None = Query(None, min_length=1, max_length=128, description=(
        "search: an order id (exact or prefix of 4+), a SKU, a tracking number, the buyer's "
        "name or the phone's last 4 digits (not for platform keys)")),
    platform: str | None = Query(None, min_length=1, max_length=40),
    province: str | None = Query(None, min_length=1, max_length=50),
    shop: str | None = Query(None, min_length=1, max_length=128),
    ship_by: str | None = Query(None, pattern=r"^\d{4}-\d{2}-\d{2}$",
                                description="YYYY-MM-DD: orders that must ship by that day"),
    sort: Literal["created", "ship_by"] = Query("created", description=(
        "`created` (default): oldest first. `ship_by`: the console's queue order (issue 19): "
        "the orders still to ship by a platform's ship-by time first, the soonest (so the late "
        "ones) first, then the others oldest first; not with a search (q, platform, province, "
        "shop, ship_by)")),
    principal: Principal = Depends(allow("read_orders")),
) -> JSONResponse:
    """`next_cursor` is null on the last page; pass it back as `cursor` with the same filters
    and sort. Every order is on exactly one page, also while new orders arrive."""
    from reads.queries import BadCursor, page_orders

    if q or platform or province or shop or ship_by:  # issue 21: the search index
        if sort != "created":
            raise ApiError(422, "sort: a search lists oldest first; sort=ship_by is for the lists "
                                "by stage, waiting_for and flag", field="sort")
        from service.search_box import search_page

        return search_page(request, principal, q=q, platform=platform, province=province,
                           shop=shop, ship_by=ship_by,
                           stage=stage.value if stage else None,
                           waiting_for=waiting_for.value if waiting_for else None,
                           flag=flag, limit=limit, cursor=cursor)
    try:
        orders, next_cursor = services(request).read(
            page_orders,
            stage=stage.value if stage else None,
            waiting_for=waiting_for.value if waiting_for else None,
            flag=flag,
            limit=limit,
            cursor=cursor,
            sort=sort,
        )
    except BadCursor as exc:
        raise ApiError(422, f"cursor: {exc}", field="cursor") from exc
    return JSONResponse({"orders": orders, "next_cursor": next_cursor})


@router.get("/stock", response_model=list[StockRow], summary="Stock per SKU and warehouse")
def get_stock(
    request: Request,
    sku: str | None = Query(None, min_length=1, max_length=64),
    principal: Principal = Depends(allow("read_stock")),
) -> JSONResponse:
    from reads.queries import stock_rows

    return JSONResponse(services(request).read(stock_rows, sku))


@router.get("/events", response_model=EventPage, summary="The outbox, oldest first")
def get_events(
    request: Request,
    order_id: str | None = Query(None, min_length=1, max_length=200),
    limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = Query(None, min_length=1, max_length=400),
    principal: Principal = Depends(allow("read_events")),
) -> JSONResponse:
    from reads.queries import BadCursor, page_events

    try:
        events, next_cursor = services(request).read(
            page_events, order_id=order_id, limit=limit, cursor=cursor
        )
    except BadCursor as exc:
        raise ApiError(422, f"cursor: {exc}", field="cursor") from exc
    return JSONResponse({"events": events, "next_cursor": next_cursor})


# ------------------------------------------------------------------ actions

_ACTION_DOC = "\n".join(f"- `{a.name}`: {', '.join(sorted(api_fields(a)))}" for a in ORDER_ACTIONS)


@router.post(
    "/orders/{order_id}/actions/{action}",
    response_model=ActionAccepted,
    responses={
        404: {"model": ErrorBody, "description": "no such order"},
        409: {"model": ActionRefused, "description": "refused by the workflow (nothing written)"},
    },
    summary="An operator or warehouse action, answered by the order workflow",
    description="Fields each action takes:\n\n" + _ACTION_DOC,
)
async def order_action(
    request: Request,
    order_id: str = OrderIdPath,
    action: OrderAction = Path(description="the action"),
    body: ActionBody | None = Body(None),
    principal: Principal = Depends(allow("read_orders")),
) -> JSONResponse:
    spec = ACTIONS[Action(action.value)]
    forbid_unless(principal, "warehouse_action" if spec.warehouse else "operator_action")
    payload, errors = (body or ActionBody()).for_action(spec)
    if errors:
        raise _bad_body(errors)
    answer = await run_action(services(request), order_id, spec.name, payload, principal)
    return answer_response(answer)


async def run_action(
    svc: Services, order_id: str, action: str, payload: dict[str, Any], principal: Principal
) -> Any:
    """`commands.actions.act` with its exceptions turned into answers (404 / 422 / 503)."""
    from commands import actions

    try:
        answer = await actions.act(svc.client, order_id, action, payload, by=principal.name)
    except actions.UnknownOrder as exc:
        raise ApiError(404, f"unknown order {order_id!r}", order_id=order_id) from exc
    except actions.BadBody as exc:
        raise _bad_body(exc.errors) from exc
    except RPCError as exc:
        raise ApiError(503, f"Temporal did not answer ({exc.message}); try again") from exc
    svc.metrics.action(action, answer.accepted)
    return answer


def answer_response(answer: Any) -> JSONResponse:
    if answer.accepted:
        return JSONResponse({"accepted": True, "order": answer.order})
    return JSONResponse({"accepted": False, "reason": answer.reason}, status_code=409)


def _bad_body(errors: list[dict[str, Any]]) -> ApiError:
    first = errors[0] if errors else {"field": "body", "message": "not valid"}
    return ApiError(
        422,
        f"{first['field']}: {first['message']}",
        field=first["field"],
        errors=[{"field": str(e.get("field")), "message": str(e.get("message"))} for e in errors],
    )


# -------------------------------------------------------- stock, transfers


@router.post(
    "/stock/restock",
    response_model=RestockResponse,
    summary="Stock in; handed to waiting orders first come first served",
)
async def restock(
    request: Request, body: RestockBody, principal: Principal = Depends(allow("restock"))
) -> JSONResponse:
    from commands import actions

    svc = services(request)
    try:
        served = await actions.restock(
            svc.client, svc.factory, svc.settings, body.sku, body.qty, body.warehouse
        )
    except actions.BadBody as exc:
        raise _bad_body(exc.errors) from exc
    except RPCError as exc:
        raise ApiError(503, f"Temporal did not answer ({exc.message}); try again") from exc
    order_ids = list(dict.fromkeys(str(s["order_id"]) for s in served))
    return JSONResponse({"served": order_ids, "handouts": served})


@router.post(
    "/transfers/{transfer_id}/arrived",
    response_model=ActionAccepted,
    responses={
        404: {"model": ErrorBody, "description": "no such transfer"},
        409: {"model": ActionRefused, "description": "refused by the workflow (nothing written)"},
    },
    summary="A stock transfer between warehouses arrived",
)
async def transfer_arrived(
    request: Request,
    transfer_id: str = Path(min_length=1, max_length=200),
    principal: Principal = Depends(allow("transfer")),
) -> JSONResponse:
    from commands import actions

    svc = services(request)
    try:
        answer = await actions.transfer_arrived(svc.client, svc.factory, transfer_id)
    except actions.NotFound as exc:
        raise ApiError(404, f"unknown transfer {transfer_id!r}", transfer_id=transfer_id) from exc
    except actions.BadBody as exc:
        raise _bad_body(exc.errors) from exc
    except RPCError as exc:
        raise ApiError(503, f"Temporal did not answer ({exc.message}); try again") from exc
    return answer_response(answer)


async def _clerk_settles(request: Request, body: dict[str, Any] | None, principal: Principal,
                         step: Any, refusal: type[Exception]) -> Any:
    """A clerk's step over an order's row, with an optional note (what was settled): the note
    judged, the step run in one transaction, its refusal answered with its status and field
    (the message's first word)."""
    from models.db import transaction

    note = (body or {}).get("note")
    if note is not None and (not isinstance(note, str) or len(note) > 500):
        raise ApiError(422, "note: a text of at most 500 characters", field="note")

    def run() -> Any:
        with transaction(services(request).factory) as session:
            return step(session, by=principal.name, note=note)

    try:
        return await run_in_threadpool(run)
    except refusal as exc:
        message = str(exc)
        raise ApiError(getattr(exc, "status", 409), message, field=message.split(":", 1)[0]) from exc


@router.post(
    "/orders/{order_id}/flags/{flag}/clear",
    responses={
        404: {"model": ErrorBody, "description": "no such order"},
        409: {"model": ErrorBody, "description": "the order does not carry that flag"},
    },
    summary="Clear a flag raised beside the order (platform_ship_refused) once a clerk settled it",
)
async def clear_flag(
    request: Request,
    order_id: str = OrderIdPath,
    flag: str = Path(min_length=1, max_length=64, description="e.g. platform_ship_refused"),
    body: dict[str, Any] | None = Body(None, examples=[{"note": "shipped by hand on Taobao"}]),
    principal: Principal = Depends(allow("operator_action")),
) -> JSONResponse:
    from orders.store import FlagNotCleared, clear_outside_flag

    flags = await _clerk_settles(
        request, body, principal,
        lambda session, **kw: clear_outside_flag(session, order_id, flag, **kw), FlagNotCleared)
    return JSONResponse({"order_id": order_id, "cleared": flag, "flags": flags})


@router.post(
    "/orders/{order_id}/write-back/resend",
    responses={
        404: {"model": ErrorBody, "description": "no such order"},
        409: {"model": ErrorBody, "description": "the order has no refused write-back"},
    },
    summary="Send an order's refused write-backs to its platform again (at the shop's next sync)",
)
async def resend_write_back(
    request: Request,
    order_id: str = OrderIdPath,
    body: dict[str, Any] | None = Body(None, examples=[{"note": "buyer withdrew the refund"}]),
    principal: Principal = Depends(allow("operator_action")),
) -> JSONResponse:
    from platforms.writeback import ResendRefused, resend

    sent = await _clerk_settles(
        request, body, principal,
        lambda session, **kw: resend(session, order_id, **kw), ResendRefused)
    return JSONResponse({"order_id": order_id, "resent": sent})


# ------------------------------------------------------- admin: keys, data


@router.get("/keys", response_model=list[KeyOut], summary="Every API key (never the key itself)")
def get_keys(request: Request, principal: Principal = Depends(allow("keys"))) -> JSONResponse:
    from service.keys import list_keys

    return JSONResponse(services(request).read(list_keys))


@router.post(
    "/keys",
    response_model=KeyMade,
    responses={409: {"model": ErrorBody, "description": "an active key has that name"}},
    summary="Make a key (shown once)",
)
def post_key(
    request: Request, body: KeyCreate, principal: Principal = Depends(allow("keys"))
) -> JSONResponse:
    from service.keys import KeyProblem, create_key

    try:
        key = services(request).write(create_key, name=body.name, role=body.role)
    except KeyProblem as exc:
        raise ApiError(409, str(exc), field="name") from exc
    return JSONResponse({"name": body.name, "role": body.role, "key": key})


@router.delete(
    "/keys/{name}",
    response_model=KeyOut,
    responses={
        404: {"model": ErrorBody, "description": "no such key"},
        409: {"model": ErrorBody, "description": "already revoked"},
    },
    summary="Revoke a key, at once and everywhere",
)
def delete_key(
    request: Request,
    name: str = Path(min_length=1, max_length=64),
    principal: Principal = Depends(allow("keys")),
) -> JSONResponse:
    from service.keys import KeyProblem, list_keys, revoke_key

    svc = services(request)
    try:
        svc.write(revoke_key, name)
    except KeyProblem as exc:
        raise ApiError(404 if "no key" in str(exc) else 409, str(exc), field="name") from exc
    return JSONResponse(next(k for k in svc.read(list_keys) if k["name"] == name))


@router.post(
    "/reference/{kind}",
    response_model=Loaded,
    responses={
        400: {"model": ErrorBody, "description": "the body is not a JSON array"},
        413: {"model": ErrorBody, "description": "the body is larger than 32 MB"},
    },
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"type": "array", "items": {"type": "object"}}}}}},
    summary="Load catalog, warehouses or stock (idempotent upsert, as `oms load`)",
)
async def load_reference(
    request: Request,
    kind: str = Path(pattern="^(catalog|warehouses|stock)$"),
    principal: Principal = Depends(allow("reference")),
) -> JSONResponse:
    from inventory.ledger import LedgerError
    from reads.queries import load_reference as load
    from service.intake import load_json

    items = load_json(await read_body(request, MAX_INTAKE_BYTES))
    if not isinstance(items, list) or len(items) > 100_000:
        raise ApiError(400, f"the body must be a JSON array of {kind} records", field="body")

    def run(session: Any) -> tuple[int, list[str]]:
        count, errors = load(session, kind, items)
        if errors:
            session.rollback()
        return count, errors

    try:
        count, errors = await run_in_threadpool(services(request).write, run)
    except LedgerError as exc:
        raise ApiError(422, f"nothing loaded: {exc}", field="body") from exc
    if errors:
        raise ApiError(
            422, "nothing loaded: " + errors[0], field="body",
            errors=[{"field": e.partition(" ")[0], "message": e} for e in errors[:100]],
        )
    return JSONResponse({"loaded": count})
