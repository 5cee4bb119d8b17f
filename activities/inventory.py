"""Inventory activities: thin, idempotent wrappers around the ledger (`inventory`).

Each runs in one database transaction under an idempotency key chosen by the
workflow, so Temporal may retry it freely. Business errors (unknown transfer,
too few units) are non-retryable `ApplicationError`s of type ``LedgerError``.
These are synchronous activities: the worker runs them in a thread pool, never
on the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from sqlmodel import Session
from temporalio import activity

from inventory.booking import allocate_once
from inventory.ledger import LedgerError, release_order, restock, run_once
from inventory.warehouse import pick_exception, transfer_arrival
from models.db import SessionFactory
from models.errors import ErrorType, application_error
from models.payloads import (
    AllocateInput,
    AllocateResult,
    PickExceptionInput,
    PickExceptionResult,
    ReleaseStockInput,
    ReleaseStockResult,
    RestockInput,
    RestockResult,
    TransferArrivalInput,
)

log = structlog.get_logger()


class InventoryActivities:
    def __init__(self, factory: SessionFactory) -> None:
        self._factory = factory

    def _once(self, op_key: str, fn: Callable[[Session], dict[str, Any]]) -> dict[str, Any]:
        try:
            return run_once(self._factory, op_key, fn)
        except LedgerError as exc:
            raise application_error(ErrorType.LEDGER, str(exc)) from exc

    @activity.defn(name="allocate", no_thread_cancel_exception=True)
    def allocate(self, inp: AllocateInput) -> AllocateResult:
        return allocate_once(self._factory, inp)

    @activity.defn(name="release_stock", no_thread_cancel_exception=True)
    def release_stock(self, inp: ReleaseStockInput) -> ReleaseStockResult:
        def work(session: Session) -> dict[str, Any]:
            units, served = release_order(
                session,
                order_id=inp.order_id,
                line_nos=inp.line_nos,
                include_reserved=inp.include_reserved,
                ref=inp.op_key,
            )
            return {"released_units": units, "served": served}

        return ReleaseStockResult.model_validate(self._once(inp.op_key, work))

    @activity.defn(name="restock", no_thread_cancel_exception=True)
    def restock(self, inp: RestockInput) -> RestockResult:
        def work(session: Session) -> dict[str, Any]:
            served = restock(
                session, sku=inp.sku, warehouse=inp.warehouse, qty=inp.qty, ref=inp.op_key
            )
            return {"served": served}

        return RestockResult.model_validate(self._once(inp.op_key, work))

    @activity.defn(name="transfer_arrival", no_thread_cancel_exception=True)
    def transfer_arrival(self, inp: TransferArrivalInput) -> dict[str, Any]:
        return self._once(
            inp.op_key,
            lambda s: transfer_arrival(s, transfer_id=inp.transfer_id, ref=inp.op_key),
        )

    @activity.defn(name="pick_exception", no_thread_cancel_exception=True)
    def pick_exception(self, inp: PickExceptionInput) -> PickExceptionResult:
        def work(session: Session) -> dict[str, Any]:
            lines = pick_exception(
                session,
                order_id=inp.order_id,
                shipment_id=inp.shipment_id,
                sku=inp.sku,
                qty=inp.qty,
                reason=inp.reason,
                ref=inp.op_key,
            )
            return {"lines": lines}

        return PickExceptionResult.model_validate(self._once(inp.op_key, work))
