"""The demo's sample orders (one per path, with a run suffix so the demo can run again in the
same OMS_HOME), its reference data, and the search attributes it registers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cli.demo.play import DemoOrder
from models.documents import check_document
from models.settings import Policy

# ------------------------------------------------------------------ orders

PATHS = {
    "DEMO-CLEAN-1": ("clean", "completed"),
    "DEMO-BUYER-2": ("buyer", "completed"),
    "DEMO-UNPAID-3": ("unpaid", "completed"),
    "DEMO-SHORT-4": ("shortage", "completed"),
    "DEMO-APPROVE-5": ("approval", "completed"),
    "DEMO-CANCEL-6": ("cancel", "cancelled"),
    "DEMO-TRANSFER-7": ("transfer", "completed"),
    "DEMO-PARTIAL-8": ("partial", "completed"),
    "DEMO-PICKEX-9": ("pick_exception", "completed"),
    "DEMO-MERGE-10": ("merge", "completed"),  # the shipping desk: one parcel for two orders
    "DEMO-MERGE-11": ("merge", "completed"),
}


def demo_orders(run_id: str, policy: Policy) -> list[DemoOrder]:
    """The sample orders, renamed for this run and dated now (oldest first, as in the files)."""
    raw: list[dict[str, Any]] = []
    for name in ORDER_FILES:
        raw.extend(json.loads((SAMPLE_DIR / name).read_text(encoding="utf-8")))
    now = datetime.now(UTC)
    orders = []
    for index, item in enumerate(raw):
        base = item["order_id"]
        if base not in PATHS:
            continue
        item = {
            **item,
            "order_id": f"{base}-{run_id}",
            "created_at": (now - timedelta(seconds=len(raw) - index)).isoformat(),
        }
        checked = check_document(item, now=now)  # the intake check of `submit` and the API
        doc = checked.document
        if doc is None:
            raise SystemExit(f"sample order {base} is malformed: {'; '.join(checked.messages())}")
        path, expect = PATHS[base]
        order_policy = policy
        if path == "transfer":
            # One parcel per order: the missing lamp is moved to the buyer's warehouse.
            order_policy = policy.model_copy(
                update={"shortage": policy.shortage.model_copy(update={"split_allowed": False})}
            )
        elif path == "pick_exception":
            order_policy = policy.model_copy(
                update={
                    "pick": policy.pick.model_copy(update={"remind_after": timedelta(seconds=2)})
                }
            )
        orders.append(DemoOrder(base=base, path=path, expect=expect, doc=doc, policy=order_policy))
    return orders


def load_sample_reference(ctx: Any) -> None:
    """Catalog, warehouses and stock from sample/ (upserts; stock never below what is reserved)."""
    from models.tables import StockLevel
    from reads.queries import load_reference

    with ctx.session() as session:
        for kind, name in (("catalog", "catalog.json"), ("warehouses", "warehouses.json")):
            _, errors = load_reference(
                session, kind, json.loads((SAMPLE_DIR / name).read_text(encoding="utf-8"))
            )
            if errors:
                raise SystemExit(f"sample/{name}: {'; '.join(errors)}")
        stock = []
        for item in json.loads((SAMPLE_DIR / "stock.json").read_text(encoding="utf-8")):
            level = session.get(StockLevel, (item["sku"], item["warehouse"]))
            reserved = level.reserved if level else 0
            stock.append({**item, "on_hand": max(item["on_hand"], reserved)})
        _, errors = load_reference(session, "stock", stock)
        if errors:
            raise SystemExit(f"sample/stock.json: {'; '.join(errors)}")


async def ensure_search_attributes(client: Any, namespace: str) -> bool:
    """On a server we did not start, register the order search attributes if they are missing."""
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import (
        AddSearchAttributesRequest,
        ListSearchAttributesRequest,
    )

    from models.search import SEARCH_ATTRIBUTE_TYPES

    kinds = {
        "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        "KeywordList": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
        "Double": IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
    }
    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        missing = {
            k: kinds[v]
            for k, v in SEARCH_ATTRIBUTE_TYPES.items()
            if k not in listed.custom_attributes
        }
        if missing:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
            )
        return True
    except Exception:  # e.g. a cloud namespace without operator rights: run without them
        return False


SAMPLE_DIR = Path(__file__).resolve().parents[2] / "sample"
ORDER_FILES = ("orders.json", "demo-orders.json", "demo-desk-orders.json")


def demo_policy(policy: Policy) -> Policy:
    """The merchant's policy with every wait measured in seconds instead of hours."""
    s = timedelta(seconds=1)
    return policy.model_copy(
        update={
            "confirmation": policy.confirmation.model_copy(
                update={"remind_every": 20 * s, "timeout": 90 * s, "max_reminders": 2}
            ),
            "payment": policy.payment.model_copy(update={"unpaid_window": 90 * s}),
            "shortage": policy.shortage.model_copy(
                update={"backorder_deadline": 90 * s, "transfer_deadline": 90 * s}
            ),
            "approval": policy.approval.model_copy(update={"escalate_after": 60 * s}),
            "pick": policy.pick.model_copy(
                update={"remind_after": 30 * s, "escalate_after": 60 * s, "complete_on": "shipped"}
            ),
            # Repeated demo runs reuse the sample buyers: a short window keeps them
            # from looking like one buyer ordering again and again.
            "fraud": policy.fraud.model_copy(update={"window": 2 * 60 * s}),
        }
    )


