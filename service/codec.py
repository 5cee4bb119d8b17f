"""Temporal's codec-server endpoints: `POST /codec/decode` and `POST /codec/encode` (SPEC §5.8).

The Temporal Web UI (and `temporal` CLI) send ``{"payloads": [{"metadata": {k: base64},
"data": base64}]}`` and get the same shape back, decoded or encoded by the codec of the
service's own Temporal client (`client.data_converter.payload_codec`, the one the workers
use). With no codec configured the payloads pass through unchanged.

Access: `clerk` and `admin` keys. When the service runs in --dev mode on loopback, the
local Web UI may call without a key; a `platform` or `warehouse` key is refused even then.
CORS is answered for the Temporal UI's origins (preflight included).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from typing import Any

import structlog
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from temporalio.api.common.v1 import Payload

from service.deps import ApiError, authenticate, forbid_unless, services
from service.schemas import CodecBody, ErrorBody

log = structlog.get_logger()
router = APIRouter(prefix="/codec", tags=["codec"])
MAX_PAYLOADS = 1000
ALLOWED_HEADERS = "authorization, content-type, x-namespace"


def cors_origins(settings: Any) -> set[str]:
    if settings.codec_cors_origins:
        return {o.rstrip("/") for o in settings.codec_cors_origins}
    _host, port = settings.temporal_host_port
    ui = port + 1000
    return {f"http://localhost:{ui}", f"http://127.0.0.1:{ui}"}


def cors_headers(request: Request) -> dict[str, str]:
    origin = request.headers.get("origin")
    if not origin or origin.rstrip("/") not in cors_origins(services(request).settings):
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": ALLOWED_HEADERS,
        "Access-Control-Max-Age": "600",
        "Vary": "Origin",
    }


def _loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _allowed(request: Request) -> None:
    """clerk/admin keys; in --dev on loopback also no key. platform/warehouse: 403 always."""
    svc = services(request)
    has_key = bool(request.headers.get("authorization"))
    if not has_key and svc.dev:
        bound = svc.settings.http_host_port[0]
        if _loopback(bound) and _loopback(request.client.host if request.client else None):
            return
    principal = authenticate(request)
    forbid_unless(principal, "codec")


def _payloads(body: CodecBody) -> list[Payload]:
    if len(body.payloads) > MAX_PAYLOADS:
        raise ApiError(422, f"payloads: at most {MAX_PAYLOADS} at a time", field="payloads")
    out = []
    for i, p in enumerate(body.payloads):
        try:
            metadata = {k: base64.b64decode(v, validate=True) for k, v in p.metadata.items()}
            data = base64.b64decode(p.data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ApiError(422, f"payloads.{i}: not base64 ({exc})", field=f"payloads.{i}") from exc
        out.append(Payload(metadata=metadata, data=data))
    return out


def _json(payloads: list[Payload]) -> dict[str, Any]:
    return {
        "payloads": [
            {
                "metadata": {k: base64.b64encode(v).decode() for k, v in p.metadata.items()},
                "data": base64.b64encode(p.data).decode(),
            }
            for p in payloads
        ]
    }


_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "no key (outside --dev loopback) or a bad key"},
    403: {"model": ErrorBody, "description": "a platform or warehouse key"},
    422: {"model": ErrorBody, "description": "not the codec-server shape, or not base64"},
}


@router.post("/decode", response_model=CodecBody, responses=_RESPONSES)
async def decode(request: Request, body: CodecBody) -> JSONResponse:
    """Payloads as the workers wrote them → as the workflow code saw them. A payload this
    codec cannot decode (another key, not ours) comes back as it was."""
    _allowed(request)
    codec = services(request).client.data_converter.payload_codec
    payloads = _payloads(body)
    if codec is not None:
        decoded = []
        for payload in payloads:
            try:
                decoded.extend(await codec.decode([payload]))
            except Exception as exc:  # undecodable: shown as stored, never a 500
                log.warning("codec: payload not decoded", error=type(exc).__name__)
                decoded.append(payload)
        payloads = decoded
    return JSONResponse(_json(payloads), headers=cors_headers(request))


@router.post("/encode", response_model=CodecBody, responses=_RESPONSES)
async def encode(request: Request, body: CodecBody) -> JSONResponse:
    """Payloads typed in the UI (e.g. a signal's input) → as the workers expect them."""
    _allowed(request)
    codec = services(request).client.data_converter.payload_codec
    payloads = _payloads(body)
    if codec is not None:
        try:
            payloads = list(await codec.encode(payloads))
        except Exception as exc:
            raise ApiError(422, f"payloads: cannot encode ({type(exc).__name__})", field="payloads") from exc
    return JSONResponse(_json(payloads), headers=cors_headers(request))


@router.options("/decode", include_in_schema=False)
@router.options("/encode", include_in_schema=False)
async def preflight(request: Request) -> Response:
    headers = cors_headers(request)
    return Response(status_code=204 if headers else 403, headers=headers)
