"""The clerk's console (SPEC §5.7): server-rendered pages at `/`, htmx for partial updates.

Sign-in takes a `clerk` or `admin` key once; the session cookie (signed, HTTP-only) then
holds the key's name and hash, never the key, and every page checks that the key is still
active, so revoking a key ends its sessions at once. Every form carries the session's CSRF
token. Forms post the API's field names and act through the same `commands.actions` calls as
the API; the page then shows the workflow's answer (accepted with the new state, or refused
with its reason). Pages work without JavaScript; with htmx a form swaps only the order.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from markupsafe import Markup
from pydantic import ValidationError

from models.enums import Action, Flag, WaitingFor
from orders.store import CLOSED_STAGES
from reads import localtime
from service import timeline
from service.deps import ApiError, services
from service.keys import Principal, find_by_name, find_key
from service.schemas import ActionBody, RestockBody
from workflows.order.actions import ACTIONS, ORDER_ACTIONS, offered

router = APIRouter(include_in_schema=False)
HERE = Path(__file__).resolve().parent
env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)

PAGE_SIZE = 50
COUNT_CAP = 1000  # a tab shows "1000+" beyond: its count costs the same at any size

# The queue's tabs: what orders wait for (SPEC §5.7), "on hold" being a wait for an operator.
TABS: list[tuple[str, str, str]] = [
    (str(WaitingFor.BUYER), "买家确认", "Buyer"),
    (str(WaitingFor.PAYMENT), "待付款", "Payment"),
    (str(WaitingFor.STOCK), "缺货", "Stock"),
    (str(WaitingFor.TRANSFER), "调拨", "Transfer"),
    (str(WaitingFor.APPROVAL), "待审批", "Approval"),
    (str(WaitingFor.WAREHOUSE), "仓库", "Warehouse"),
    (str(WaitingFor.OPERATOR), "挂起", "On hold"),
]

STAGE_ZH = timeline.STAGE_ZH  # one table of the stages' Chinese names

OVERDUE_FLAGS = {"pick_overdue", "pick_escalated", "approval_overdue", "buyer_timeout",
                 "payment_timeout", "backorder_timeout", "transfer_timeout", "step_failed"}


# ------------------------------------------------------------------ helpers


def age(value: str | None, now: datetime | None = None) -> str:
    """How long ago, as a clerk says it: 45s, 12m, 3h 20m, 2d 4h."""
    if not value:
        return "—"
    try:
        then = datetime.fromisoformat(value)
    except ValueError:
        return "—"
    return localtime.span(((now or datetime.now(UTC)) - then).total_seconds())


@pass_context
def short_time(context: Any, value: str | None) -> str:
    """A time on the merchant's clock (`OMS_TIMEZONE`); the page names the zone once."""
    return localtime.local(value, context.get("tz"))


env.filters["age"] = age
env.filters["short_time"] = short_time
env.globals["STAGE_ZH"] = STAGE_ZH
env.globals["OVERDUE_FLAGS"] = OVERDUE_FLAGS
env.globals["COUNT_CAP"] = COUNT_CAP
env.globals["FLAG_CHOICES"] = [str(f) for f in Flag]
env.globals["BULK_BUTTONS"] = [  # the queue's bulk actions (service/desk.py)
    ("approve", "批量批准", "Approve", ""), ("confirm", "批量确认", "Confirm with note", "quiet"),
    ("resume", "批量恢复", "Resume", "quiet"), ("reject", "批量驳回", "Reject", "danger"),
    ("cancel", "批量取消", "Cancel", "danger"),
]


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(24)
        request.session["csrf"] = token
    return token


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    tz = services(request).settings.timezone
    context.setdefault("tz", tz)
    context.setdefault("tz_label", localtime.label(tz))
    page = env.get_template(template).render(
        request=request, csrf=csrf_token(request), **context
    )
    return HTMLResponse(page, status_code=status_code, headers=SECURITY_HEADERS)


# Pages load only their own files, are never framed, and never leak an order id to other sites.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def signed_in(request: Request) -> Principal | None:
    name, key_hash = request.session.get("key_name"), request.session.get("key_hash")
    if not isinstance(name, str) or not isinstance(key_hash, str):
        return None
    principal = services(request).read(find_by_name, name, key_hash)
    if principal is None or not principal.may("console"):
        request.session.pop("key_name", None)
        request.session.pop("key_hash", None)
        return None
    return principal


