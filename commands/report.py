"""The operations report (SPEC §7): `python starter.py report [--out DIR]`.

`write_report` writes ``report.html`` (inline SVG bar charts, no plotting
library) and ``summary.json`` (every figure the page shows). It reads only the
database, the source of truth for lists and reports, with plain ORM queries so
it runs the same on SQLite and PostgreSQL, and on an empty database.

What the clerk sees first is what needs a hand today: cancellations of the
last 24 hours with their reasons, orders on hold or waiting for approval, for
the buyer, for payment or for a shortage decision, overdue picks, failed
webhooks and rejected signals. Below that: orders by stage, flags by code,
shortage outcomes, time spent in each stage (median, p95) and the fulfilment
rate (shipments shipped within the pick SLA of their release, over those due:
shipped, or open past the SLA; "—" while none is due).
"""

from __future__ import annotations

import html
import json
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from models.enums import Flag, Stage
from models.settings import Policy
from models.tables import Order, OutboxEvent, Shipment, TimelineEntry, to_utc

DAY = timedelta(hours=24)
WAITING_STAGES = (Stage.BACKORDERED, Stage.AWAITING_TRANSFER)


# ------------------------------------------------------------------ figures


def percentile(values: Sequence[float], p: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _iso(value: datetime | None) -> str | None:
    return to_utc(value).isoformat() if value is not None else None


def build_summary(
    session: Session,
    *,
    policy: Policy | None = None,
    now: datetime | None = None,
    buyer_stale_after: timedelta | None = None,
) -> dict[str, Any]:
    """Every figure of the report, JSON-ready."""
    if policy is None:
        from models.settings import Settings

        policy = Settings().policy
    now = to_utc(now or datetime.now(UTC))
    since = now - DAY
    sla = policy.pick.escalate_after
    stale = buyer_stale_after if buyer_stale_after is not None else policy.confirmation.remind_every

    orders = list(
        session.execute(select(Order).order_by(Order.created_at, Order.order_id)).scalars()
    )
    by_id = {o.order_id: o for o in orders}
    entries = session.execute(
        select(TimelineEntry)
        .where(
            col(TimelineEntry.type).in_(
                ["stage", "allocated", "shortage_decision_applied", "signal_rejected"]
            )
        )
        .order_by(TimelineEntry.order_id, TimelineEntry.seq)
    ).scalars()
    stages_of: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    short_at: dict[str, datetime] = {}
    short_policy: dict[str, str] = {}
    decisions: Counter[str] = Counter()
    rejected: list[dict[str, Any]] = []
    for e in entries:
        at, data = to_utc(e.at), e.data or {}
        if e.type == "stage" and data.get("stage"):
            stages_of[e.order_id].append((at, str(data["stage"])))
        elif e.type == "allocated" and data.get("shortfalls") and e.order_id not in short_at:
            short_at[e.order_id] = at
            short_policy[e.order_id] = str(data.get("policy") or "unknown")
        elif e.type == "shortage_decision_applied":
            decisions[str(data.get("policy") or "unknown")] += 1
        elif e.type == "signal_rejected" and at >= since:
            rejected.append(
                {
                    "order_id": e.order_id,
                    "at": at.isoformat(),
                    "signal": data.get("signal"),
                    "reason": data.get("reason"),
                }
            )

    by_stage = {str(s): 0 for s in Stage}
    for o in orders:
        by_stage[o.stage] = by_stage.get(o.stage, 0) + 1
    flags: Counter[str] = Counter(f for o in orders for f in (o.flags or []))

    # time in each stage: between consecutive stage entries of one order
    durations: dict[str, list[float]] = defaultdict(list)
    for changes in stages_of.values():
        changes.sort(key=lambda c: c[0])
        for (start, stage), (end, _next) in zip(changes, changes[1:], strict=False):
            durations[stage].append((end - start).total_seconds())
    order_index = {str(s): i for i, s in enumerate(Stage)}
    time_in_stage = {
        stage: {
            "count": len(values),
            "median_s": round(statistics.median(values), 3),
            "p95_s": round(percentile(values, 95) or 0.0, 3),
        }
        for stage, values in sorted(durations.items(), key=lambda kv: order_index.get(kv[0], 99))
    }

    # shortage outcomes: what became of each order that allocation found short
    outcome: Counter[str] = Counter()
    for order_id, at in short_at.items():
        later = [s for t, s in stages_of.get(order_id, []) if t >= at]
        current = by_id[order_id].stage if order_id in by_id else "unknown"
        if str(Stage.RELEASED) in later:
            outcome["released"] += 1
        elif current == Stage.CANCELLED:
            outcome["cancelled"] += 1
        elif current == Stage.ON_HOLD:
            outcome["on_hold"] += 1
        elif current in WAITING_STAGES:
            outcome["still_waiting"] += 1
        else:
            outcome["in_progress"] += 1
    entered = {
        str(s): sum(1 for changes in stages_of.values() if any(st == s for _t, st in changes))
        for s in WAITING_STAGES
    }
    shortages = {
        "short_orders": len(short_at),
        "by_policy": dict(sorted(Counter(short_policy.values()).items())),
        "decisions": dict(sorted(decisions.items())),
        "entered": entered,
        "outcomes": {
            k: outcome.get(k, 0)
            for k in ("released", "cancelled", "still_waiting", "on_hold", "in_progress")
        },
    }

    # fulfilment: shipments shipped within the pick SLA of their release
    shipments = list(session.execute(select(Shipment)).scalars())
    released = [s for s in shipments if s.status != "cancelled"]
    on_time = late = overdue_open = 0
    for s in released:
        if s.status == "shipped" and s.shipped_at is not None:
            if to_utc(s.shipped_at) - to_utc(s.released_at) <= sla:
                on_time += 1
            else:
                late += 1
        elif now - to_utc(s.released_at) > sla:
            overdue_open += 1
    # The rate is over the shipments that were due: shipped, or open past the SLA. A shipment
    # released a moment ago is not yet late, and "0.0%" of nothing due would mislead.
    due = on_time + late + overdue_open
    fulfilment = {
        "sla_s": sla.total_seconds(),
        "released": len(released),
        "due": due,
        "shipped_on_time": on_time,
        "shipped_late": late,
        "open": len(released) - on_time - late,
        "rate": round(on_time / due, 4) if due else None,
    }

    overdue = [
        {
            "order_id": o.order_id,
            "stage": o.stage,
            "since": _iso(o.stage_since),
            "flags": list(o.flags or []),
        }
        for o in orders
        if _pick_overdue(o)
    ]

    exceptions = _exceptions(session, orders, now=now, since=since, stale=stale, rejected=rejected)
    return {
        "generated_at": now.isoformat(),
        "window": {"since": since.isoformat(), "hours": DAY.total_seconds() / 3600},
        "orders_total": len(orders),
        "orders_by_stage": by_stage,
        "flags_by_code": dict(sorted(flags.items(), key=lambda kv: (-kv[1], kv[0]))),
        "shortage_outcomes": shortages,
        "time_in_stage": time_in_stage,
        "fulfilment": fulfilment,
        "overdue_picks": {"count": len(overdue), "orders": overdue},
        "exceptions": exceptions,
        "exceptions_count": len(exceptions),
        "parcels": _parcels(session, since),
    }


def _parcels(session: Session, since: datetime) -> dict[str, Any]:
    from shipping.report import summary  # the shipping desk's figures (issue 20)

    return summary(session, since=since)


def _pick_overdue(order: Order) -> bool:
    """Still in the warehouse past the pick SLA (a closed order's old flag is no worry)."""
    flags = order.flags or []
    open_ = order.stage not in (Stage.COMPLETED, Stage.CANCELLED, Stage.SHIPPED)
    return open_ and (Flag.PICK_OVERDUE in flags or Flag.PICK_ESCALATED in flags)


def _exceptions(
    session: Session,
    orders: list[Order],
    *,
    now: datetime,
    since: datetime,
    stale: timedelta,
    rejected: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """What needs a hand today, most pressing kinds first."""
    items: list[dict[str, Any]] = []

    def add(
        kind: str,
        order: Order | None,
        detail: str,
        at: datetime | None,
        order_id: str | None = None,
    ) -> None:
        items.append(
            {
                "kind": kind,
                "order_id": order.order_id if order else order_id,
                "stage": order.stage if order else None,
                "since": _iso(at),
                "detail": detail,
            }
        )

    for o in orders:
        since_stage = to_utc(o.stage_since) if o.stage_since else None
        if o.stage == Stage.ON_HOLD:
            add("on_hold", o, "waits for an operator: resume or cancel", since_stage)
        elif o.stage == Stage.AWAITING_APPROVAL:
            add(
                "awaiting_approval",
                o,
                "approve or reject"
                + (" (overdue)" if Flag.APPROVAL_OVERDUE in (o.flags or []) else ""),
                since_stage,
            )
        elif o.stage == Stage.AWAITING_BUYER:
            waited = (now - since_stage).total_seconds() if since_stage is not None else 0.0
            add(
                "awaiting_buyer",
                o,
                f"no answer from the buyer for {_duration(waited)}"
                if since_stage is not None and now - since_stage >= stale
                else f"asked the buyer {_duration(waited)} ago: confirm their answer",
                since_stage,
            )
        elif o.stage == Stage.AWAITING_PAYMENT:
            add("awaiting_payment", o, "waits for the payment: record it or cancel", since_stage)
        elif o.stage == Stage.BACKORDERED:
            add(
                "shortage",
                o,
                "out of stock: restock, or decide (partial, transfer, cancel)",
                since_stage,
            )
    for o in orders:
        if _pick_overdue(o):
            level = "escalated" if Flag.PICK_ESCALATED in (o.flags or []) else "reminded"
            add(
                "pick_overdue",
                o,
                f"not picked within the SLA ({level})",
                to_utc(o.stage_since) if o.stage_since else None,
            )
    for o in orders:
        changed = to_utc(o.stage_since or o.updated_at)
        if o.stage == Stage.CANCELLED and changed >= since:
            add("cancelled", o, o.cancel_reason or "cancelled", changed)
    failed = session.execute(
        select(OutboxEvent).where(OutboxEvent.status == "failed").order_by(OutboxEvent.created_at)
    ).scalars()
    by_id = {o.order_id: o for o in orders}
    for event in failed:
        order = by_id.get(event.order_id or "")
        add(
            "webhook_failed",
            order,
            f"{event.type}: {event.last_error or 'delivery failed'}",
            to_utc(event.created_at),
            order_id=event.order_id,
        )
    for r in rejected:
        order = by_id.get(r["order_id"])
        add(
            "signal_rejected",
            order,
            f"{r['signal']}: {r['reason']}",
            datetime.fromisoformat(r["at"]),
            order_id=r["order_id"],
        )
    return items


# -------------------------------------------------------------------- charts


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"
    minutes = seconds / 60
    if minutes < 60:
        return f"{minutes:.0f}m"
    hours = minutes / 60
    return f"{hours:.1f}h" if hours < 48 else f"{hours / 24:.1f}d"


def svg_bar_chart(
    title: str,
    rows: Sequence[tuple[str, float]],
    *,
    label: Any = None,
    back: Sequence[float] | None = None,
    color: str = "#2f6fb0",
    width: int = 560,
) -> str:
    """A horizontal bar chart as inline SVG; `back` draws a lighter second bar behind each row."""
    label = label or (lambda v: f"{v:g}")
    bar_h, gap, left, top = 18, 6, 170, 28
    height = top + max(1, len(rows)) * (bar_h + gap) + 10
    peak = max([v for _, v in rows] + list(back or []) + [0]) or 1
    span = width - left - 80
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(title)}">',
        f'<text x="0" y="16" class="title">{html.escape(title)}</text>',
    ]
    if not rows:
        out.append(f'<text x="{left}" y="{top + 13}" class="empty">no data yet</text>')
    for i, (name, value) in enumerate(rows):
        y = top + i * (bar_h + gap)
        out.append(
            f'<text x="{left - 8}" y="{y + 13}" text-anchor="end">{html.escape(name)}</text>'
        )
        if back is not None:
            w = span * back[i] / peak
            out.append(
                f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{color}" opacity="0.3"/>'
            )
        w = span * value / peak
        out.append(
            f'<rect x="{left}" y="{y}" width="{max(w, 1):.1f}" height="{bar_h}" fill="{color}"/>'
        )
        shown = label(value) if back is None else f"{label(value)} / {label(back[i])}"
        end = left + span * (max(value, back[i]) if back is not None else value) / peak
        out.append(f'<text x="{end + 6:.1f}" y="{y + 13}">{html.escape(shown)}</text>')
    out.append("</svg>")
    return "".join(out)


