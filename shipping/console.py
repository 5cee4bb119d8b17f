"""The packing desk page (`/pack`, SPEC §5.11) for a barcode scanner that types and presses Enter.

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
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape

from service.console import SECURITY_HEADERS, csrf_token, signed_in, to_login
from service.deps import services
from shipping import parcels as P
from shipping.api import do_scan, do_weigh

HERE = Path(__file__).resolve().parent
SERVICE = HERE.parent / "service"
router = APIRouter(include_in_schema=False)
env = Environment(
    loader=ChoiceLoader([FileSystemLoader(HERE / "templates"),
                         FileSystemLoader(SERVICE / "templates")]),
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