def to_login(request: Request) -> Response:
    target = "/login?next=" + quote(request.url.path)
    if request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


async def checked_form(request: Request) -> dict[str, str] | None:
    """The posted form, if its CSRF token is this session's; None otherwise."""
    form = await request.form()
    token = form.get("csrf_token")
    expected = request.session.get("csrf")
    if not isinstance(token, str) or not expected or not hmac.compare_digest(token, expected):
        return None
    return {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}


async def signed_form(request: Request) -> tuple[Principal, dict[str, str]] | Response:
    """A signed-in clerk and the form posted (its CSRF token checked); else the page to answer
    with: the sign-in page, or the expired-form page."""
    principal = await run_in_threadpool(signed_in, request)
    if principal is None:
        return to_login(request)
    form = await checked_form(request)
    if form is None:
        return expired(request)
    return principal, form


def expired(request: Request) -> HTMLResponse:
    return render(request, "message.html", status_code=403, principal=None,
                  title="表单已过期 · Form expired",
                  text="这个表单已过期，请刷新页面再提交。This form has expired: reload the page "
                       "and submit again.")


# ------------------------------------------------------------------ sign-in


@router.get("/login")
async def login_page(request: Request, next: str = "/") -> HTMLResponse:
    return render(request, "login.html", principal=None, next=_safe_next(next), error=None)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await checked_form(request)
    if form is None:
        return expired(request)
    key = (form.get("key") or "").strip()
    target = _safe_next(form.get("next") or "/")
    principal = await run_in_threadpool(services(request).read, find_key, key) if key else None
    if principal is None:
        return render(request, "login.html", status_code=401, principal=None, next=target,
                      error="密钥无效或已被吊销。Unknown or revoked key.")
    if not principal.may("console"):
        return render(
            request, "login.html", status_code=403, principal=None, next=target,
            error=f"{principal.role} 密钥不能登录工作台，请使用 clerk 或 admin 密钥。"
                  f"A {principal.role} key cannot sign in to the console: use a clerk or admin key.",
        )
    request.session.clear()
    request.session.update({"key_name": principal.name, "key_hash": principal.key_hash,
                            "csrf": secrets.token_urlsafe(24)})
    return RedirectResponse(target, status_code=303)


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await checked_form(request)
    if form is None:
        return expired(request)
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


def _safe_next(target: str) -> str:
    return target if target.startswith("/") and not target.startswith("//") else "/"


# -------------------------------------------------------------------- queue


@router.get("/")
async def queue(request: Request, tab: str | None = None, cursor: str | None = None) -> Response:
    principal = await run_in_threadpool(signed_in, request)
    if principal is None:
        return to_login(request)
    from reads.queries import BadCursor, page_orders, waiting_counts
    from service.search_box import console_search

    svc = services(request)
    counts = await run_in_threadpool(svc.read, waiting_counts, cap=COUNT_CAP)
    tabs = [k for k, _, _ in TABS]
    search = console_search(request)  # the search box and filters (issue 21), or None
    if tab not in tabs:
        tab = next((k for k in tabs if counts.get(k)), tabs[0])
    try:
        if search is not None:
            tab = ""
            rows, next_cursor = await run_in_threadpool(search.page, svc, PAGE_SIZE, cursor)
        else:
            rows, next_cursor = await run_in_threadpool(  # the soonest ship-by first (SPEC §3.9)
                svc.read, page_orders, waiting_for=tab, limit=PAGE_SIZE, cursor=cursor,
                findings=True, sort="ship_by",
            )
    except BadCursor:
        rows, next_cursor = [], None
    if tab == str(WaitingFor.STOCK) and rows:  # the Stock tab names the SKU and warehouse waited for
        await run_in_threadpool(svc.read, _add_waiting_stock, rows)
    now = datetime.now(UTC)
    warn = svc.settings.policy.ship_by.warn
    for row in rows:
        row["overdue"] = sorted(OVERDUE_FLAGS & set(row["flags"]))
        row["wait"] = age(row.get("stage_since"), now)
        # the time left to a platform's ship-by time, while the order is still to ship
        row["due"] = (None if row["stage"] in CLOSED_STAGES
                      else localtime.time_left(row.get("ship_by"), now, warn))
        row["summary"] = "；".join(
            f.get("message_zh") or f.get("message") or f["code"] for f in row.get("findings", [])
        )
        row["summary_en"] = "; ".join(f.get("message") or f["code"] for f in row.get("findings", []))
    return render(request, "queue.html", principal=principal, tabs=TABS, tab=tab, counts=counts,
                  rows=rows, next_cursor=next_cursor, page="queue", search=search)


