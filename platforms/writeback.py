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

**The outcome in the order's timeline, a refusal flagged** (`tell_order`). Each distinct
outcome of a shipment's write-back (a new status or a new reason: ``done``, already shipped,
``refused`` with the platform's reason, ``waiting`` for a renewed token or a carrier id) is
one timeline entry of type ``write_back``; a refusal also raises the order's flag
``platform_ship_refused`` (``orders.flags`` and its index ``order_flags``) for a clerk. Both
are written here, by the sync's activity, in the transaction that records the outcome in
`write_backs`: the outcome is new exactly when that row's status or reason changes, so a
write-back that waits through three runs is one entry, and a retried activity writes none
twice.

Why not a signal to the order's workflow, to record it itself: a write-back happens at the
shop's next sync run, after the shipment shipped, and by then the order's workflow has
usually completed (the default completes on ``shipped``); one still running may be closing
(a signal that lands after its last state write is never persisted), and a completed one
cannot take a signal at all. So one path for every order, its rows written directly, and the
workflow's own state writer made to leave them alone:

* timeline entries are numbered from `SEQ_BASE` up, a range the workflow never reaches
  (its entries are numbered 1, 2, ... and a history ends long before a million), so they
  never take a number the workflow will write later (`orders.store.write_state` skips an
  entry whose number is taken); the timeline is read in number order, so they are listed
  after the workflow's entries of that moment (for an order still waiting for its delivery,
  a later ``delivered`` is listed above them);
* the flag is one the workflow never raises nor drops: `orders.store.write_state` keeps
  such flags (``OUTSIDE_FLAGS``) when it writes the workflow's flags over the row, and takes
  the order's row ``FOR UPDATE`` on PostgreSQL (as `tell_order` does here; SQLite's
  ``BEGIN IMMEDIATE`` serialises both already), so neither write is lost to the other.

The workflow's ``OrderFlags`` search attribute (the Temporal UI) does not carry it; the
OMS's flags (``status --json``, the console's queue filter, search by flag) do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete
from sqlmodel import Session, col, func, select

from models.db import insert_new, is_postgres
from models.enums import Flag
from models.errors import OmsError
from models.tables import Order, OrderFlag, OutboxEvent, Shipment, TimelineEntry
from platforms.errors import CallRefused, PlatformError, SessionExpired
from platforms.tables import ShopOrder, WriteBack, utcnow
from privacy.mask import Known, scrub

EVENT = "tracking_to_platform"
ALREADY_SHIPPED = ("B27", "order_already_shipped", "已发货")
ENTRY = "write_back"  # the timeline entry's type
FLAG = Flag.PLATFORM_SHIP_REFUSED
SEQ_BASE = 1_000_000  # timeline numbers written beside the workflow: after any of its own


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
    for n, item in enumerate(items):
        status, reason = "done", None
        try:
            send(client, platform, item, carrier_ids)
        except SessionExpired as exc:
            # This one and the rest wait for the token (`oms shops token`): said once each.
            result.session_expired = exc.reason()
            why = (f"the shop's session expired ({exc.reason()}): sent once its token is "
                   "renewed (`oms shops token`)")
            for rest in items[n:]:
                result.waiting += 1
                records.append({"item": rest, "status": "waiting", "reason": why,
                                "tried": rest is item})
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
    """The outcomes in `write_backs`, each new one told to its order (`tell_order`)."""
    now = utcnow()
    for r in records:
        item: Pending = r["item"]
        tried = int(r.get("tried", True))
        row = session.get(WriteBack, item.event_id)
        if row is None or (row.status, row.reason) != (r["status"], r["reason"]):
            tell_order(session, item, r["status"], r["reason"], now)
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
                tries=tried,
                at=now,
            )
        else:
            row.status, row.reason, row.at = r["status"], r["reason"], now
            row.tries += tried
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


