"""The desk's HTTP routes (SPEC §5.11): labels, parcels, the scan and the weigh.

For `warehouse`, `clerk` and `admin` keys (the clerk's carrier pick: `clerk`, `admin`). A
malformed body is a 422 naming the field; an unknown waybill a 404; a refused scan or weight
a 409 carrying the same body as an accepted one (`accepted: false` and the reason).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from commands.shipping import due, ship_parcel
from service.api import _ERRORS
from service.deps import ApiError, allow, services
from service.keys import Principal
from service.schemas import ErrorBody
from shipping import packing
from shipping import parcels as P
from shipping.desk import LabelProblem, labels_for

router = APIRouter(prefix="/v1", tags=["shipping desk"], responses=_ERRORS)

PDF = {200: {"content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
             "description": "one PDF, a page a parcel; `X-OMS-Waybills` lists their waybills"}}
NOT_PRINTED = {404: {"model": ErrorBody, "description": "an unknown order"},
               409: {"model": ErrorBody, "description": "not printable now (not released, "
                                                        "cancelled, a held parcel), with why"}}


class ParcelLineOut(BaseModel):
    order_id: str
    sku: str
    qty: int
    scanned: int = 0
    name: str | None = None


class ParcelOut(BaseModel):
    """A parcel: carrier, waybill, the orders in it, its lines with what is scanned, state."""

    model_config = ConfigDict(extra="allow")
    parcel_id: str
    carrier: str | None
    waybill: str | None
    orders: list[str]
    lines: list[ParcelLineOut]
    state: str
    weight_g: int | None


class ScanOut(BaseModel):
    """A scan's answer: accepted or refused with the reason; the lines as they stand."""

    model_config = ConfigDict(extra="allow")
    accepted: bool
    reason: str | None = None
    lines: list[ParcelLineOut] = Field(default_factory=list)
    complete: bool = False
    state: str | None = None


class WeighOut(BaseModel):
    """A weight's answer: accepted, or refused with the expected range [low, high] in grams."""

    model_config = ConfigDict(extra="allow")
    accepted: bool
    reason: str | None = None
    expected_g: list[int] | None = None
    state: str | None = None


class LabelsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_ids: list[str] = Field(min_length=1, max_length=500)
    size: str | None = Field(default=None, pattern=r"^(76x130|100x180)$")


class ScanBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    barcode: str = Field(min_length=1, max_length=64)


class WeighBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    weight_g: Any = Field(description="grams, a positive number")


class CarrierBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    carrier: str = Field(min_length=1, max_length=20)


async def _labels(request: Request, order_ids: list[str], size: str | None) -> Response:
    svc = services(request)
    size = size or svc.settings.policy.shipping.label_size
    try:
        pdf, printed = await run_in_threadpool(labels_for, svc.factory, order_ids, size=size)
    except LabelProblem as exc:
        status = 404 if str(exc).startswith("unknown order") else 409
        raise ApiError(status, str(exc)) from exc
    except P.ParcelProblem as exc:
        raise ApiError(409, str(exc)) from exc
    if due("print", svc.settings.policy.shipping.ship_on):
        for p in printed:
            await ship_parcel(svc.client, svc.factory, p["parcel_id"])
    return Response(pdf, media_type="application/pdf", headers={
        "Content-Disposition": 'inline; filename="labels.pdf"',
        "X-OMS-Waybills": ",".join(p["waybill"] for p in printed),
    })


@router.get("/orders/{order_id}/labels.pdf", response_class=Response,
            responses={**PDF, **NOT_PRINTED})
async def order_labels(request: Request, order_id: str,
                       size: str | None = Query(None, pattern=r"^(76x130|100x180)$"),
                       _p: Principal = Depends(allow("warehouse_action"))) -> Response:
    """The labels of one order's parcels (a parcel with no waybill yet gets one first)."""
    return await _labels(request, [order_id], size)


@router.post("/labels", response_class=Response, responses={**PDF, **NOT_PRINTED})
async def batch_labels(request: Request, body: LabelsBody = Body(...),
                       _p: Principal = Depends(allow("warehouse_action"))) -> Response:
    """One PDF of the labels of these orders' parcels, a page a parcel."""
    return await _labels(request, body.order_ids, body.size)


def _parcel(session: Any, waybill: str) -> dict[str, Any]:
    parcel = P.by_waybill(session, waybill)
    if parcel is None:
        raise ApiError(404, f"unknown waybill {waybill!r}")
    return P.view(session, parcel)


@router.get("/parcels/{waybill}", response_model=ParcelOut,
            responses={404: {"model": ErrorBody, "description": "an unknown waybill"}})