def _add_waiting_stock(session: Any, rows: list[dict[str, Any]]) -> None:
    from reads.queries import add_waiting_skus

    add_waiting_skus(session, rows)


# -------------------------------------------------------------------- order


def _order_context(svc: Any, order_id: str) -> dict[str, Any] | None:
    from models.tables import Order
    from privacy.mask import mask_phone
    from reads.queries import order_status

    def read(session: Any) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        status = order_status(session, order_id)
        row = session.get(Order, order_id)
        document = dict(row.document or {}) if row is not None else {}
        return status, document

    status, document = svc.read(read)
    if status is None:
        return None
    buyer = document.get("buyer") or {}
    return {
        "status": status,
        "buyer": {"name": buyer.get("name"), "phone": mask_phone(buyer.get("phone"))},
        "address": document.get("address") or {},
        "total": document.get("total"),
        "payment": document.get("payment") or {},
    }


async def order_page(request: Request, principal: Principal, order_id: str,
                     answer: dict[str, Any] | None = None, status_code: int = 200,
                     fill: dict[str, Any] | None = None) -> Response:
    svc = services(request)
    context = await run_in_threadpool(_order_context, svc, order_id)
    if context is None:
        return render(request, "message.html", status_code=404, principal=principal,
                      title="没有这个订单 · No such order",
                      text=f"订单 {order_id} 不存在。There is no order {order_id}.")
    status = context["status"]
    if answer and answer.get("order"):
        # The workflow's answer is newer than the database's copy, which follows at its pause.
        status.update({k: v for k, v in answer["order"].items() if k in
                       ("stage", "waiting_for", "flags", "findings", "lines", "shipments", "refund")})
    open_shipments = [s for s in status["shipments"] if s["status"] not in ("shipped", "cancelled")]
    return render(
        request, "order.html", status_code=status_code, principal=principal, page="order",
        s=status, ctx=context, answer=answer, actions=offered(status["stage"]), arrival=ACTIONS[Action.TRANSFER_ARRIVED],
        open_shipments=open_shipments, carriers=svc.settings.policy.pick.carriers,
        transfers=[t for t in status.get("transfers", []) if t["status"] == "in_transit"],
        events=list(reversed(timeline.sentences(status["events"])))[:200], fill=fill or {},
    )


@router.get("/orders/{order_id}")
async def order(request: Request, order_id: str) -> Response:
    principal = await run_in_threadpool(signed_in, request)
    if principal is None:
        return to_login(request)
    return await order_page(request, principal, order_id)


def form_body(form: dict[str, str], kinds: dict[str, str]) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """A form's fields as the API's JSON body: blanks left out, numbers and checkboxes typed by
    their kind (an action's: `workflows.order.actions.Field.kind`)."""
    body: dict[str, Any] = {}
    errors = []
    for name, value in form.items():
        value = value.strip()
        if not value:
            continue
        if kinds.get(name) in ("number", "shipment"):
            if not (value.isascii() and value.isdigit()):
                errors.append({"field": name, "message": "must be a whole number"})
                continue
            body[name] = int(value)
        elif kinds.get(name) == "checkbox":
            body[name] = value.lower() in ("true", "on", "1", "yes")
        else:
            body[name] = value
    return body, errors


def _validation_errors(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": ".".join(str(p) for p in e["loc"]) or "body",
         "message": str(e["msg"]).removeprefix("Value error, ")}
        for e in exc.errors()
    ]


