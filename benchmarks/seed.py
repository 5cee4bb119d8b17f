"""Orders written straight into the database by the project's own persistence code.

`seed_order` records a document the way the first check does (`OrderActivities._record`)
and then writes the workflow's view of it the way every pause does (`write_state`), so the
rows, the lines, the timeline and the flag index are exactly what a running order leaves.
No workflow runs: this is for reads at scale (benchmarks/service.py) and for tests of the
list queries.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from activities.orders import OrderActivities
from models.documents import OrderDocument
from models.payloads import LineState, OrderSnapshot, PersistInput
from models.types import Finding, TimelineEvent
from orders.store import write_state

# (stage, waiting_for) of the waits a clerk works, and of orders that are done
WAITS = {
    "awaiting_buyer": "buyer",
    "awaiting_payment": "payment",
    "backordered": "stock",
    "awaiting_transfer": "transfer",
    "awaiting_approval": "approval",
    "released": "warehouse",
    "on_hold": "operator",
    "completed": None,
    "cancelled": None,
}


def seed_order(
    session: Any,
    doc: OrderDocument,
    *,
    stage: str,
    flags: list[str] | None = None,
    findings: list[dict[str, Any]] | None = None,
    submitted_at: datetime,
    stage_since: datetime | None = None,
    search_key: bytes | None = None,
) -> None:
    OrderActivities._record(session, doc, submitted_at, search_key=search_key)
    since = stage_since or submitted_at
    snapshot = OrderSnapshot(
        order_id=doc.order_id,
        stage=stage,
        waiting_for=WAITS.get(stage),
        stage_since=since,
        flags=list(flags or []),
        findings=[Finding.model_validate(f) for f in findings or []],
        document=doc,
        lines=[
            LineState(line_no=no, sku=line.sku, qty=line.qty, unit_price=line.unit_price,
                      shipped=line.qty if stage == "completed" else 0,
                      cancelled=line.qty if stage == "cancelled" else 0,
                      reserved=line.qty if stage in ("released", "awaiting_approval") else 0,
                      backordered=line.qty if stage == "backordered" else 0)
            for no, line in enumerate(doc.lines, start=1)
        ],
        shipments=[],
    )
    events = [
        TimelineEvent(seq=1, at=submitted_at, type="received", data={}),
        TimelineEvent(seq=2, at=since, type="stage",
                      data={"stage": stage, "previous": "checking", "waiting_for": WAITS.get(stage)}),
    ]
    write_state(session, PersistInput(snapshot=snapshot, events=events), search_key)
