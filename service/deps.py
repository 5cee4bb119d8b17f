"""What every route needs: the process's Temporal client and database, and who is calling.

`Services` is built once per process in the app's lifespan. Nothing in it is state of the
service's own: the client, the engines and the metrics registry are plumbing; every fact
(orders, keys, stock) is in the database or in Temporal, so any number of copies can serve.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPBearer
from sqlalchemy import Engine
from temporalio.client import Client

from models.db import SessionFactory, transaction
from models.errors import OmsError
from models.settings import Settings
from service.keys import PERMISSIONS, Principal, find_key


class ApiError(OmsError):
    """An answer other than 200: status, a sentence, and any extra fields of the error body."""

    def __init__(self, status: int, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.extra = extra
        self.headers: dict[str, str] = {}


@dataclass
class Services:
    settings: Settings
    dev: bool
    client: Client
    engine: Engine
    read_engine: Engine
    factory: SessionFactory  # writes (restock hand-outs, keys) and the actions' reads
    reads: SessionFactory  # reads: one snapshot each, never waiting for a writer
    metrics: Any

    def read(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with transaction(self.reads) as session:
            return fn(session, *args, **kwargs)

    def write(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with transaction(self.factory) as session:
            return fn(session, *args, **kwargs)


def services(request: Request) -> Services:
    return request.app.state.oms


bearer = HTTPBearer(auto_error=False, description="An OMS API key: `oms keys create`")

ROLE_WORDS = {
    "submit": "submit orders",
    "read_orders": "read orders",
    "read_stock": "read stock",
    "read_events": "read the outbox",
    "operator_action": "take operator actions",
    "warehouse_action": "report warehouse events",
    "restock": "restock",
    "transfer": "report transfer arrivals",
    "codec": "use the codec endpoints",
    "metrics": "read metrics",
    "console": "sign in to the console",
    "keys": "manage keys",
    "reference": "load reference data",
    "shops": "manage platform shops",
}


def authenticate(request: Request) -> Principal:
    """The caller's key from `Authorization: Bearer <key>`; 401 when missing or unknown."""
    header = request.headers.get("authorization")
    if not header:
        raise _unauthorized("an API key is required: send Authorization: Bearer <key>")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise _unauthorized("the Authorization header must be: Bearer <key>")
    principal = services(request).read(find_key, key.strip())
    if principal is None:
        raise _unauthorized("unknown or revoked API key")
    request.state.principal = principal
    return principal


def forbid_unless(principal: Principal, permission: str) -> None:
    if not principal.may(permission):
        allowed = ", ".join(sorted(PERMISSIONS[permission]))
        raise ApiError(
            403,
            f"a {principal.role} key may not {ROLE_WORDS[permission]} (allowed: {allowed})",
            role=principal.role,
        )


def allow(permission: str) -> Callable[[Request], Principal]:
    """A dependency: the caller, if their role may do `permission` (else 401 / 403)."""

    def dependency(request: Request, _credentials: Any = Depends(bearer)) -> Principal:
        principal = authenticate(request)
        forbid_unless(principal, permission)
        return principal

    dependency.__name__ = f"allow_{permission}"
    return dependency


def _unauthorized(message: str) -> ApiError:
    error = ApiError(401, message)
    error.headers["WWW-Authenticate"] = "Bearer"
    return error
