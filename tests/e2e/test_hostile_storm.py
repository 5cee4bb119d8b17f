"""The hostile-document storm: ~300 documents, ~20 of them valid orders and the rest every hostile
kind of `tests/test_hostile_documents.HOSTILE` (an array nested 100,000 deep, an object 50,000
deep, an unknown field 500 deep or of 3,000,000 characters, lone surrogates, dates in year 1 and
9999, non-objects, wrong types, duplicates...), submitted through the real CLI (`starter.py
submit` as a process) and posted to the real HTTP API, on the real dev server with a real worker.

Afterwards: every document got its own answer, in order; every valid order started and reached
`released`; no rejected document left a workflow or a row; no workflow failed, none is stuck
on hold; the stock ledger audits clean.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from temporalio.client import WorkflowExecutionStatus

from models.db import transaction
from models.tables import Order
from tests.harness.service import ServiceStack, running_service
from tests.harness.stack import OmsStack
from tests.unit.intake.test_hostile_documents import HOSTILE, Hostile

pytestmark = pytest.mark.e2e

VALID = 20
TOTAL = 300
# Documents whose text is large: in each storm once, the light kinds fill the rest.
HEAVY = {"array nested 100,000 deep", "object nested 50,000 deep",
         "unknown field of 3,000,000 characters", "document over 256 kB"}
NO_FRAUD = {
    "OMS_POLICY__FRAUD__MAX_ORDERS_PER_PHONE": "100000",
    "OMS_POLICY__FRAUD__MAX_ORDERS_PER_ADDRESS": "100000",
}


def storm(svc: ServiceStack, prefix: str, resent: list[str]) -> tuple[list[str], list[Any]]:
    """(document texts, what each must be answered): ("started", id), ("duplicate", id) or
    ("rejected", id-or-None, Hostile). `resent`: valid ids of an earlier storm, sent again."""
    texts: list[str] = []
    expected: list[Any] = []
    valid = [f"{prefix}-OK-{i}" for i in range(VALID)]
    for oid in valid:
        texts.append(json.dumps(svc.doc(oid)))
        expected.append(("started", oid))
    round_ = 0
    while len(texts) < TOTAL - VALID // 2 - len(resent):
        for n, hostile in enumerate(HOSTILE):
            if hostile.kind in HEAVY and round_ > 0:
                continue
            oid = f"{prefix}-BAD-{round_}-{n}"
            texts.append(hostile.make(oid))
            expected.append(("rejected", oid if hostile.named else None, hostile))
        round_ += 1
    for oid in valid[: VALID // 2] + resent:  # duplicates: within the storm, and of the earlier one
        texts.append(json.dumps(svc.doc(oid)))
        expected.append(("duplicate", oid))
    # the valid ones spread among the hostile ones; the first of an id in the storm starts it
    order = sorted(range(len(texts)), key=lambda i: (i * 7919) % len(texts))
    texts, expected = [texts[i] for i in order], [expected[i] for i in order]
    seen = set(resent)
    for index, want in enumerate(expected):
        if want[0] in ("started", "duplicate"):
            expected[index] = ("duplicate" if want[1] in seen else "started", want[1])
            seen.add(want[1])
    return texts, expected


def assert_rejection(label: str, fields: list[str], messages: list[str], hostile: Hostile) -> None:
    assert any(f.startswith(hostile.field) for f in fields), (hostile.kind, label, fields)
    assert any(hostile.words in m for m in messages), (hostile.kind, label, messages)


async def test_the_hostile_storm_through_the_cli_and_the_api(dev_env: Any, tmp_path: Path) -> None:
    async with running_service(dev_env, tmp_path / "svc", stock={("TSHIRT-RED-M", "HZ"): 500}) as svc:
        cli = OmsStack.for_env(dev_env, tmp_path / "cli", db_url=svc.settings.database_url,
                               policy_env=NO_FRAUD)
        cli.task_queue = svc.settings.task_queue  # the service's worker runs the CLI's orders

        # --------------------------------------------------------------- the CLI
        texts, expected = storm(svc, "CLI", [])
        path = tmp_path / "storm.json"
        path.write_text("[\n" + ",\n".join(texts) + "\n]", encoding="utf-8")
        assert len(texts) >= TOTAL - 5 and path.stat().st_size > 3_000_000
        submitted = await cli.cli("submit", str(path), timeout=60)
        assert submitted.code == 1, submitted
        lines = submitted.out.splitlines()
        assert len(lines) == len(texts), submitted.err[-2000:]
        for index, (line, want) in enumerate(zip(lines, expected, strict=True)):
            if want[0] == "rejected":
                label = want[1] or f"storm.json[{index}]"
                assert line.startswith(f"{label}: rejected: "), (line[:300], want)
                problems = line[len(label) + len(": rejected: "):].split("; ")
                fields = [p.partition(": ")[0] for p in problems]
                assert_rejection(label, fields, problems, want[2])
            else:
                assert line == f"{want[1]}: {want[0]}", (line[:300], want)

        # -------------------------------------------------------------- the API
        texts, expected = storm(svc, "API", [f"CLI-OK-{i}" for i in range(5)])
        body = ("[" + ",".join(texts) + "]").encode()
        r = await svc.post("/v1/orders", "platform", content=body,
                           headers={"Content-Type": "application/json"})
        assert r.status_code == 200, r.text[:2000]
        results = r.json()["results"]
        assert len(results) == len(texts)
        for result, want in zip(results, expected, strict=True):
            assert result["result"] == want[0], (result, want[:2])
            assert result["order_id"] == want[1], (result, want[:2])
            if want[0] == "rejected":
                assert_rejection(str(want[1]), [e["field"] for e in result["errors"]],
                                 [e["message"] for e in result["errors"]], want[2])
            else:
                assert result["errors"] == []

        # ---------------------------------------------------- where they settle
        valid = {f"{p}-OK-{i}" for p in ("CLI", "API") for i in range(VALID)}
        for oid in sorted(valid):
            await svc.wait_stage(oid, "released", timeout=45)
        with transaction(svc.factory) as session:
            rows = dict(session.execute(select(Order.order_id, Order.stage)).all())
        assert rows == dict.fromkeys(valid, "released")  # nothing rejected left a row

        statuses: dict[str, WorkflowExecutionStatus | None] = {}
        async for wf in svc.client.list_workflows(f'TaskQueue="{svc.settings.task_queue}"'):
            statuses[wf.id] = wf.status
        # visibility may lag the starts a moment; each workflow's own description does not
        for oid in valid:
            if f"order-{oid}" not in statuses:
                description = await svc.client.get_workflow_handle(f"order-{oid}").describe()
                statuses[f"order-{oid}"] = description.status
        assert set(statuses) == {f"order-{oid}" for oid in valid}, sorted(set(statuses) ^ {
            f"order-{oid}" for oid in valid})
        assert set(statuses.values()) == {WorkflowExecutionStatus.RUNNING}  # released: picking next

        audit = await cli.cli("stock", "--audit")
        assert audit.code == 0, audit