async def get_parcel(request: Request, waybill: str,
                     _p: Principal = Depends(allow("warehouse_action"))) -> dict[str, Any]:
    """A parcel by its waybill: carrier, orders, lines with what is scanned, state."""
    return await run_in_threadpool(services(request).read, _parcel, waybill)


async def _maybe_ship(svc: Any, waybill: str, reached: str) -> list[dict[str, Any]]:
    if not due(reached, svc.settings.policy.shipping.ship_on):
        return []

    def parcel_id(session: Any) -> str | None:
        parcel = P.by_waybill(session, waybill)
        return parcel.parcel_id if parcel else None

    pid = await run_in_threadpool(svc.read, parcel_id)
    return await ship_parcel(svc.client, svc.factory, pid) if pid else []


async def do_scan(svc: Any, waybill: str, barcode: str) -> tuple[int, dict[str, Any]]:
    """A scan as the API and the packing page answer it: (HTTP status, body)."""
    try:
        got = await run_in_threadpool(svc.write, packing.scan, waybill, barcode)
    except packing.PackingRefused as exc:
        status = 404 if str(exc).startswith("unknown waybill") else 409
        return status, {"error": str(exc), "accepted": False, "reason": str(exc),
                        "barcode": barcode, "lines": [], "complete": False, "state": None}
    result = got.as_dict()
    if got.accepted and got.state == "verified":
        result["shipped"] = await _maybe_ship(svc, waybill, "verify")
        if result["shipped"] and all(o["accepted"] for o in result["shipped"]):
            result["state"] = "shipped"
    return (200 if got.accepted else 409), result


async def do_weigh(svc: Any, waybill: str, weight: Any) -> tuple[int, dict[str, Any]]:
    """A weigh as the API and the packing page answer it: (HTTP status, body)."""
    try:
        packing.parse_weight(weight)
    except ValueError as exc:
        return 422, {"error": str(exc), "field": "weight_g", "accepted": False,
                     "reason": str(exc), "expected_g": None,
                     "errors": [{"field": "weight_g", "message": str(exc).split(": ", 1)[1]}]}
    try:
        got = await run_in_threadpool(svc.write, packing.weigh, waybill, weight,
                                      svc.settings.policy.weigh)
    except packing.PackingRefused as exc:
        status = 404 if str(exc).startswith("unknown waybill") else 409
        return status, {"error": str(exc), "accepted": False, "reason": str(exc),
                        "expected_g": None, "state": None}
    result = got.as_dict()
    if got.accepted:
        result["shipped"] = await _maybe_ship(svc, waybill, "weigh")
        if result["shipped"] and all(o["accepted"] for o in result["shipped"]):
            result["state"] = "shipped"
    return (200 if got.accepted else 409), result


@router.post("/parcels/{waybill}/scan", response_model=ScanOut, responses={
    404: {"model": ScanOut, "description": "an unknown waybill"},
    409: {"model": ScanOut, "description": "refused, counting nothing: the reason says why"}})
async def scan(request: Request, waybill: str, body: ScanBody = Body(...),
               _p: Principal = Depends(allow("warehouse_action"))) -> JSONResponse:
    """One item's barcode: counted (200), or refused with why (409), counting nothing."""
    status, result = await do_scan(services(request), waybill, body.barcode)
    return JSONResponse(result, status_code=status)


@router.post("/parcels/{waybill}/weigh", response_model=WeighOut, responses={
    404: {"model": WeighOut, "description": "an unknown waybill"},
    409: {"model": WeighOut, "description": "refused: outside the expected range, or not "
                                            "complete; the reason says why"}})
async def weigh(request: Request, waybill: str, body: WeighBody = Body(...),
                _p: Principal = Depends(allow("warehouse_action"))) -> JSONResponse:
    """The parcel's weight: accepted (200), or refused (409) with the expected range; a
    weight that is no positive number is a 422 naming `weight_g`."""
    status, result = await do_weigh(services(request), waybill, body.weight_g)
    return JSONResponse(result, status_code=status)


@router.post("/parcels/by-id/{parcel_id}/carrier", response_model=ParcelOut, responses={
    404: {"model": ErrorBody, "description": "no such parcel"},
    409: {"model": ErrorBody, "description": "refused (unknown carrier, COD, printed), with why"}})
async def pick_carrier(request: Request, parcel_id: str, body: CarrierBody = Body(...),
                       principal: Principal = Depends(allow("operator_action"))) -> dict[str, Any]:
    """A clerk's carrier for a parcel (one held `no_carrier`, say); 409 with why if refused."""
    from commands.shipping import pick_and_issue

    svc = services(request)
    try:
        return await pick_and_issue(svc.client, svc.factory, parcel_id, body.carrier,
                                    by=principal.name)
    except P.ParcelProblem as exc:
        raise ApiError(409 if str(exc) != "no such parcel" else 404, str(exc)) from exc
