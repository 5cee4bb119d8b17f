"""`oms clear-flag ORDER FLAG --note`: a clerk settles a refused write-back (SPEC §3.9), on both
databases; only a flag raised beside the order goes this way, each refusal names its field."""

from __future__ import annotations

import json
from pathlib import Path

from sqlmodel import select

from models.db import transaction
from models.tables import Order, OrderFlag, TimelineEntry
from tests.harness.desk import oms, released, seed_reference


def test_a_clerk_clears_a_refused_write_back_from_the_shell(db_url: str, factory, tmp_path: Path) -> None:
    seed_reference(factory)
    released(factory, "CF-1", stage="completed")
    with transaction(factory) as session:  # as the shop's sync flags a refused write-back
        order = session.get(Order, "CF-1")
        order.flags = ["platform_ship_refused"]
        session.add(order)
        session.add(OrderFlag(order_id="CF-1", flag="platform_ship_refused", created_at=order.created_at))

    own = oms(db_url, tmp_path, "clear-flag", "CF-1", "pick_overdue")
    assert own.returncode != 0 and "flag: 'pick_overdue' is not cleared by hand" in own.stderr + own.stdout
    done = oms(db_url, tmp_path, "clear-flag", "CF-1", "platform_ship_refused",
               "--note", "shipped by hand on Taobao, 13812345678 called", "--by", "clerk-li", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"order_id": "CF-1", "cleared": "platform_ship_refused", "flags": []}
    with transaction(factory) as session:
        assert session.get(Order, "CF-1").flags == []
        assert session.exec(select(OrderFlag).where(OrderFlag.order_id == "CF-1")).all() == []
        entry = session.exec(select(TimelineEntry).where(
            TimelineEntry.order_id == "CF-1", TimelineEntry.type == "flag_cleared")).one()
    assert entry.data["by"] == "clerk-li" and "13812345678" not in str(entry.data)  # a phone masked
    from service.timeline import sentences

    [told] = sentences([{"at": "2026-12-05T10:00:00+00:00", "type": entry.type, **entry.data}])
    assert told["en"] == "clerk-li cleared the flag platform_ship_refused: shipped by hand on Taobao, 138****5678 called."
    again = oms(db_url, tmp_path, "clear-flag", "CF-1", "platform_ship_refused")
    assert again.returncode != 0 and "is not flagged" in again.stderr + again.stdout
    nobody = oms(db_url, tmp_path, "clear-flag", "NOPE", "platform_ship_refused")
    assert nobody.returncode != 0 and "order_id: no order" in nobody.stderr + nobody.stdout


def test_a_clerk_resends_a_refused_write_back_from_the_shell(db_url: str, factory, tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from platforms.tables import WriteBack

    seed_reference(factory)
    released(factory, "RW-1", stage="completed")
    with transaction(factory) as session:  # as the shop's sync records a refusal
        session.add(WriteBack(event_id="RW-1:wb", order_id="RW-1", shop="tb-main",
                              shipment_id="RW-1-1", carrier="SF", tracking_no="SF30001",
                              status="refused", reason="订单退款中，不能发货", at=datetime.now(UTC)))
    done = oms(db_url, tmp_path, "resend-write-back", "RW-1", "--note", "refund withdrawn",
               "--by", "clerk-li")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ("RW-1: SF SF30001 sent again at shop tb-main's next sync "
                                   "(now: oms shops sync tb-main)")
    with transaction(factory) as session:
        row = session.get(WriteBack, "RW-1:wb")
        assert (row.status, row.reason) == ("waiting", "sent again by clerk-li")
        entry = session.exec(select(TimelineEntry).where(
            TimelineEntry.order_id == "RW-1", TimelineEntry.type == "write_back_resent")).one()
    assert entry.data["shipments"] == [1] and entry.data["by"] == "clerk-li"
    again = oms(db_url, tmp_path, "resend-write-back", "RW-1", "--json")
    assert again.returncode != 0 and "RW-1 has no write-back the platform refused" in again.stderr + again.stdout
    nobody = oms(db_url, tmp_path, "resend-write-back", "NOPE")
    assert nobody.returncode != 0 and "order_id: no order 'NOPE'" in nobody.stderr + nobody.stdout
