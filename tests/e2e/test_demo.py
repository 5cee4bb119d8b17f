"""`python starter.py demo`, as a user runs it: its own dev server and worker, every sample path."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

from runtime.devserver import free_dev_server_port
from tests.harness import ROOT
from tests.harness.desk import pdf_pages_decoded, pdf_text

PATHS = (
    "clean",
    "buyer",
    "unpaid",
    "shortage",
    "approval",
    "cancel",
    "transfer",
    "partial",
    "pick_exception",
    "merge",
    "merge",
)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def run_demo(home: Path, port: int) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "OMS_HOME": str(home / ".oms"),
        "TEMPORAL_ADDRESS": f"localhost:{port}",
        "OMS_HTTP_ADDRESS": "127.0.0.1:0",  # the console on a free port
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("OMS_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, str(ROOT / "starter.py"), "demo"],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def final_table(stdout: str) -> dict[str, tuple[str, str, str]]:
    """order id → (path, stage, verdict), read from the demo's final table."""
    table = stdout.split("final stages:", 1)[1].split("ledger audit", 1)[0]
    rows = {}
    for line in table.strip().splitlines()[1:]:
        cells = line.split()
        rows[cells[0]] = (cells[1], cells[3], cells[-1])
    return rows


def check_desk_lines(stdout: str, tmp: Path) -> set[str]:
    """The desk in the demo's output: the merged parcel packed through the scan API (a stray
    item refused, each item counted, the weight accepted and the parcel shipped), and the
    labels PDF whose every page's barcode zbarimg reads as the waybill listed for it."""
    merged = re.search(r"desk: (DEMO-MERGE-10-\w+) and (DEMO-MERGE-11-\w+) merged into one "
                       r"parcel \(合单\) \S+, one waybill ZTO (\d+)", stdout)
    assert merged, stdout[-3000:]
    waybill = merged.group(3)
    scans = re.findall(rf"POST /v1/parcels/{waybill}/scan (\d+) → (\d+) (\w+)", stdout)
    assert scans[0][1:] == ("409", "refused") and "MUG-WHITE is not in this parcel" in stdout
    assert [s[1:] for s in scans[1:]] == [("200", "accepted")] * 3
    assert re.search(r"TSHIRT-RED-M 1/1, TSHIRT-BLUE-L 2/2\]", stdout)
    weighed = re.search(rf"POST /v1/parcels/{waybill}/weigh \d+ g → 200 accepted, expected "
                        r"\[\d+, \d+\] g, parcel shipped; shipped: (.*)\n", stdout)
    assert weighed, stdout[-3000:]
    assert sorted(weighed.group(1).split(", ")) == [f"{merged.group(1)} accepted",
                                                    f"{merged.group(2)} accepted"]
    found = re.search(r"labels PDF \((\d+) parcel\(s\) of (\d+) orders, 1 merged, 76x130 "
                      r"mm\): (\S+\.pdf)\n((?:  \S+ +.*\n)+)", stdout)
    assert found, stdout[-3000:]
    pdf = Path(found.group(3))
    assert ".oms/labels/" in pdf.as_posix() and pdf.exists()
    listed = [line.split(None, 1) for line in found.group(4).strip("\n").splitlines()]
    assert len(listed) == int(found.group(1)) == 11  # 10 orders: partial and pick_exception twice
    [both] = [orders for w, orders in listed if w == waybill]
    assert sorted(both.split(", ")) == [merged.group(1), merged.group(2)]
    tmp.mkdir()
    assert pdf_pages_decoded(pdf, tmp) == [w for w, _ in listed]
    text = "".join(pdf_text(pdf))
    assert "陈**" in text and "130****5678" in text
    for secret in ("陈十二", "13012345678", "张三", "13812345678"):
        assert secret not in text, f"{secret} unmasked on a label"
    return {w for w, _ in listed}


