"""Prometheus metrics at `/metrics`.

What describes the orders (by stage, waits by kind and age, SLA breaches, webhook deliveries)
is read from the database at each scrape, so every copy of the service reports the same
figures and none keeps a count of its own. What describes this process (API requests by
route and status, their latency, intake results, action answers) is counted in-process,
as Prometheus expects of per-instance series. The Temporal SDK's worker metrics are the
worker's, on a port of their own (`OMS_SDK_METRICS_ADDRESS`, see `runtime.temporal`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import case, func, select

from models.enums import Flag, Stage
from models.tables import Order, OrderFlag, OutboxEvent, to_utc

WAIT_BUCKETS = (300.0, 3600.0, 4 * 3600.0, 24 * 3600.0)  # 5 min, 1 h, 4 h, 1 day
AGE_BANDS = ("lt_5m", "5m_1h", "1h_4h", "4h_24h", "ge_24h")
OPEN_STAGES = [str(s) for s in Stage if s not in (Stage.SHIPPED, Stage.COMPLETED, Stage.CANCELLED)]


def database_figures(session: Any, now: datetime | None = None) -> dict[str, Any]:
    """Every database-backed figure, in a few grouped queries on indexed columns."""
    now = now or datetime.now(UTC)
    by_stage = dict(session.execute(select(Order.stage, func.count()).group_by(Order.stage)).all())
    bounds = [now - timedelta(seconds=b) for b in WAIT_BUCKETS]
    columns = [
        func.sum(case((Order.stage_since >= bound, 1), else_=0)) for bound in bounds
    ]
    waits: dict[str, dict[str, Any]] = {}
    for row in session.execute(
        select(Order.waiting_for, func.count(), func.min(Order.stage_since), *columns)
        .where(Order.waiting_for.is_not(None))  # type: ignore[union-attr]
        .group_by(Order.waiting_for)
    ).all():
        kind, count, oldest, *within = row
        waits[str(kind)] = {
            "count": int(count),
            "oldest_s": max(0.0, (now - to_utc(oldest)).total_seconds()) if oldest else 0.0,
            "within": [int(n or 0) for n in within],
        }
    breaches = dict(
        session.execute(
            select(OrderFlag.flag, func.count())
            .join(Order, Order.order_id == OrderFlag.order_id)
            .where(
                OrderFlag.flag.in_([str(Flag.PICK_OVERDUE), str(Flag.APPROVAL_OVERDUE)]),  # type: ignore[attr-defined]
                Order.stage.in_(OPEN_STAGES),  # type: ignore[attr-defined]
            )
            .group_by(OrderFlag.flag)
        ).all()
    )
    deliveries = dict(
        session.execute(select(OutboxEvent.status, func.count()).group_by(OutboxEvent.status)).all()
    )
    return {"by_stage": by_stage, "waits": waits, "breaches": breaches, "deliveries": deliveries}


class DatabaseCollector:
    """Reads `database_figures` at each scrape (prometheus_client's custom-collector protocol)."""

    def __init__(self, read: Any) -> None:
        self._read = read

    def describe(self) -> list[Any]:
        return []  # no read at registration

    def collect(self) -> Iterator[Any]:
        figures = self._read(database_figures)
        orders = GaugeMetricFamily("oms_orders", "Orders by stage", labels=["stage"])
        for stage in Stage:
            orders.add_metric([str(stage)], float(figures["by_stage"].get(str(stage), 0)))
        yield orders

        waiting = GaugeMetricFamily(
            "oms_waiting_orders", "Orders waiting, by what they wait for", labels=["waiting_for"]
        )
        oldest = GaugeMetricFamily(
            "oms_oldest_wait_seconds", "Age of the oldest wait, by kind", labels=["waiting_for"]
        )
        ages = GaugeMetricFamily(
            "oms_waits",
            "Orders waiting, by what they wait for and for how long (age band)",
            labels=["waiting_for", "age"],
        )
        for kind, w in sorted(figures["waits"].items()):
            waiting.add_metric([kind], float(w["count"]))
            oldest.add_metric([kind], w["oldest_s"])
            within = [*w["within"], w["count"]]  # cumulative: waited at most 5 min, 1 h, ...
            previous = 0
            for band, upto in zip(AGE_BANDS, within, strict=True):
                ages.add_metric([kind, band], float(upto - previous))
                previous = upto
        yield waiting
        yield oldest
        yield ages

        breaches = GaugeMetricFamily(
            "oms_sla_breaches", "Open orders past an SLA, by kind", labels=["kind"]
        )
        for kind in (Flag.PICK_OVERDUE, Flag.APPROVAL_OVERDUE):
            breaches.add_metric([str(kind)], float(figures["breaches"].get(str(kind), 0)))
        yield breaches

        deliveries = GaugeMetricFamily(
            "oms_webhook_deliveries", "Outbox events by delivery outcome", labels=["outcome"]
        )
        for outcome in ("pending", "delivered", "failed"):
            deliveries.add_metric([outcome], float(figures["deliveries"].get(outcome, 0)))
        yield deliveries


class Metrics:
    """One registry per app (several apps in one test process do not collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter(
            "oms_http_requests", "API requests by route, method and status",
            ["route", "method", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "oms_http_request_duration_seconds", "API request latency by route and method",
            ["route", "method"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )
        self.intake_results = Counter(
            "oms_intake_documents", "Documents posted to the intake, by result", ["result"],
            registry=self.registry,
        )
        self.action_answers = Counter(
            "oms_actions", "Actions by name and the workflow's answer", ["action", "answer"],
            registry=self.registry,
        )

    def watch_database(self, read: Any) -> None:
        self.registry.register(DatabaseCollector(read))  # type: ignore[arg-type]

    def intake(self, results: list[dict[str, Any]]) -> None:
        for r in results:
            self.intake_results.labels(r["result"]).inc()

    def action(self, action: str, accepted: bool) -> None:
        self.action_answers.labels(action, "accepted" if accepted else "refused").inc()


class MetricsMiddleware:
    """Counts every HTTP request by its route template (not its raw path: bounded labels)."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or (
                "/static" if scope.get("path", "").startswith("/static/") else "unmatched"
            )
            method = scope.get("method", "GET")
            self.metrics.requests.labels(path, method, str(status["code"])).inc()
            self.metrics.latency.labels(path, method).observe(time.perf_counter() - started)
