"""The ASGI app: `create_app(settings)`.

The lifespan makes the process's one Temporal client (`runtime.temporal.connect`, so the
payload codec is the workers') and its database engines (`models.db`, shared with the
activities); routes reach them through `request.app.state.oms`. Errors are always
``{"error": "<sentence>", ...}``: a malformed request is a 4xx that names the field, and an
unreachable Temporal or database is a 503 that names which, never a 500.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import structlog
from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware
from temporalio.client import Client
from temporalio.service import RPCError

from models.db import make_engine, session_factory
from models.settings import Settings
from service.deps import ApiError, Services, allow, services
from service.metrics import Metrics, MetricsMiddleware
from service.schemas import ErrorBody, Health

log = structlog.get_logger()
HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "oms_console"
SESSION_MAX_AGE = 12 * 3600  # a working day


def create_app(
    settings: Settings,
    *,
    session_secret: str,
    dev: bool = False,
    client: Client | None = None,
) -> FastAPI:
    """The service. `session_secret` signs the console's cookie (no default: see
    `service.server.session_secret`). `client`: an already connected Temporal client
    (tests, or a process that has one); otherwise one is made in the lifespan."""
    if not session_secret or len(session_secret) < 32:
        raise ValueError("the session secret must be at least 32 characters")
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from runtime.temporal import connect

        engine = make_engine(settings.db_url)
        read_engine = make_engine(settings.db_url, read_only=True)
        try:
            temporal = client or await connect(settings)
            svc = Services(
                settings=settings,
                dev=dev,
                client=temporal,
                engine=engine,
                read_engine=read_engine,
                factory=session_factory(engine),
                reads=session_factory(read_engine),
                metrics=metrics,
            )
            metrics.watch_database(svc.read)
            app.state.oms = svc
            log.info("http service ready", address=settings.http_address, dev=dev)
            yield
        finally:
            engine.dispose()
            read_engine.dispose()

    app = FastAPI(
        title="OMS",
        version="1",
        summary="Order-management system on Temporal: intake, orders, actions, stock, outbox.",
        description=(
            "Authenticate with `Authorization: Bearer <key>` (`oms keys create --role ROLE "
            "--name NAME`). Roles: platform (submit, read orders), warehouse (warehouse "
            "events, restock, transfers, read orders and stock), clerk (every operator "
            "action, every read), admin (clerk + keys + reference data). Errors are "
            '`{"error": "<sentence>", ...}`.'
        ),
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    from service import api, codec, console, desk

    app.include_router(api.router)
    app.include_router(codec.router)
    app.include_router(console.router)
    app.include_router(desk.api)  # issue 21: bulk actions, paste-to-fill
    app.include_router(desk.pages)
    from service import shops as shops_api  # issue 19: /v1/shops

    app.include_router(shops_api.router)
    from service import pack as shipping_console
    from service import shipping as shipping_api

    app.include_router(shipping_api.router)
    app.include_router(shipping_console.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    _add_system_routes(app)
    _add_error_handlers(app)
    _add_document_schema(app)
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret,
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_MAX_AGE,
        same_site="lax",
        https_only=settings.session_cookie_secure,
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def _add_system_routes(app: FastAPI) -> None:
    @app.get(
        "/healthz",
        response_model=Health,
        responses={503: {"model": Health, "description": "the failing part is named"}},
        tags=["system"],
    )
    async def healthz(request: Request) -> JSONResponse:
        """No key needed: for load balancers and orchestrators."""
        svc = services(request)

        def database() -> str:
            try:
                with svc.read_engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
                return "ok"
            except Exception as exc:
                return f"failing: {type(exc).__name__}"

        async def temporal() -> str:
            try:
                await asyncio.wait_for(svc.client.service_client.check_health(), timeout=3)
                return "ok"
            except Exception as exc:
                return f"failing: {type(exc).__name__}"

        db, tp = await asyncio.gather(run_in_threadpool(database), temporal())
        ok = db == "ok" and tp == "ok"
        return JSONResponse(
            {"status": "ok" if ok else "failing", "temporal": tp, "database": db},
            status_code=200 if ok else 503,
        )

    @app.get(
        "/metrics",
        tags=["system"],
        response_class=Response,
        responses={
            200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                  "description": "Prometheus text format"},
            401: {"model": ErrorBody, "description": "no key, or an unknown or revoked key"},
            403: {"model": ErrorBody, "description": "this key's role may not do this"},
        },
    )
    def metrics(request: Request, _principal: Any = Depends(allow("metrics"))) -> Response:
        """Orders by stage, waits by kind and age, SLA breaches, webhook deliveries (from the
        database); API requests and latency (this process). A clerk or admin key."""
        body = generate_latest(services(request).metrics.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)


def _error(status: int, error: str, request: Request, headers: dict[str, str] | None = None,
           **extra: Any) -> JSONResponse:
    all_headers = dict(headers or {})
    if request.url.path.startswith("/codec"):
        from service.codec import cors_headers

        all_headers.update(cors_headers(request))
    return JSONResponse({"error": error, **extra}, status_code=status, headers=all_headers)


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        where, parts = parts[0], parts[1:]
        if not parts:
            return where
    return ".".join(parts) or "body"


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.error, request, exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for item in exc.errors():
            field = _field_name(item.get("loc", ()))
            message = str(item.get("msg", "not valid"))
            if message.startswith("Value error, "):
                message = message[len("Value error, "):]
            if item.get("type") == "json_invalid":
                field, message = "body", "not valid JSON"
            errors.append({"field": field, "message": message})
        first = errors[0] if errors else {"field": "body", "message": "not valid"}
        return _error(
            422, f"{first['field']}: {first['message']}", request, field=first["field"],
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI could not even decode the body (not UTF-8, ...)
            return _error(422, "body: not valid JSON", request, field="body",
                          errors=[{"field": "body", "message": "not valid JSON"}])
        message = {404: "no such route", 405: "method not allowed on this route"}.get(
            exc.status_code, str(exc.detail)
        )
        return _error(exc.status_code, message, request, getattr(exc, "headers", None))

    @app.exception_handler(RPCError)
    async def temporal_down(request: Request, exc: RPCError) -> JSONResponse:
        log.warning("temporal call failed", error=exc.message, status=str(exc.status))
        return _error(503, f"Temporal did not answer ({exc.message}); try again", request)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", route=request.url.path)
        return _error(500, "an unexpected error; it is logged", request)

    @app.exception_handler(OperationalError)
    @app.exception_handler(DBAPIError)
    async def database_down(request: Request, exc: Exception) -> JSONResponse:
        cause = getattr(exc, "orig", None) or exc  # the driver's error, without the statement
        log.warning("database call failed", error=type(cause).__name__,
                    detail=str(cause).splitlines()[0][:200] if str(cause) else "")
        return _error(503, "the database did not answer; try again", request)


def _add_document_schema(app: FastAPI) -> None:
    """The order document's JSON schema, referenced by the intake's request body."""
    from fastapi.openapi.utils import get_openapi

    from models.documents import OrderDocument

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, summary=app.summary,
            description=app.description, routes=app.routes,
        )
        doc = OrderDocument.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(doc.pop("$defs", {}))
        components["OrderDocument"] = doc
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