@router.post("/orders/{order_id}/actions/{action}")
async def order_action(request: Request, order_id: str, action: str) -> Response:
    got = await signed_form(request)
    if isinstance(got, Response):
        return got
    principal, form = got
    from service.api import run_action

    form.pop("paste", None)  # the confirm form's paste box is the clerk's, not the order's
    spec = next((a for a in ORDER_ACTIONS if a.name == action), None)
    if spec is None:
        answer = {"action": action, "accepted": False, "reason": f"unknown action {action!r}"}
        return await order_page(request, principal, order_id, answer)
    body, errors = form_body(form, spec.kinds)
    if not errors:
        try:
            payload, errors = ActionBody.model_validate(body).for_action(spec)
        except ValidationError as exc:
            errors = _validation_errors(exc)
    if errors:
        answer = {"action": action, "accepted": False, "errors": errors,
                  "reason": "; ".join(f"{e['field']}: {e['message']}" for e in errors)}
        return await order_page(request, principal, order_id, answer)
    try:
        result = await run_action(services(request), order_id, spec.name, payload, principal)
        answer = {"action": action, "accepted": result.accepted, "reason": result.reason,
                  "order": result.order}
    except ApiError as exc:
        answer = {"action": action, "accepted": False, "reason": exc.error,
                  "errors": exc.extra.get("errors")}
    return await order_page(request, principal, order_id, answer)


