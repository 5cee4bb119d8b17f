"""Tracking written back to the platforms (发货回传, SPEC §3.9, §8.11), once per shipment.

When a shipment ships, the order's own transaction writes a ``tracking_to_platform`` outbox
event (orders/shipments.py). Each run of a shop's sync first writes back the events of its
orders that are not done yet, and records each in `write_backs` under the event's id, so
a shipment is told to its platform once, whatever crashes or retries:

* Taobao: ``taobao.logistics.offline.send`` (``tid``, ``out_sid``, ``company_code``; a
  shipment that carries only some of the trade's lines: ``is_split=1`` and ``sub_tid``, the
  shipped lines' ``oid``s);
* Pinduoduo: ``pdd.logistics.online.send`` (``order_sn``, ``logistics_id`` from the shop's
  ``--carrier-ids``, ``tracking_number``).

Outcomes: taken, or "already shipped" on the platform -> ``done``; refused (a refund, say)
-> ``refused`` with the platform's reason; an expired session -> the shop's
``token_expired`` and the write-back ``waiting`` until `shops token`; a carrier with no
platform id -> ``waiting`` with the reason; a rate limit or the platform down -> retried
with backoff by the activity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select

from models.tables import Order, OutboxEvent, Shipment
from platforms.errors import CallRefused, PlatformError, SessionExpired
from platforms.tables import ShopOrder, WriteBack, utcnow

EVENT = "tracking_to_platform"
ALREADY_SHIPPED = ("B27", "order_already_shipped", "已发货")


@dataclass
class Pending:
    event_id: str
    order_id: str
    platform_order_id: str
    shipment_id: str
    carrier: str
    tracking_no: str
    split_lines: list[str] = field(default_factory=list)  # the shipped lines' platform ids


@dataclass
class WriteBackResult:
    done: int = 0
    refused: int = 0
    waiting: int = 0
    session_expired: str | None = None
    outcomes: list[dict[str, Any]] = field(default_factory=list)


def pending(session: Session, shop: str, limit: int = 500) -> list[Pending]:
    """The shop's shipped events not yet written back (new ones, and those waiting)."""
    finished = select(WriteBack.event_id).where(
        WriteBack.shop == shop, col(WriteBack.status).in_(["done", "refused"])
    )
    query = (
        select(OutboxEvent, ShopOrder.platform_order_id)
        .join(ShopOrder, col(ShopOrder.order_id) == col(OutboxEvent.order_id))
        .where(
            OutboxEvent.type == EVENT,
            ShopOrder.shop == shop,
            ShopOrder.outcome == "imported",
            col(OutboxEvent.id).not_in(finished),
        )
        .order_by(col(OutboxEvent.created_at), col(OutboxEvent.id))
        .limit(limit)
    )
    out = []
    for event, platform_order_id in session.exec(query).all():
        payload = event.payload or {}
        out.append(
            Pending(
                event_id=event.id,
                order_id=str(event.order_id),
                platform_order_id=platform_order_id,
                shipment_id=str(payload.get("shipment_id") or ""),
                carrier=str(payload.get("carrier") or ""),
                tracking_no=str(payload.get("tracking_no") or ""),
                split_lines=_split_lines(session, str(event.order_id), payload.get("shipment_id")),
            )
        )
    return out


def _split_lines(session: Session, order_id: str, shipment_id: Any) -> list[str]:
    """The platform line ids of a shipment that carries only part of the order, else []."""
    order = session.get(Order, order_id)
    shipment = session.get(Shipment, str(shipment_id)) if shipment_id else None
    if order is None or shipment is None:
        return []
    lines = (order.document or {}).get("lines") or []
    ordered: dict[str, int] = {}
    ids: dict[str, str] = {}
    for line in lines:
        sku = str(line.get("sku"))
        ordered[sku] = ordered.get(sku, 0) + int(line.get("qty") or 0)
        if line.get("platform_line_id"):
            ids.setdefault(sku, str(line["platform_line_id"]))
    shipped: dict[str, int] = {}
    for item in (shipment.pick_list or {}).get("lines", []):
        sku = str(item.get("sku"))
        shipped[sku] = shipped.get(sku, 0) + int(item.get("qty") or 0)
    if shipped == ordered:
        return []
    return sorted({ids[sku] for sku in shipped if sku in ids})


def send(client: Any, platform: str, item: Pending, carrier_ids: dict[str, int]) -> None:
    """One write-back call (raises the platform's error)."""
    if platform == "taobao":
        params: dict[str, Any] = {
            "tid": item.platform_order_id,
            "out_sid": item.tracking_no,
            "company_code": item.carrier,
        }
        if item.split_lines:
            params |= {"is_split": 1, "sub_tid": ",".join(item.split_lines)}
        client.call("taobao.logistics.offline.send", params)
        return
    logistics_id = carrier_ids.get(item.carrier.upper())
    if logistics_id is None:
        raise LookupError(
            f"no Pinduoduo carrier id for {item.carrier}: add it with --carrier-ids "
            f"{item.carrier}=<id>"
        )
    client.call(
        "pdd.logistics.online.send",
        {
            "order_sn": item.platform_order_id,
            "logistics_id": logistics_id,
            "tracking_number": item.tracking_no,
        },
    )


def write_back(
    client: Any, platform: str, items: list[Pending], carrier_ids: dict[str, int]
) -> tuple[WriteBackResult, list[dict[str, Any]]]:
    """Each pending item sent once; what to record. A retryable error is raised (after the
    items done so far are returned in the exception's `recorded`)."""
    result = WriteBackResult()
    records: list[dict[str, Any]] = []
    for item in items:
        status, reason = "done", None
        try:
            send(client, platform, item, carrier_ids)
        except SessionExpired as exc:
            result.session_expired = exc.reason()
            break
        except CallRefused as exc:
            text = f"{exc.sub_code} {exc.sub_msg} {exc.msg}"
            if any(mark in text for mark in ALREADY_SHIPPED):
                status, reason = "done", f"already shipped on the platform ({exc.reason()})"
            else:
                status, reason = "refused", exc.reason()
        except LookupError as exc:
            status, reason = "waiting", str(exc)
        except PlatformError as exc:
            if exc.retryable:
                exc.recorded = records  # type: ignore[attr-defined]
                raise
            status, reason = "refused", exc.reason()
        setattr(result, status, getattr(result, status) + 1)
        records.append({"item": item, "status": status, "reason": reason})
        result.outcomes.append(
            {
                "order_id": item.order_id,
                "shipment_id": item.shipment_id,
                "status": status,
                "reason": reason,
            }
        )
    return result, records


def record(session: Session, shop: str, records: list[dict[str, Any]]) -> None:
    now = utcnow()
    for r in records:
        item: Pending = r["item"]
        row = session.get(WriteBack, item.event_id)
        if row is None:
            row = WriteBack(
                event_id=item.event_id,
                order_id=item.order_id,
                shop=shop,
                shipment_id=item.shipment_id,
                carrier=item.carrier,
                tracking_no=item.tracking_no,
                status=r["status"],
                reason=r["reason"],
                tries=1,
                at=now,
            )
        else:
            row.status, row.reason, row.at = r["status"], r["reason"], now
            row.tries += 1
        session.add(row)
        order = session.get(ShopOrder, item.order_id)
        if order is not None:
            note = {
                "at": now.isoformat(),
                "change": "write_back",
                "shipment": item.shipment_id,
                "applied": r["status"] == "done",
                "reason": r["reason"],
            }
            order.changes = [*order.changes, note][-50:]
            session.add(order)
