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


def test_demo_runs_every_path_twice_in_one_home_and_stops_its_stack(tmp_path: Path) -> None:
    port = free_dev_server_port()
    seen: set[str] = set()
    for _run in range(2):
        result = run_demo(tmp_path, port)

        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
        rows = final_table(result.stdout)
        assert sorted(path for path, _, _ in rows.values()) == sorted(PATHS)
        assert {verdict for _, _, verdict in rows.values()} == {"ok"}
        assert {path: stage for path, stage, _ in rows.values()} == {
            path: ("cancelled" if path == "cancel" else "completed") for path in PATHS
        }
        assert "ledger audit: OK" in result.stdout
        assert (
            f"http://localhost:{port + 1000}/namespaces/default/workflows/order-DEMO-CLEAN-1-"
            in result.stdout
        )
        assert "all 9 sample orders are where they should be." in result.stdout
        assert re.search(r"console: http://localhost:\d+/ +clerk key for this run: oms_\S{32}",
                         result.stdout), result.stdout[-2000:]
        assert "duplicate" not in result.stdout
        assert not seen & set(rows), "a second run reuses no order id"
        seen |= set(rows)
        assert not port_open(port) and not port_open(port + 1000), (
            "the demo stops the dev server it started"
        )
    assert (tmp_path / ".oms" / "report" / "summary.json").exists()