def tell_order(session: Session, item: Pending, status: str, reason: str | None, now: Any) -> None:
    """One outcome in the order's timeline; a refusal flags the order (see the module doc)."""
    order = session.get(Order, item.order_id, with_for_update=is_postgres(session))
    if order is None:
        return
    shipment = session.get(Shipment, item.shipment_id) if item.shipment_id else None
    data = {
        "shipment": shipment.shipment_no if shipment is not None else item.shipment_id,
        "carrier": item.carrier,
        "tracking_no": item.tracking_no,
        "platform": order.platform,
        "outcome": status,
        "reason": reason,
    }
    entry_beside(session, order, ENTRY, data, now)
    if status == "refused" and FLAG not in (order.flags or []):
        order.flags = [*(order.flags or []), str(FLAG)]
        session.add(order)
        insert_new(
            session,
            OrderFlag.__table__,
            {"order_id": order.order_id, "flag": str(FLAG), "created_at": order.created_at},
        )
    elif status == "done" and FLAG in (order.flags or []):
        # Taken after a refusal (a clerk resent it): the flag goes once none is refused still.
        still = session.exec(
            select(WriteBack.event_id).where(
                WriteBack.order_id == order.order_id,
                WriteBack.status == "refused",
                WriteBack.event_id != item.event_id,
            )
        ).first()
        if still is None:
            drop_flag(session, order, str(FLAG))


def drop_flag(session: Session, order: Order, flag: str) -> None:
    """A flag raised beside the workflow goes: off the order's row and its flag index."""
    order.flags = [f for f in (order.flags or []) if f != flag]
    session.add(order)
    session.execute(
        delete(OrderFlag).where(col(OrderFlag.order_id) == order.order_id, col(OrderFlag.flag) == flag)
    )


class ResendRefused(OmsError, ValueError):
    """A write-back that cannot be sent again (`status`: the HTTP status that says why)."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


def resend(session: Session, order_id: str, *, by: str, note: str | None,
           now: Any = None) -> list[dict[str, Any]]:
    """A clerk sends the order's refused write-backs again, once what the platform refused
    for is settled (the buyer withdrew the refund, the carrier code fixed): each is sent at
    its shop's next sync run (or `oms shops sync SHOP` now), once, like any write-back; the
    timeline says who and why. The flag `platform_ship_refused` goes when the platform takes
    it; refused again, it stays, with the new reason. Answers the write-backs resent."""
    order = session.get(Order, order_id, with_for_update=is_postgres(session))
    if order is None:
        raise ResendRefused(f"order_id: no order {order_id!r}", 404)
    rows = session.exec(
        select(WriteBack)
        .where(WriteBack.order_id == order_id, WriteBack.status == "refused")
        .order_by(col(WriteBack.at))
    ).all()
    if not rows:
        raise ResendRefused(f"order_id: {order_id} has no write-back the platform refused")
    now = now or utcnow()
    for row in rows:  # the note goes to the timeline only, masked there
        row.status, row.reason, row.at = "waiting", f"sent again by {by}"[:500], now
        session.add(row)
    shipments = [session.get(Shipment, r.shipment_id) for r in rows]
    entry_beside(session, order, "write_back_resent", {
        "platform": order.platform, "by": by, "note": note or None,
        "shipments": [sh.shipment_no if sh is not None else r.shipment_id
                      for sh, r in zip(shipments, rows, strict=True)],
    }, now, phones_in_text=True)
    session.flush()
    return [{"shop": r.shop, "shipment_id": r.shipment_id, "carrier": r.carrier,
             "tracking_no": r.tracking_no} for r in rows]


def entry_beside(session: Session, order: Order, type_: str, data: dict[str, Any], now: Any,
                 *, phones_in_text: bool = False) -> None:
    """One timeline entry written beside the order's workflow: numbered after any of its own
    (`SEQ_BASE`), its values masked as the workflow's entries are (the buyer's phone and door
    address; with `phones_in_text`, any phone in free text too)."""
    last = session.exec(
        select(func.max(TimelineEntry.seq)).where(TimelineEntry.order_id == order.order_id)
    ).one()
    document = order.document or {}
    known = Known.values(
        phone=(document.get("buyer") or {}).get("phone"),
        detail=(document.get("address") or {}).get("detail"),
    )
    session.add(
        TimelineEntry(
            order_id=order.order_id,
            seq=max((last or 0) + 1, SEQ_BASE + 1),
            at=now,
            type=type_,
            data=scrub({k: v for k, v in data.items() if v is not None}, known,
                       phones_in_text=phones_in_text),
        )
    )
