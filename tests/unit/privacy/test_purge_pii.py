"""`oms purge-pii`: buyer data of orders that ended long ago is masked, and nothing else.

Orders are run for real (a worker on the dev server, a real database); the purge then
runs as of 91 days later. Every row of every table is compared before and after: the
only cells that change are those holding the buyer's name, phone or address detail,
plus the purge's own mark and timeline entry. A second run changes nothing.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import SQLModel
from temporalio.testing import WorkflowEnvironment

from commands.report import write_report
from models.db import transaction
from models.tables import utcnow
from privacy.purge import purge_pii
from reads.queries import order_status
from tests.harness import ROOT
from tests.harness.documents import make_order
from tests.harness.flow import Flow, running_flow
from tests.harness.reference import load_sample

NAME = "司马青衫"
PHONE = "13987650001"
NEW_PHONE = "13600002222"
VAGUE = "文三路"
DETAIL = "文三路518号2幢301室"
REMARKS = f"到了请打{PHONE}，放门口"
SHIRT = "TSHIRT-RED-M"


def order(flow: Flow, label: str, *, detail: str = DETAIL, phone: str = PHONE):
    doc = make_order(flow.oid(label), [(SHIRT, 1)], phone=phone)
    return doc.model_copy(
        update={
            "buyer": doc.buyer.model_copy(update={"name": NAME}),
            "address": doc.address.model_copy(update={"detail": detail}),
            "remarks": REMARKS,
        }
    )


def dump(flow: Flow) -> dict[str, dict[str, dict[str, Any]]]:
    """Every row of every table, keyed by primary key, JSON-comparable."""
    tables: dict[str, dict[str, dict[str, Any]]] = {}
    with transaction(flow.factory) as session:
        for table in SQLModel.metadata.sorted_tables:
            rows = session.execute(sa.select(table)).mappings().all()
            key = [c.name for c in table.primary_key.columns]
            tables[table.name] = {
                json.dumps([str(r[k]) for k in key]): json.loads(json.dumps(dict(r), default=str))
                for r in rows
            }
    return tables


def changed_cells(before: dict, after: dict) -> set[tuple[str, str, str]]:
    """(table, row key, column) of every cell that differs; new rows as (table, key, '*')."""
    cells = set()
    for table, rows in after.items():
        for key, row in rows.items():
            old = before[table].get(key)
            if old is None:
                cells.add((table, key, "*"))
                continue
            cells |= {(table, key, col) for col in row if row[col] != old[col]}
    return cells


def order_of(table: str, row: dict[str, Any]) -> str | None:
    return row.get("order_id")


async def test_purge_masks_buyer_data_of_ended_orders_and_nothing_more(
    dev_env: WorkflowEnvironment, sqlite_url: str, tmp_path: Path
) -> None:
    async with running_flow(dev_env.client, sqlite_url) as flow:
        load_sample(flow.factory)
        asked = order(flow, "ASK", detail=VAGUE)
        clean = order(flow, "CLN")
        waiting = order(flow, "WAIT", detail=VAGUE)
        for doc in (asked, clean, waiting):
            await flow.start(doc)
        await flow.stage(asked.order_id, "awaiting_buyer")
        await flow.signal(
            asked.order_id,
            "buyer_confirmed",
            {"phone": NEW_PHONE, "detail": DETAIL, "note": f"{NAME}来电确认"},
        )
        for doc in (asked, clean):
            await flow.stage(doc.order_id, "released")
            await flow.ship_all(doc.order_id)
            assert (await flow.finish(doc.order_id)).stage == "completed"
        await flow.stage(waiting.order_id, "awaiting_buyer")
        await flow.persisted(asked.order_id, lambda s: s["stage"] == "completed")
        await flow.persisted(clean.order_id, lambda s: s["stage"] == "completed")
        ended = {asked.order_id, clean.order_id}

        # Recently ended orders are kept as they are.
        assert purge_pii(flow.factory, timedelta(days=90)).orders == []

        before = dump(flow)
        status_before = {o: flow.status(o) for o in ended}
        later = utcnow() + timedelta(days=91)
        result = purge_pii(flow.factory, timedelta(days=90), now=later)
        assert set(result.orders) == ended
        after = dump(flow)

        # What changed: only the cells that hold buyer data, and the purge's own records.
        allowed = {
            ("orders", "document"), ("orders", "phone_key"), ("orders", "address_key"),
            ("orders", "pii_purged_at"), ("orders", "findings"), ("timeline", "data"),
            ("timeline", "*"), ("contact_log", "text"), ("contact_log", "note"),
            ("outbox", "payload"), ("shipments", "pick_list"),
        }
        cells = changed_cells(before, after)
        assert cells, "nothing was purged"
        for table, key, column in cells:
            assert (table, column) in allowed, (table, key, column)
            row = after[table][key]
            assert order_of(table, row) in ended, (table, key, column)  # never the running order
            if column == "*":
                assert row["type"] == "pii_purged"
        assert {t for t, _, c in cells} >= {"orders", "timeline", "contact_log", "outbox"}

        # None of the buyer's data is left on the purged orders; the running order keeps it.
        for table, rows in after.items():
            for row in rows.values():
                text = json.dumps(row, ensure_ascii=False)
                if order_of(table, row) in ended:
                    leaked = [v for v in (NAME, PHONE, NEW_PHONE, DETAIL) if v in text]
                    assert not leaked, (table, leaked, text[:300])
        waiting_row = after["orders"][json.dumps([waiting.order_id])]
        assert waiting_row["document"]["buyer"] == before["orders"][json.dumps([waiting.order_id])]["document"]["buyer"]
        assert NAME in json.dumps(waiting_row, ensure_ascii=False)

        document = after["orders"][json.dumps([asked.order_id])]["document"]
        assert document["buyer"]["name"] == "司***"
        assert document["buyer"]["phone"] == "136****2222"
        assert document["address"]["detail"] == "文三路***"
        assert document["remarks"] == "到了请打139****0001，放门口"
        old_document = before["orders"][json.dumps([asked.order_id])]["document"]
        for part in ("lines", "payment", "total", "platform", "created_at"):
            assert document[part] == old_document[part]
        assert {k: v for k, v in document["address"].items() if k != "detail"} == {
            k: v for k, v in old_document["address"].items() if k != "detail"
        }

        # Status and the reports read purged orders as before (but for the masked values).
        for order_id in ended:
            status = flow.status(order_id)
            assert status is not None
            old = status_before[order_id]
            for part in ("stage", "lines", "flags", "refund"):
                assert status[part] == old[part], part
            assert [{**s, "pick_list": None} for s in status["shipments"]] == [
                {**s, "pick_list": None} for s in old["shipments"]
            ]
            assert not [s for s in status["shipments"] if PHONE in json.dumps(s)]
            assert status["events"][-1]["type"] == "pii_purged"
        with transaction(flow.factory) as session:
            report = write_report(session, tmp_path / "report")
            assert order_status(session, asked.order_id) is not None
        assert Path(report).exists()
        summary = json.loads((tmp_path / "report" / "summary.json").read_text(encoding="utf-8"))
        assert json.dumps(summary, ensure_ascii=False)

        # Idempotent: a second run finds nothing to do and changes nothing.
        again = purge_pii(flow.factory, timedelta(days=90), now=later + timedelta(days=1))
        assert again.orders == []
        assert dump(flow) == after
        await flow.signal(waiting.order_id, "cancel", {"reason": "test over"})
        assert (await flow.finish(waiting.order_id)).stage == "cancelled"


def test_the_command_takes_an_iso_duration_and_refuses_anything_else(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    root = ROOT
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMS_", "TEMPORAL_"))}
    env["OMS_DATABASE_URL"] = f"sqlite:///{tmp_path / 'oms.db'}"

    def oms(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(root / "starter.py"), "purge-pii", *args],
            env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path,
        )

    done = oms("--older-than", "P30D", "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["purged"] == [] and answer["cutoff"]
    for bad in ("ninety days", "-P1D"):
        refused = oms(f"--older-than={bad}")
        assert refused.returncode == 1 and "--older-than" in refused.stderr, refused.stderr
