"""The desk from the shell: load carriers, waybill pools, an order's parcels, a clerk's pick."""

from __future__ import annotations

import json
from pathlib import Path

from shipping.desk import prepare
from tests.harness.desk import ROOT, oms, released, seed_reference


def test_carriers_and_a_waybill_range_load_and_report(db_url: str, factory, tmp_path: Path) -> None:
    loaded = oms(db_url, tmp_path, "load", "carriers", str(ROOT / "sample" / "carriers.json"))
    assert loaded.returncode == 0, loaded.stderr
    assert "loaded 4 carriers" in loaded.stdout
    numbers = tmp_path / "zto.txt"
    numbers.write_text("\n".join(f"7310{i:08d}" for i in range(25)) + "\n", encoding="utf-8")
    first = oms(db_url, tmp_path, "waybills", "load", "ZTO", str(numbers))
    assert first.returncode == 0, first.stderr
    assert "ZTO: 25 added, 0 known before and skipped, 25 free" in first.stdout
    again = oms(db_url, tmp_path, "waybills", "load", "ZTO", str(numbers))
    assert "0 added, 25 known before and skipped" in again.stdout
    status = oms(db_url, tmp_path, "waybills", "status", "--json")
    rows = {r["carrier"]: r for r in json.loads(status.stdout)}
    assert rows["ZTO"] == {"carrier": "ZTO", "free": 25, "used": 0, "low_at": 20, "low": False}
    assert rows["SF"]["free"] == 0 and rows["SF"]["low"] is True


def test_bad_files_name_the_line_or_field_and_load_nothing(db_url: str, factory, tmp_path: Path) -> None:
    bad = tmp_path / "carriers.json"
    bad.write_text(json.dumps([{"code": "ZTO", "name": "中通", "rates": [],
                                "waybill": {"kind": "pool"}}]), encoding="utf-8")
    answer = oms(db_url, tmp_path, "load", "carriers", str(bad))
    assert answer.returncode == 1 and "[0].rates" in answer.stderr
    oms(db_url, tmp_path, "load", "carriers", str(ROOT / "sample" / "carriers.json"))
    numbers = tmp_path / "n.txt"
    numbers.write_text("73100000001\nnot a number\n", encoding="utf-8")
    answer = oms(db_url, tmp_path, "waybills", "load", "ZTO", str(numbers))
    assert answer.returncode == 1 and "line 2: 'not a number' is not a waybill number" in answer.stderr
    unknown = oms(db_url, tmp_path, "waybills", "load", "NOPE", str(ROOT / "sample" / "carriers.json"))
    assert unknown.returncode == 1


def test_an_orders_parcels_print_as_the_spec_says(db_url: str, factory, tmp_path: Path) -> None:
    seed_reference(factory)
    done = prepare(factory, released(factory, "CLI-1"))
    answer = oms(db_url, tmp_path, "parcels", "CLI-1", "--json")
    assert answer.returncode == 0, answer.stderr
    [parcel] = json.loads(answer.stdout)
    assert parcel == {
        "parcel_id": "pcl-CLI-1-1", "carrier": "ZTO", "waybill": done.waybill,
        "orders": ["CLI-1"], "state": "allocated", "weight_g": None,
        "lines": [{"order_id": "CLI-1", "sku": "MUG-WHITE", "qty": 1},
                  {"order_id": "CLI-1", "sku": "TSHIRT-RED-M", "qty": 2}],
    }
    assert oms(db_url, tmp_path, "parcels", "NOPE").returncode == 1


def test_a_clerk_picks_a_carrier_for_a_parcel_nobody_serves(db_url: str, factory, tmp_path: Path) -> None:
    seed_reference(factory)
    held = prepare(factory, released(factory, "CLI-2", address={
        "province": "西藏自治区", "city": "拉萨市", "district": "城关区", "detail": "1号"},
        lines=[{"sku": "TEA-250G", "qty": 200}]))
    assert held.hold == "no_carrier"
    refused = oms(db_url, tmp_path, "pick-carrier", held.parcel_id, "XX")
    assert refused.returncode == 1 and "refused: unknown carrier 'XX'" in refused.stderr
    picked = oms(db_url, tmp_path, "pick-carrier", held.parcel_id, "EMS")
    assert picked.returncode == 0, picked.stderr
    assert "carrier EMS (picked by cli although it takes at most 40000 g" in picked.stdout
    assert "no waybill yet: the waybill pool of EMS is empty" in picked.stdout  # none loaded


def test_verify_prints_each_scan_and_the_weight_and_exits_1_on_a_refusal(
        db_url: str, factory, tmp_path: Path) -> None:
    seed_reference(factory)
    waybill = prepare(factory, released(factory, "CLI-3")).waybill
    red, mug = "6901234567892", "6901234567908"
    answer = oms(db_url, tmp_path, "verify", waybill, "--scan", red, "6901234567915", "--json")
    assert answer.returncode == 1
    report = json.loads(answer.stdout)
    assert report == {
        "waybill": waybill, "complete": False, "weight": None, "state": "allocated",
        "scans": [{"barcode": red, "accepted": True, "reason": None},
                  {"barcode": "6901234567915", "accepted": False,
                   "reason": "TEA-250G is not in this parcel: take it out"}],
    }
    # A refused weight ships nothing, so no Temporal is needed here.
    done = oms(db_url, tmp_path, "verify", waybill, "--scan", red, mug, "--weight-g", "1500",
               "--json")
    report = json.loads(done.stdout)
    assert done.returncode == 1 and report["complete"] is True and report["state"] == "verified"
    assert report["weight"] == {"accepted": False, "expected_g": [810, 990], "reason":
                                "1500 g is outside the expected 810-990 g (items 900 g + "
                                "packaging 0 g): check the parcel's contents"}
    bad = oms(db_url, tmp_path, "verify", waybill, "--weight-g", "-3")
    assert bad.returncode == 1 and "weight_g: must be more than 0 g" in bad.stderr
    unknown = oms(db_url, tmp_path, "verify", "NOPE1234", "--scan", red, "--json")
    assert unknown.returncode == 1
    assert json.loads(unknown.stdout)["scans"][0]["reason"] == "unknown waybill 'NOPE1234': not a label of this desk"