def test_demo_runs_every_path_twice_in_one_home_and_stops_its_stack(tmp_path: Path) -> None:
    port = free_dev_server_port()
    seen: set[str] = set()
    seen_waybills: set[str] = set()
    for _run in range(2):
        result = run_demo(tmp_path, port)

        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
        rows = final_table(result.stdout)
        assert sorted(path for path, _, _ in rows.values()) == sorted(PATHS)
        assert {verdict for _, _, verdict in rows.values()} == {"ok"}
        assert {(path, stage) for path, stage, _ in rows.values()} == {
            (path, "cancelled" if path == "cancel" else "completed") for path in PATHS
        }
        assert "ledger audit: OK" in result.stdout
        assert "all 11 sample orders are where they should be." in result.stdout
        waybills = check_desk_lines(result.stdout, tmp_path / f"run{_run}")
        assert not seen_waybills & waybills, "a waybill number is used once, ever"
        seen_waybills |= waybills
        # a shop's order shipped at the desk: its e-waybill is what goes back to Taobao, once
        shipped = re.search(r"the warehouse ships taobao-\d+ \(ZTO e-waybill (\d+)\); the next "
                            r"sync tells Taobao:\n +taobao\.logistics\.offline\.send tid=\d+ "
                            r"out_sid=(\d+) company_code=\S+: written back 1 time\(s\)",
                            result.stdout)
        assert shipped and shipped.group(1) == shipped.group(2), result.stdout[-3000:]
        assert shipped.group(1) not in seen_waybills
        seen_waybills.add(shipped.group(1))
        # no dead links at the end: the stack is gone, and the demo says how to keep it
        tail = result.stdout.split("all 11 sample orders", 1)[1]
        assert "/namespaces/" not in tail and f"localhost:{port + 1000}" not in tail, tail
        assert "clerk key for this run" not in tail and "console: http" not in tail, tail
        assert "the demo's stack stops now" in tail and "demo --keep" in tail
        assert "duplicate" not in result.stdout
        assert not seen & set(rows), "a second run reuses no order id"
        seen |= set(rows)
        assert not port_open(port) and not port_open(port + 1000), (
            "the demo stops the dev server it started"
        )
    assert (tmp_path / ".oms" / "report" / "summary.json").exists()


def test_demo_keep_leaves_a_morning_of_work_in_the_console(tmp_path: Path) -> None:
    """`demo --keep`: after the sample paths, a dozen orders wait on the normal policy's timers
    (buyer, payment, stock, approval), readable through the console's API; Ctrl-C stops all."""
    import signal
    import time

    import httpx

    port = free_dev_server_port()
    env = {
        **os.environ,
        "OMS_HOME": str(tmp_path / ".oms"),
        "TEMPORAL_ADDRESS": f"localhost:{port}",
        "OMS_HTTP_ADDRESS": "127.0.0.1:0",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("OMS_DATABASE_URL", None)
    log = tmp_path / "demo.log"
    with log.open("w") as sink:
        proc = subprocess.Popen([sys.executable, str(ROOT / "starter.py"), "demo", "--keep"],
                                cwd=tmp_path, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                text=True)
        try:
            deadline = time.monotonic() + 150
            while "--keep: the dev server" not in log.read_text() and time.monotonic() < deadline:
                assert proc.poll() is None, log.read_text()[-3000:]
                time.sleep(1)
            text = log.read_text()
            assert "a morning's work waits in the console" in text, text[-3000:]
            assert "3 for buyer, 3 for payment, 3 for stock, 3 for approval" in text, text[-3000:]
            found = re.search(r"console: (http://\S+)/ +clerk key for this run: (oms_\S{32})", text)
            assert found, text[-3000:]
            url, key = found.groups()
            waits: dict[str, set[str]] = {}
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                waits = {}
                for kind in ("buyer", "payment", "stock", "approval"):
                    r = httpx.get(f"{url}/v1/orders", params={"waiting_for": kind, "limit": 1000},
                                  headers={"Authorization": f"Bearer {key}"}, timeout=30)
                    assert r.status_code == 200, r.text
                    waits[kind] = {o["order_id"] for o in r.json()["orders"]
                                   if o["order_id"].startswith("AM-")}
                if all(len(v) == 3 for v in waits.values()):
                    break
                time.sleep(1)
            assert {k: len(v) for k, v in waits.items()} == {
                "buyer": 3, "payment": 3, "stock": 3, "approval": 3}, waits
        finally:
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=60)
    assert code == 0, log.read_text()[-3000:]
    assert not port_open(port), "Ctrl-C stops the dev server the demo started"