@router.post("/transfers/{transfer_id}/arrived")
async def transfer_arrived(request: Request, transfer_id: str) -> Response:
    got = await signed_form(request)
    if isinstance(got, Response):
        return got
    principal, form = got
    from temporalio.service import RPCError

    from commands import actions

    svc = services(request)
    order_id = form.get("order_id") or ""
    try:
        result = await actions.transfer_arrived(svc.client, svc.factory, transfer_id)
        answer = {"action": Action.TRANSFER_ARRIVED, "accepted": result.accepted,
                  "reason": result.reason, "order": result.order}
        if result.order and not order_id:
            order_id = str(result.order.get("order_id") or "")
    except actions.NotFound:
        answer = {"action": Action.TRANSFER_ARRIVED, "accepted": False,
                  "reason": f"unknown transfer {transfer_id!r}"}
    except actions.BadBody as exc:
        answer = {"action": Action.TRANSFER_ARRIVED, "accepted": False,
                  "reason": "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors)}
    except RPCError as exc:
        answer = {"action": Action.TRANSFER_ARRIVED, "accepted": False,
                  "reason": f"Temporal did not answer ({exc.message}); try again"}
    return await order_page(request, principal, order_id, answer)


@router.post("/orders/{order_id}/write-back")
async def write_back_form(request: Request, order_id: str) -> Response:
    """The order page's answer to a refused write-back (`platform_ship_refused`): send it
    again at the shop's next run (`op=resend`), or clear the flag once settled by hand on the
    platform (`op=clear`); the note goes to the timeline. Answered on the order page."""
    got = await signed_form(request)
    if isinstance(got, Response):
        return got
    principal, form = got
    from models.db import transaction
    from orders.store import FlagNotCleared, clear_outside_flag
    from platforms.writeback import ResendRefused, resend

    op, note = form.get("op", ""), (form.get("note") or "").strip()[:500] or None
    action = {"resend": "resend-write-back", "clear": "clear-flag"}.get(op)
    if action is None:
        answer = {"action": "write-back", "accepted": False,
                  "reason": f"op: {op!r} is neither resend nor clear"}
        return await order_page(request, principal, order_id, answer, status_code=422)

    def settle() -> str:
        with transaction(services(request).factory) as session:
            if op == "resend":
                sent = resend(session, order_id, by=principal.name, note=note)
                return "; ".join(f"{x['carrier']} {x['tracking_no']} sent again at shop "
                                 f"{x['shop']}'s next sync" for x in sent)
            clear_outside_flag(session, order_id, "platform_ship_refused", by=principal.name,
                               note=note)
            return "platform_ship_refused cleared"

    try:
        answer = {"action": action, "accepted": True, "done": await run_in_threadpool(settle)}
    except (ResendRefused, FlagNotCleared) as exc:
        answer = {"action": action, "accepted": False, "reason": str(exc)}
    return await order_page(request, principal, order_id, answer)


# -------------------------------------------------------------------- stock


def _stock_context(session: Any, sku: str | None) -> dict[str, Any]:
    from sqlalchemy import func, select

    from models.tables import Backorder, CatalogRow, WarehouseRow
    from reads.queries import stock_rows

    names = dict(session.execute(select(CatalogRow.sku, CatalogRow.name)).all())
    warehouses = session.execute(
        select(WarehouseRow.code, WarehouseRow.name).order_by(WarehouseRow.priority, WarehouseRow.code)
    ).all()
    waiting = {
        (s, w): int(n or 0)
        for s, w, n in session.execute(
            select(Backorder.sku, Backorder.warehouse,
                   func.sum(Backorder.qty_wanted - Backorder.qty_filled))
            .where(Backorder.status == "waiting")
            .group_by(Backorder.sku, Backorder.warehouse)
        ).all()
    }
    rows = stock_rows(session, sku or None)
    for r in rows:
        r["name"] = names.get(r["sku"], "")
        r["waiting"] = waiting.get((r["sku"], r["warehouse"]), 0)
    return {"rows": rows, "skus": sorted(names.items()), "warehouses": warehouses}


@router.get("/stock")
async def stock(request: Request, sku: str | None = None) -> Response:
    principal = await run_in_threadpool(signed_in, request)
    if principal is None:
        return to_login(request)
    context = await run_in_threadpool(services(request).read, _stock_context, sku)
    return render(request, "stock.html", principal=principal, page="stock", sku=sku or "",
                  answer=None, form={}, **context)


@router.post("/stock/restock")
async def restock(request: Request) -> Response:
    got = await signed_form(request)
    if isinstance(got, Response):
        return got
    principal, form = got
    from temporalio.service import RPCError

    from commands import actions

    svc = services(request)
    body, errors = form_body(form, {"qty": "number"})
    answer: dict[str, Any]
    if not errors:
        try:
            parsed = RestockBody.model_validate(body)
        except ValidationError as exc:
            errors = _validation_errors(exc)
    if errors:
        answer = {"accepted": False, "reason": "; ".join(f"{e['field']}: {e['message']}" for e in errors)}
    else:
        try:
            served = await actions.restock(
                svc.client, svc.factory, svc.settings, parsed.sku, parsed.qty, parsed.warehouse
            )
            answer = {"accepted": True, "served": served, "sku": parsed.sku, "qty": parsed.qty,
                      "warehouse": parsed.warehouse}
        except actions.BadBody as exc:
            answer = {"accepted": False,
                      "reason": "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors)}
        except RPCError as exc:
            answer = {"accepted": False, "reason": f"Temporal did not answer ({exc.message})"}
    context = await run_in_threadpool(svc.read, _stock_context, None)
    return render(request, "stock.html", principal=principal, page="stock", sku="",
                  answer=answer, form=form, **context)


# ------------------------------------------------------------------- report


@router.get("/report")
async def report(request: Request) -> Response:
    principal = await run_in_threadpool(signed_in, request)
    if principal is None:
        return to_login(request)
    from commands.report import _duration, build_summary, svg_bar_chart

    svc = services(request)
    summary = await run_in_threadpool(svc.read, build_summary, policy=svc.settings.policy)
    f = summary["fulfilment"]
    tis = summary["time_in_stage"]
    shortage = summary["shortage_outcomes"]
    charts = [
        svg_bar_chart("Orders by stage 各阶段订单",
                      [(s, n) for s, n in summary["orders_by_stage"].items() if n], width=520),
        svg_bar_chart("Flags by code 标记", list(summary["flags_by_code"].items()),
                      color="#a15c00", width=520),
        svg_bar_chart("Time in stage 停留时间: median / p95",
                      [(s, v["median_s"]) for s, v in tis.items()],
                      back=[v["p95_s"] for v in tis.values()], label=_duration,
                      color="#3c8d5a", width=520),
        svg_bar_chart(f"Shortage outcomes 缺货结果 ({shortage['short_orders']})",
                      list(shortage["outcomes"].items()) if shortage["short_orders"] else [],
                      color="#7a4fb0", width=520),
    ]
    return render(request, "report.html", principal=principal, page="report", summary=summary,
                  f=f, tis=tis, charts=[Markup(c) for c in charts], duration=_duration,
                  rate=_rate_text(f))


def _rate_text(f: dict[str, Any]) -> str:
    return "—" if f.get("rate") is None else f"{f['rate'] * 100:.1f}%"

