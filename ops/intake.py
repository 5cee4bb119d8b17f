"""Order documents in: files read (JSON array, JSON Lines, CSV) and workflows started, one per order.

Shared by the CLI's `submit`, the demo and the HTTP intake.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from models.documents import OrderDocument, workflow_id_for
from models.settings import Settings
from ops.context import CliError

CSV_FIELDS = {
    "buyer_name": ("buyer", "name"),
    "buyer_phone": ("buyer", "phone"),
    "buyer_id": ("buyer", "id"),
    "country": ("address", "country"),
    "province": ("address", "province"),
    "city": ("address", "city"),
    "district": ("address", "district"),
    "detail": ("address", "detail"),
    "postal_code": ("address", "postal_code"),
    "payment_status": ("payment", "status"),
    "payment_method": ("payment", "method"),
    "payment_amount": ("payment", "amount"),
    "transaction_id": ("payment", "transaction_id"),
}
CSV_LINE_FIELDS = ("sku", "qty", "unit_price")


def read_orders(path: Path) -> list[Any]:
    """A JSON array, JSON Lines, or CSV (one row per order line) → raw order objects."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"{path}: cannot read ({exc})") from exc
    if path.suffix.lower() == ".csv":
        return _csv_orders(text)
    stripped = text.strip()
    if not stripped:
        raise CliError(f"{path}: the file is empty")
    if stripped.startswith("["):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise CliError(f"{path}: not valid JSON ({exc})") from exc
        return list(data)
    orders: list[Any] = []
    # Split on newlines only: splitlines() would also cut at U+2028 etc. inside JSON strings.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            orders.append(json.loads(line))
        except json.JSONDecodeError as exc:
            orders.append(_BadLine(f"line {number}: not valid JSON ({exc.msg})"))
    return orders


class _BadLine:
    def __init__(self, message: str) -> None:
        self.message = message


def _csv_orders(text: str) -> list[Any]:
    grouped: dict[str, dict[str, Any]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        row = {k.strip(): (v.strip() if isinstance(v, str) else v) for k, v in row.items() if k}
        order_id = row.get("order_id") or ""
        doc = grouped.get(order_id)
        if doc is None:
            doc = {"order_id": order_id, "lines": []}
            for key, value in row.items():
                if value in ("", None) or key in CSV_LINE_FIELDS or key == "order_id":
                    continue
                if key in CSV_FIELDS:
                    part, field = CSV_FIELDS[key]
                    doc.setdefault(part, {})[field] = value
                else:
                    doc[key] = value
            grouped[order_id] = doc
        line: dict[str, Any] = {"sku": row.get("sku", "")}
        qty = row.get("qty") or ""  # None when the row has fewer cells than the header
        line["qty"] = int(qty) if qty.isascii() and qty.isdigit() else qty
        if row.get("unit_price"):
            line["unit_price"] = row["unit_price"]
        doc["lines"].append(line)
    return list(grouped.values())




async def submit_one(client: Client, settings: Settings, order: OrderDocument) -> str:
    from models.payloads import OrderInput
    from workflows.order import OrderWorkflow

    try:
        await client.start_workflow(
            OrderWorkflow.run,
            OrderInput(order=order, policy=settings.order_policy(), submitted_at=datetime.now(UTC)),
            id=workflow_id_for(order.order_id),
            task_queue=settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        )
    except WorkflowAlreadyStartedError:
        return "duplicate"
    return "started"
