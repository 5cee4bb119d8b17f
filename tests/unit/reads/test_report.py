"""The operations report: figures from a hand-built database, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from commands.report import percentile, svg_bar_chart, write_report
from models.db import SessionFactory, transaction
from models.settings import PickPolicy, Policy
from models.tables import Order, OutboxEvent, Shipment, TimelineEntry

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
POLICY = Policy(pick=PickPolicy(escalate_after=timedelta(hours=1)))


def at(hhmmss: str) -> datetime:
    h, m, s = (int(x) for x in hhmmss.split(":"))
    return NOW.replace(hour=h, minute=m, second=s)


def order(
    order_id: str,
    stage: str,
    since: str,
    *,
    flags: list[str] | None = None,
    reason: str | None = None,
) -> Order:
    return Order(
        order_id=order_id,
        workflow_id=f"order-{order_id}",
        platform="taobao",
        stage=stage,
        stage_since=at(since),
        flags=flags or [],
        findings=[],
        document={"order_id": order_id},
        total=Decimal("100.00"),
        cancel_reason=reason,
        created_at=at("06:00:00"),
        submitted_at=at("06:00:00"),
        updated_at=at(since),
    )


class Timeline:
    def __init__(self) -> None:
        self.rows: list[TimelineEntry] = []
        self.seq: dict[str, int] = {}

    def add(self, order_id: str, when: str, type_: str, **data: Any) -> None:
        self.seq[order_id] = self.seq.get(order_id, 0) + 1
        self.rows.append(
            TimelineEntry(
                order_id=order_id, seq=self.seq[order_id], at=at(when), type=type_, data=data
            )
        )

    def stages(self, order_id: str, *changes: tuple[str, str]) -> None:
        for when, stage in changes:
            self.add(order_id, when, "stage", stage=stage)


def shipment(order_id: str, status: str, released: str, shipped: str | None = None) -> Shipment:
    return Shipment(
        id=f"{order_id}-1",
        order_id=order_id,
        shipment_no=1,
        warehouse="HZ",
        status=status,
        pick_list={},
        released_at=at(released),
        shipped_at=at(shipped) if shipped else None,
    )


def build_day(factory: SessionFactory) -> None:
    """Eight orders in every state a clerk meets, with their timelines, shipments and one failed webhook."""
    t = Timeline()
    t.stages(
        "A",
        ("10:00:00", "received"),
        ("10:00:00", "checking"),
        ("10:00:10", "allocating"),
        ("10:00:20", "reviewing"),
        ("10:00:30", "released"),
        ("10:30:30", "picking"),
        ("10:40:30", "packed"),
        ("10:50:30", "shipped"),
        ("10:50:30", "completed"),
    )
    t.add(
        "A",
        "11:55:00",
        "signal_rejected",
        signal="cancel",
        reason="a shipped order cannot be cancelled",
    )
    t.stages("B", ("08:00:00", "checking"), ("08:00:20", "allocating"))
    t.add(
        "B",
        "08:00:25",
        "allocated",
        reserved=[],
        shortfalls=[{"sku": "TEA", "qty": 1}],
        policy="wait",
    )
    t.stages(
        "B",
        ("08:00:30", "backordered"),
        ("08:30:30", "reviewing"),
        ("09:00:00", "released"),
        ("11:00:00", "shipped"),
        ("11:00:00", "completed"),
    )
    t.stages("C", ("11:00:00", "checking"), ("11:00:10", "allocating"))
    t.add(
        "C",
        "11:00:15",
        "allocated",
        reserved=[],
        shortfalls=[{"sku": "TEA", "qty": 1}],
        policy="wait",
    )
    t.stages("C", ("11:00:20", "backordered"))
    t.add("C", "11:30:00", "shortage_decision_applied", policy="cancel")
    t.stages("C", ("11:30:00", "cancelled"))
    with transaction(factory) as session:
        session.add_all(
            [
                order(
                    "A", "completed", "10:50:30", flags=["pick_overdue"]
                ),  # late once, shipped since
                order("B", "completed", "11:00:00"),
                order("C", "cancelled", "11:30:00", reason="shortage: cancelled by the operator"),
                order("D", "on_hold", "11:00:00", flags=["backorder_timeout"]),
                order("E", "awaiting_approval", "10:00:00", flags=["high_value", "needs_approval"]),
                order("F", "awaiting_buyer", "06:00:00", flags=["address_vague"]),
                order("G", "awaiting_buyer", "11:50:00", flags=["address_vague"]),
                order("H", "released", "09:00:00", flags=["pick_overdue"]),
            ]
        )
        session.flush()
        session.add_all(t.rows)
        session.add_all(
            [
                shipment("A", "shipped", "10:00:30", "10:50:30"),
                shipment("B", "shipped", "09:00:00", "11:00:00"),
                shipment("C", "cancelled", "11:00:20"),
                shipment("H", "released", "09:00:00"),
            ]
        )
        session.add(
            OutboxEvent(
                id="evt-1",
                order_id="A",
                type="tracking_to_platform",
                payload={},
                status="failed",
                attempts=1,
                last_error="HTTP 400 from the platform",
                created_at=at("10:51:00"),
            )
        )


def test_report_counts_stages_flags_shortages_times_and_fulfilment(
    factory: SessionFactory, tmp_path: Path
) -> None:
    build_day(factory)

    with transaction(factory) as session:
        page = write_report(session, tmp_path / "out", policy=POLICY, now=NOW)

    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    assert page == tmp_path / "out" / "report.html"
    assert summary["orders_total"] == 8
    assert {k: v for k, v in summary["orders_by_stage"].items() if v} == {
        "completed": 2,
        "cancelled": 1,
        "on_hold": 1,
        "awaiting_approval": 1,
        "awaiting_buyer": 2,
        "released": 1,
    }
    assert summary["flags_by_code"] == {
        "address_vague": 2,
        "backorder_timeout": 1,
        "high_value": 1,
        "needs_approval": 1,
        "pick_overdue": 2,
    }
    assert summary["time_in_stage"]["checking"] == {"count": 3, "median_s": 10.0, "p95_s": 19.0}
    assert summary["time_in_stage"]["released"] == {"count": 2, "median_s": 4500.0, "p95_s": 6930.0}
    assert summary["time_in_stage"]["backordered"]["median_s"] == 1790.0  # 30 min and 29 min 40 s
    assert summary["time_in_stage"]["received"]["median_s"] == 0.0
    assert summary["shortage_outcomes"] == {
        "short_orders": 2,
        "by_policy": {"wait": 2},
        "decisions": {"cancel": 1},
        "entered": {"backordered": 2, "awaiting_transfer": 0},
        "outcomes": {
            "released": 1,
            "cancelled": 1,
            "still_waiting": 0,
            "on_hold": 0,
            "in_progress": 0,
        },
    }
    assert summary["fulfilment"] == {
        "sla_s": 3600.0,
        "released": 3,
        "due": 3,
        "shipped_on_time": 1,
        "shipped_late": 1,
        "open": 1,
        "rate": 0.3333,
    }
    assert summary["overdue_picks"]["count"] == 1
    assert summary["overdue_picks"]["orders"][0]["order_id"] == "H"


def test_exceptions_list_what_needs_a_hand_today(factory: SessionFactory, tmp_path: Path) -> None:
    build_day(factory)

    with transaction(factory) as session:
        page = write_report(session, tmp_path, policy=POLICY, now=NOW)

    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    kinds = {(e["kind"], e["order_id"]) for e in summary["exceptions"]}
    assert kinds == {
        ("on_hold", "D"),
        ("awaiting_approval", "E"),
        ("awaiting_buyer", "F"),
        ("awaiting_buyer", "G"),  # asked ten minutes ago: still the clerk's to follow up
        ("pick_overdue", "H"),
        ("cancelled", "C"),
        ("webhook_failed", "A"),
        ("signal_rejected", "A"),
    }
    assert summary["exceptions_count"] == 8
    details = {e["order_id"]: e["detail"] for e in summary["exceptions"] if e["kind"] == "awaiting_buyer"}
    assert details["F"].startswith("no answer from the buyer for 6.0h")
    assert details["G"].startswith("asked the buyer 10m ago")
    cancelled = next(e for e in summary["exceptions"] if e["kind"] == "cancelled")
    assert cancelled["detail"] == "shortage: cancelled by the operator"
    text = page.read_text(encoding="utf-8")
    assert text.count("<svg") == 5
    assert "Orders by stage" in text and "Time in stage: median / p95" in text
    assert "shortage: cancelled by the operator" in text
    assert "HTTP 400 from the platform" in text
    assert "a shipped order cannot be cancelled" in text
    assert "<td>on_hold</td><td>D</td>" in text


def test_old_cancellations_and_rejections_leave_the_days_list(
    factory: SessionFactory, tmp_path: Path
) -> None:
    build_day(factory)

    with transaction(factory) as session:
        write_report(session, tmp_path, policy=POLICY, now=NOW + timedelta(days=2))

    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    kinds = {e["kind"] for e in summary["exceptions"]}
    assert "cancelled" not in kinds and "signal_rejected" not in kinds
    assert {
        "on_hold",
        "awaiting_approval",
        "awaiting_buyer",
        "pick_overdue",
        "webhook_failed",
    } <= kinds


def test_an_empty_database_gives_an_empty_report(factory: SessionFactory, tmp_path: Path) -> None:
    with transaction(factory) as session:
        page = write_report(session, tmp_path, policy=POLICY, now=NOW)

    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert summary["orders_total"] == 0
    assert set(summary["orders_by_stage"].values()) == {0}
    assert summary["fulfilment"]["rate"] is None
    assert summary["time_in_stage"] == {} and summary["exceptions"] == []
    text = page.read_text(encoding="utf-8")
    assert text.count("<svg") == 5 and "no data yet" in text
    assert "Nothing needs a hand" in text


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([], 95, None),
        ([7.0], 95, 7.0),
        ([10.0, 10.0, 20.0], 95, 19.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),
    ],
)
def test_percentile_interpolates_between_ranks(
    values: list[float], p: float, expected: float | None
) -> None:
    assert percentile(values, p) == expected


def test_bar_chart_escapes_labels_and_scales_to_the_largest_bar() -> None:
    svg = svg_bar_chart("stages <all>", [("a&b", 2), ("c", 4)])

    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "stages &lt;all&gt;" in svg and "a&amp;b" in svg
    widths = [float(part.split('"')[0]) for part in svg.split('width="')[2:]]
    assert widths[1] == 2 * widths[0]


def test_orders_waiting_for_payment_or_a_shortage_decision_need_a_hand(
    factory: SessionFactory, tmp_path: Path
) -> None:
    with transaction(factory) as session:
        session.add_all(
            [
                order("P", "awaiting_payment", "11:00:00", flags=["unpaid"]),
                order("S", "backordered", "11:30:00"),
                order("R", "released", "11:59:00"),
            ]
        )

    with transaction(factory) as session:
        page = write_report(session, tmp_path, policy=POLICY, now=NOW)

    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert {(e["kind"], e["order_id"]) for e in summary["exceptions"]} == {
        ("awaiting_payment", "P"),
        ("shortage", "S"),
    }
    assert "need a hand" in page.read_text(encoding="utf-8")


def test_the_on_time_rate_is_a_dash_while_no_shipment_is_due(
    factory: SessionFactory, tmp_path: Path
) -> None:
    with transaction(factory) as session:
        session.add(order("R", "released", "11:50:00"))
        session.flush()
        session.add(shipment("R", "released", "11:50:00"))  # 10 minutes into a 1 h SLA

    with transaction(factory) as session:
        page = write_report(session, tmp_path, policy=POLICY, now=NOW)
    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert summary["fulfilment"]["released"] == 1
    assert summary["fulfilment"]["due"] == 0
    assert summary["fulfilment"]["rate"] is None
    text = page.read_text(encoding="utf-8")
    assert "<b>—</b>shipped within 1.0h" in text
    assert "0.0%" not in text

    with transaction(factory) as session:  # an hour later it is due, and late
        write_report(session, tmp_path, policy=POLICY, now=NOW + timedelta(hours=1))
    later = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert later["fulfilment"]["due"] == 1 and later["fulfilment"]["rate"] == 0.0
