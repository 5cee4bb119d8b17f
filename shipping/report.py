"""The desk's part of the operations report: the day's parcels by carrier, and what merging saved.

"Saved" is, for every merged parcel of the day, what its orders would have cost shipped one
parcel each (each order's own weight, by the same carrier's rate to the same province)
minus what the one parcel costs.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from html import escape
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from shipping import parcels as P
from shipping.reference import carriers as all_carriers


def summary(session: Session, *, since: datetime) -> dict[str, Any]:
    rows = session.execute(
        select(P.ParcelRow).where(P.ParcelRow.created_at >= since, P.ParcelRow.state != "void")
        .order_by(P.ParcelRow.created_at)
    ).scalars().all()
    carriers = {c.code: c for c in all_carriers(session)}
    by_carrier: dict[str, int] = {}
    merged = orders_merged = 0
    saved = Decimal("0")
    for parcel in rows:
        code = parcel.carrier or "none"
        by_carrier[code] = by_carrier.get(code, 0) + 1
        members = P.orders_in(session, parcel.parcel_id)
        if len(members) < 2 or parcel.carrier not in carriers:
            continue
        merged += 1
        orders_merged += len(members)
        carrier = carriers[parcel.carrier]
        province = str((P.document_of(session, members[0].order_id).get("address") or {})
                       .get("province") or "")
        lines = P.lines_of(session, parcel.parcel_id)
        alone = Decimal("0")
        for member in members:
            weight = sum(ln.weight_g * ln.qty for ln in lines if ln.order_id == member.order_id)
            alone += carrier.cost(province, weight) or Decimal("0")
        together = carrier.cost(province, parcel.expected_g) or Decimal("0")
        saved += max(Decimal("0"), alone - together)
    return {
        "parcels": len(rows),
        "by_carrier": dict(sorted(by_carrier.items(), key=lambda kv: (-kv[1], kv[0]))),
        "shipped": sum(1 for p in rows if p.state == "shipped"),
        "merged_parcels": merged,
        "orders_in_merged_parcels": orders_merged,
        "saved_by_merging": str(saved.quantize(Decimal("0.01"))),
    }


def html(figures: dict[str, Any], chart: Any) -> str:
    """The report's section: a bar chart by carrier and one sentence on merging."""
    return "\n".join([
        "<h2>Parcels of the day</h2><div class='charts'>",
        chart("Parcels by carrier", list(figures["by_carrier"].items()), color="#2f6fb0"),
        "</div>",
        f"<p>{figures['parcels']} parcel(s), {figures['shipped']} shipped; "
        f"{figures['merged_parcels']} merged parcel(s) carried "
        f"{figures['orders_in_merged_parcels']} orders and saved "
        f"¥{escape(figures['saved_by_merging'])} against one parcel an order.</p>",
    ])
