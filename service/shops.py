"""`/v1/shops` (SPEC §5.9), admin keys only; no route ever returns a secret or token."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Body, Depends, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from temporalio.service import RPCError

from service.deps import ApiError, allow, services
from service.keys import Principal
from service.schemas import ErrorBody, ValidationErrorBody

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "no key, or an unknown or revoked key"},
    403: {"model": ErrorBody, "description": "only admin keys manage shops"},
    422: {"model": ValidationErrorBody, "description": "a field is not valid (named)"},
    503: {"model": ErrorBody, "description": "Temporal did not answer"},
}
_NAMED = {404: {"model": ErrorBody, "description": "no shop of that name"}}
router = APIRouter(prefix="/v1/shops", tags=["shops"], responses=_ERRORS)
ShopName = Path(min_length=1, max_length=40, description="the shop's name")


def _commands(request: Request) -> Any:
    from commands.shops import ShopCommands
    from runtime.codec import key_ring

    svc = services(request)
    return ShopCommands(svc.factory, svc.settings, key_ring(svc.settings))


async def _answer(call: Any) -> JSONResponse:
    from platforms.shops import ShopError

    try:
        return JSONResponse(await call)
    except ShopError as exc:
        first_field, first = exc.errors[0]
        raise ApiError(
            exc.status,
            f"{first_field}: {first}",
            field=first_field,
            errors=[{"field": f, "message": m} for f, m in exc.errors],
        ) from exc
    except RPCError as exc:
        raise ApiError(503, f"Temporal did not answer ({exc.message}); try again") from exc


@router.get("", summary="Every shop: platform, state, synced through, imported, last error")
async def get_shops(
    request: Request, principal: Principal = Depends(allow("shops"))
) -> JSONResponse:
    return JSONResponse(await run_in_threadpool(_commands(request).list))


@router.post(
    "",
    summary="Add a shop (the `shops add` fields) and start its sync",
    responses={409: {"model": ErrorBody, "description": "a shop of that name exists"}},
)
async def post_shop(
    request: Request,
    body: Any = Body(
        ...,
        description="name, platform, app_key, app_secret, session, api_url, "
        "poll_every, since, ship_within, carrier_ids, merge",
    ),
    principal: Principal = Depends(allow("shops")),
) -> JSONResponse:
    client = services(request).client
    return await _answer(_commands(request).add(client, body))


@router.patch("/{name}", responses=_NAMED, summary="Change a shop's settings after it was added")
async def patch_shop(
    request: Request,
    name: str = ShopName,
    body: Any = Body(
        ...,
        description="any of api_url, poll_every, ship_within, carrier_ids, merge; "
        "what is left out stays as it is",
        examples=[{"carrier_ids": "SF=44,ZTO=115", "merge": False}],
    ),
    principal: Principal = Depends(allow("shops")),
) -> JSONResponse:
    return await _answer(_commands(request).set(services(request).client, name, body))


@router.post("/{name}/pause", responses=_NAMED, summary="Pause the shop's sync (its Schedule)")
async def pause_shop(
    request: Request, name: str = ShopName, principal: Principal = Depends(allow("shops"))
) -> JSONResponse:
    return await _answer(_commands(request).pause(services(request).client, name))


@router.post("/{name}/resume", responses=_NAMED, summary="Resume the shop's sync")
async def resume_shop(
    request: Request, name: str = ShopName, principal: Principal = Depends(allow("shops"))
) -> JSONResponse:
    return await _answer(_commands(request).resume(services(request).client, name))


@router.post(
    "/{name}/token", responses=_NAMED, summary="A renewed session token (never shown again)"
)
async def renew_token(
    request: Request,
    name: str = ShopName,
    body: dict[str, Any] = Body(..., examples=[{"session": "6102..."}]),
    principal: Principal = Depends(allow("shops")),
) -> JSONResponse:
    token = body.get("session")
    if not isinstance(token, str):
        raise ApiError(422, "session: a session token (a string) is required", field="session")
    return await _answer(_commands(request).token(services(request).client, name, token))


@router.post(
    "/{name}/sync", responses=_NAMED, summary="The next window now, or a backfill of since..until"
)
async def sync_shop(
    request: Request,
    name: str = ShopName,
    body: dict[str, Any] | None = Body(
        None,
        examples=[{"since": "2026-11-26T00:00:00+08:00", "until": "2026-11-26T06:00:00+08:00"}],
    ),
    principal: Principal = Depends(allow("shops")),
) -> JSONResponse:
    body = body or {}
    times: dict[str, datetime | None] = {}
    for field in ("since", "until"):
        value = body.get(field)
        if value is None:
            times[field] = None
            continue
        try:
            times[field] = datetime.fromisoformat(str(value))
        except ValueError:
            raise ApiError(422, f"{field}: not an ISO time", field=field) from None
    wait = body.get("wait") is True
    return await _answer(
        _commands(request).sync(services(request).client, name, wait=wait, **times)
    )
