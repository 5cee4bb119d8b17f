"""The report's parcels: the day's parcels by carrier and what merging saved."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from commands.report import write_report
from models.db import transaction
from shipping.desk import prepare
from shipping.parcels import MergeRule
from shipping.report import summary
from tests.harness.desk import released, seed_reference


def test_parcels_by_carrier_and_the_saving_of_a_merge(factory, tmp_path) -> None:
    seed_reference(factory)
    merge = MergeRule()
    # Two orders merged: 900 g + 300 g = 1.2 kg by ZTO to 浙江省: alone 4 + 4, together 4 + 1.
    prepare(factory, released(factory, "RP-1"), merge=merge)
    prepare(factory, released(factory, "RP-2", lines=[{"sku": "TEA-250G", "qty": 1}]), merge=merge)
    prepare(factory, released(factory, "RP-3", payment={"status": "cod"}), merge=merge)  # SF
    with transaction(factory) as session:
        figures = summary(session, since=datetime.now(UTC) - timedelta(days=1))
    assert figures == {"parcels": 2, "by_carrier": {"SF": 1, "ZTO": 1}, "shipped": 0,
                       "merged_parcels": 1, "orders_in_merged_parcels": 2,
                       "saved_by_merging": "3.00"}
    with transaction(factory) as session:
        page = write_report(session, tmp_path)
    written = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert written["parcels"]["saved_by_merging"] == "3.00"
    text = page.read_text(encoding="utf-8")
    assert "Parcels by carrier" in text and "saved ¥3.00" in text