# ---------------------------------------------------------------------- page

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI","PingFang SC","Microsoft YaHei",sans-serif;margin:24px;color:#1d2733}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px}
.muted{color:#667} .tiles{display:flex;gap:12px;flex-wrap:wrap;margin:16px 0}
.tile{border:1px solid #d5dbe3;border-radius:8px;padding:10px 16px;min-width:130px}
.tile b{display:block;font-size:24px} .tile.alert b{color:#b3261e}
table{border-collapse:collapse;width:100%;max-width:1100px} th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e3e7ed}
th{background:#f4f6f9} tr.k-cancelled td:first-child,tr.k-webhook_failed td:first-child{color:#b3261e}
tr.k-on_hold td:first-child,tr.k-pick_overdue td:first-child{color:#a15c00}
.charts{display:flex;flex-wrap:wrap;gap:24px} svg.chart text{font-size:12px;fill:#1d2733} svg.chart .title{font-size:14px;font-weight:600}
svg.chart .empty{fill:#889}
"""


def render_html(summary: dict[str, Any], tz: str | None = None) -> str:
    """The page; times on the merchant's clock (`OMS_TIMEZONE`, Asia/Shanghai by default)."""
    from reads.localtime import label, local

    esc = html.escape
    f = summary["fulfilment"]
    rate = "—" if f["rate"] is None else f"{f['rate'] * 100:.1f}%"
    open_orders = sum(
        n
        for stage, n in summary["orders_by_stage"].items()
        if stage not in (Stage.COMPLETED, Stage.CANCELLED)
    )
    tiles = [
        ("orders", summary["orders_total"], False),
        ("open", open_orders, False),
        ("need a hand", summary["exceptions_count"], summary["exceptions_count"] > 0),
        ("overdue picks", summary["overdue_picks"]["count"], summary["overdue_picks"]["count"] > 0),
        (f"shipped within {_duration(f['sla_s'])}", rate, False),
    ]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>OMS operations report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Operations report</h1>",
        f"<div class='muted'>generated {esc(local(summary['generated_at'], tz, '%Y-%m-%d %H:%M:%S'))} "
        f"· times in {esc(label(tz))} · "
        f"exceptions and cancellations of the last {summary['window']['hours']:g} hours</div>",
        "<div class='tiles'>",
        *(
            f"<div class='tile{' alert' if alert else ''}'><b>{esc(str(v))}</b>{esc(k)}</div>"
            for k, v, alert in tiles
        ),
        "</div>",
        "<h2>Needs a hand today</h2>",
    ]
    if summary["exceptions"]:
        parts.append(
            "<table><tr><th>what</th><th>order</th><th>stage</th><th>since</th><th>detail</th></tr>"
        )
        for item in summary["exceptions"]:
            parts.append(
                f"<tr class='k-{esc(item['kind'])}'><td>{esc(item['kind'])}</td><td>{esc(item['order_id'] or '-')}</td>"
                f"<td>{esc(item['stage'] or '-')}</td><td>{esc(local(item['since'], tz))}</td>"
                f"<td>{esc(item['detail'])}</td></tr>"
            )
        parts.append("</table>")
    else:
        parts.append(
            "<p>Nothing needs a hand: no holds, approvals, silent buyers, overdue picks, "
            "failed webhooks, rejected signals or cancellations today.</p>"
        )

    stages = [(s, n) for s, n in summary["orders_by_stage"].items() if n]
    flags = list(summary["flags_by_code"].items())
    tis = summary["time_in_stage"]
    shortage = summary["shortage_outcomes"]
    parts += [
        "<h2>Charts</h2><div class='charts'>",
        svg_bar_chart("Orders by stage", stages),
        svg_bar_chart("Flags by code (orders)", flags, color="#a15c00"),
        svg_bar_chart(
            "Time in stage: median / p95",
            [(s, v["median_s"]) for s, v in tis.items()],
            back=[v["p95_s"] for v in tis.values()],
            label=_duration,
            color="#3c8d5a",
        ),
        svg_bar_chart(
            f"Shortage outcomes ({shortage['short_orders']} short orders)",
            [(k, v) for k, v in shortage["outcomes"].items()] if shortage["short_orders"] else [],
            color="#7a4fb0",
        ),
        svg_bar_chart(
            "Shipments against the pick SLA",
            [("on time", f["shipped_on_time"]), ("late", f["shipped_late"]), ("open", f["open"])]
            if f["released"]
            else [],
            color="#2f6fb0",
        ),
        "</div>",
        "<h2>Time in stage</h2><table><tr><th>stage</th><th>times left</th><th>median</th><th>p95</th></tr>",
        *(
            f"<tr><td>{esc(s)}</td><td>{v['count']}</td><td>{_duration(v['median_s'])}</td>"
            f"<td>{_duration(v['p95_s'])}</td></tr>"
            for s, v in tis.items()
        ),
        "</table>",
        "<h2>Shortages</h2>",
        f"<p>{shortage['short_orders']} order(s) found short at allocation; by policy "
        f"{esc(json.dumps(shortage['by_policy'], ensure_ascii=False))}; operator decisions "
        f"{esc(json.dumps(shortage['decisions'], ensure_ascii=False))}; entered "
        f"{esc(json.dumps(shortage['entered'], ensure_ascii=False))}.</p>",
        "<h2>Fulfilment</h2>",
        f"<p>{f['shipped_on_time']} of {f['due']} shipment(s) due shipped within the pick SLA "
        f"of {_duration(f['sla_s'])} ({rate}); {f['shipped_late']} late, {f['open']} still open "
        f"of {f['released']} released.</p>",
        _parcels_html(summary),
        "</body></html>",
    ]
    return "\n".join(parts)


def _parcels_html(summary: dict[str, Any]) -> str:
    from shipping.report import html

    figures = summary.get("parcels") or {}
    return html(figures, svg_bar_chart) if figures.get("parcels") else ""  # no desk: no section


def write_report(
    session: Session, out_dir: Path, *, policy: Policy | None = None, now: datetime | None = None,
    tz: str | None = None,
) -> Path:
    """Write report.html and summary.json into `out_dir`; return the HTML path."""
    summary = build_summary(session, policy=policy, now=now)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(
        json.dumps(summary, ensure_ascii=False, indent=2, default=str) + "\n", encoding="utf-8"
    )
    page = out_dir / "report.html"
    page.write_text(render_html(summary, tz), encoding="utf-8")
    return page
