"""The shipping desk's console pages: the packing desk (`/pack`) and the labels page (`/labels`).

The packing desk page (`/pack`, SPEC §5.11) for a barcode scanner that types and presses Enter.

One input, always focused. The first scan is a label's barcode: the parcel's lines appear
with scanned / ordered. Each further scan is an item: counted, or refused large in red with
a sound. Once every line is complete the weight field appears (typed, or a scale acting as
a keyboard). The next label's scan starts the next parcel. The page signs in like the rest
of the console (clerk or admin keys); its script posts JSON with the session's CSRF token in
a header, to the same `do_scan` / `do_weigh` as the HTTP API.
"""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from service.console import SECURITY_HEADERS, csrf_token, signed_in, to_login
from service.deps import services
from service.shipping import do_scan, do_weigh
from shipping import parcels as P

HERE = Path(__file__).resolve().parent
router = APIRouter(include_in_schema=False)
env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True, lstrip_blocks=True,
)


@router.get("/pack")
async def pack_page(request: Request) -> Response:
    principal = await run_in_threadpool(signed_in, request)
    if principal is None:
        return to_login(request)
    page = env.get_template("pack.html").render(request=request, csrf=csrf_token(request),
                                                principal=principal, page="pack")
    return Response(page, media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)


def _label_rows(session: Any) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from models.tables import Order

    orders = session.execute(
        select(Order.order_id, Order.stage).where(Order.stage.in_(("released", "picking", "packed")))
        .order_by(Order.created_at, Order.order_id).limit(200)
    ).all()
    rows = []
    for order_id, stage in orders:
        parcels = P.parcels_of(session, order_id)
        first = parcels[0] if parcels else {}
        rows.append({"order_id": order_id, "stage": stage, "carrier": first.get("carrier"),
                     "waybill": first.get("waybill"), "state": first.get("state"),
                     "hold": first.get("hold")})
    return rows


def _render(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    page = env.get_template(template).render(request=request, csrf=csrf_token(request), **context)
    return Response(page, status_code=status, media_type="text/html; charset=utf-8",
                    headers=SECURITY_HEADERS)


@router.get("/labels")
async def labels_page(request: Request) -> Response:
    """Released orders with their parcels; tick some and print their labels as one PDF."""
    principal = await run_in_threadpool(signed_in, request)
    if principal is None:
        return to_login(request)
    rows = await run_in_threadpool(services(request).read, _label_rows)
    return _render(request, "labels.html", principal=principal, page="labels", rows=rows)


@router.post("/labels")
async def print_labels(request: Request) -> Response:
    """The print button: one PDF of the selected orders' labels (waybills issued first)."""
    from service.console import signed_form
    from shipping.desk import LabelProblem, labels_for

    got = await signed_form(request)
    if isinstance(got, Response):
        return got
    principal, _ = got
    form = await request.form()  # the ticked order ids: a list
    order_ids = [v for v in form.getlist("order_ids") if isinstance(v, str)][:500]
    size = form.get("size") if form.get("size") in ("76x130", "100x180") else None
    svc = services(request)

    async def again(error: str) -> Response:
        rows = await run_in_threadpool(svc.read, _label_rows)
        return _render(request, "labels.html", 409, principal=principal, page="labels",
                       rows=rows, error=error)

    if not order_ids:
        return await again("请先勾选订单 Select at least one order")
    try:
        pdf, printed = await run_in_threadpool(
            labels_for, svc.factory, order_ids,
            size=size or svc.settings.policy.shipping.label_size)
    except (LabelProblem, P.ParcelProblem) as exc:
        return await again(str(exc))
    from commands.shipping import due, ship_parcel

    if due("print", svc.settings.policy.shipping.ship_on):
        for p in printed:
            await ship_parcel(svc.client, svc.factory, p["parcel_id"])
    return Response(pdf, media_type="application/pdf", headers={
        "Content-Disposition": 'attachment; filename="labels.pdf"',
        "X-OMS-Waybills": ",".join(p["waybill"] for p in printed), "Cache-Control": "no-store"})


@router.post("/parcels/{parcel_id}/carrier")
async def pick_carrier_form(request: Request, parcel_id: str) -> Response:
    """The order page's carrier pick for a parcel without a waybill (e.g. `no_carrier`):
    accepted, the parcel gets its waybill at once; refused with why. Back to the order."""
    from urllib.parse import quote

    from fastapi.responses import RedirectResponse

    from service.console import signed_form

    got = await signed_form(request)
    if isinstance(got, Response):
        return got
    principal, form = got
    svc = services(request)
    order_id = form.get("order_id", "")
    from commands.shipping import pick_and_issue

    try:
        view = await pick_and_issue(svc.client, svc.factory, parcel_id, form.get("carrier", ""),
                                    by=principal.name)
        note = f"accepted: {view['carrier']}" + (f", waybill {view['waybill']}"
                                                 if view["waybill"] else f" ({view['note']})")
        order_id = order_id or (view["orders"][0] if view["orders"] else "")
    except P.ParcelProblem as exc:
        note = f"refused: {exc}"
    return RedirectResponse(f"/orders/{quote(order_id)}?parcel_note={quote(note)}#parcels",
                            status_code=303)


@router.get("/pack/pack.js")
async def pack_script() -> FileResponse:
    return FileResponse(HERE / "static" / "pack.js", media_type="text/javascript",
                        headers={"Cache-Control": "no-cache"})


async def _caller(request: Request) -> JSONResponse | None:
    """None when signed in with a good CSRF header; else the JSON refusal."""
    principal = await run_in_threadpool(signed_in, request)
    if principal is None:
        return JSONResponse({"error": "signed out: sign in again", "accepted": False,
                             "reason": "signed out: sign in again"}, status_code=401)
    token, expected = request.headers.get("x-csrf-token"), request.session.get("csrf")
    if request.method == "POST" and (not token or not expected
                                     or not hmac.compare_digest(token, expected)):
        return JSONResponse({"error": "the page has expired: reload it", "accepted": False,
                             "reason": "the page has expired: reload it"}, status_code=403)
    return None


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


@router.get("/pack/parcels/{waybill}")
async def pack_parcel(request: Request, waybill: str) -> JSONResponse:
    refused = await _caller(request)
    if refused is not None:
        return refused
    from shipping import packing

    def read(session: Any) -> tuple[int, dict[str, Any]]:
        try:
            parcel = packing.open_parcel(session, waybill, lock=False)
        except packing.PackingRefused as exc:
            return (404 if str(exc).startswith("unknown") else 409), {
                "error": str(exc), "accepted": False, "reason": str(exc)}
        return 200, {"accepted": True, "reason": None, **P.view(session, parcel)}

    status, body = await run_in_threadpool(services(request).read, read)
    return JSONResponse(body, status_code=status)


@router.post("/pack/parcels/{waybill}/scan")
async def pack_scan(request: Request, waybill: str) -> JSONResponse:
    refused = await _caller(request)
    if refused is not None:
        return refused
    barcode = str((await _json(request)).get("barcode") or "")[:64]
    status, body = await do_scan(services(request), waybill, barcode)
    return JSONResponse(body, status_code=status)


@router.post("/pack/parcels/{waybill}/weigh")
async def pack_weigh(request: Request, waybill: str) -> JSONResponse:
    refused = await _caller(request)
    if refused is not None:
        return refused
    status, body = await do_weigh(services(request), waybill,
                                  (await _json(request)).get("weight_g"))
    return JSONResponse(body, status_code=status)
