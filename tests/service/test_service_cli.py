"""The service's processes and commands as an operator runs them: `oms keys`, `oms list` with
pages, `oms serve`, `worker.py --dev` with the service beside it; and the list queries and
the flag index on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from benchmarks.seed import seed_order
from models.db import SessionFactory, make_engine, migrate, transaction
from models.documents import OrderDocument
from models.tables import ApiKey, OrderFlag
from reads.queries import BadCursor, page_orders, waiting_counts
from tests.harness import (
    ROOT,
    codec_keys,
)
from tests.harness.documents import make_order

T0 = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_for(home: Path, db_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMS_", "TEMPORAL_"))}
    env.update({"OMS_HOME": str(home), "OMS_DATABASE_URL": db_url, "OMS_LOG_FORMAT": "json",
                "OMS_SDK_METRICS_ADDRESS": "", "PYTHONUNBUFFERED": "1", **codec_keys.ENV,
                **extra})
    return env


def oms(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "starter.py"), *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def seed(factory: SessionFactory, count: int, *, stage: str = "awaiting_buyer",
         flags: list[str] | None = None, prefix: str = "S", start: int = 0) -> list[str]:
    ids = []
    with transaction(factory) as session:
        for i in range(start, start + count):
            doc = make_order(f"{prefix}-{i:05d}", [("TSHIRT-RED-M", 1)], minutes=i)
            seed_order(session, doc, stage=stage, flags=flags, submitted_at=T0 + timedelta(minutes=i))
            ids.append(doc.order_id)
    return ids


# --------------------------------------------------------------------- keys


def in_process(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
               env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """`oms ARGS` run in this process (the same `starter.run`, without the start-up cost)."""
    import starter

    for key in [k for k in os.environ if k.startswith(("OMS_", "TEMPORAL_"))]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith(("OMS_", "TEMPORAL_")):
            monkeypatch.setenv(key, value)
    capsys.readouterr()
    try:
        code = starter.run(list(args))
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_keys_are_made_once_listed_without_the_key_and_revoked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path / 'oms.db'}"
    env = env_for(tmp_path, db)
    made = oms(env, "keys", "create", "--role", "platform", "--name", "taobao", "--json")
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    assert set(key) == {"name", "role", "key"} and key["role"] == "platform"
    assert key["key"].startswith("oms_") and len(key["key"]) - 4 >= 22  # >= 128 bits of base64url

    def run(*args: str) -> tuple[int, str, str]:
        return in_process(monkeypatch, capsys, env, *args)

    code, out, _ = run("keys", "create", "--role", "clerk", "--name", "alice")
    assert code == 0 and "shown only once" in out
    code, _, err = run("keys", "create", "--role", "clerk", "--name", "alice")
    assert code == 1 and "exists" in err
    assert run("keys", "create", "--role", "king", "--name", "x")[0] == 2
    assert run("keys", "create", "--role", "clerk", "--name", "no spaces")[0] == 1

    listed = oms(env, "keys", "list", "--json")
    rows = json.loads(listed.stdout)
    assert {r["name"]: r["role"] for r in rows} == {"taobao": "platform", "alice": "clerk"}
    assert key["key"] not in listed.stdout and key["key"] not in run("keys", "list")[1]
    engine = make_engine(db)
    with engine.connect() as conn:
        stored = [tuple(r) for r in conn.execute(sa.select(ApiKey.__table__))]
    engine.dispose()
    assert key["key"] not in repr(stored), "only a hash is kept"

    assert run("keys", "revoke", "taobao")[0] == 0
    code, _, err = run("keys", "revoke", "taobao")
    assert code == 1 and "already revoked" in err
    assert run("keys", "revoke", "nobody")[0] == 1
    code, out, _ = run("keys", "list", "--json")
    assert json.loads(out)[0]["revoked_at"]


# ----------------------------------------------------------- list queries


def test_pages_visit_every_order_once_with_each_filter(factory: SessionFactory) -> None:
    buyer = seed(factory, 23, prefix="B")
    released = seed(factory, 9, stage="released", flags=["pick_overdue"], prefix="R", start=100)
    seed(factory, 5, stage="completed", prefix="C", start=200)

    def walk(limit: int, **filters: Any) -> list[str]:
        seen: list[str] = []
        cursor = None
        with transaction(factory) as session:
            while True:
                items, cursor = page_orders(session, limit=limit, cursor=cursor, **filters)
                seen += [i["order_id"] for i in items]
                if cursor is None:
                    return seen

    assert walk(5, waiting_for="buyer") == buyer
    assert walk(4, stage="released") == released
    assert walk(2, flag="pick_overdue") == released
    assert walk(7, flag="pick_overdue", stage="released") == released
    assert walk(1000, flag="pick_overdue", waiting_for="buyer") == []
    everything = walk(10)
    assert len(everything) == 37 and len(set(everything)) == 37
    with transaction(factory) as session:
        assert waiting_counts(session) == {"buyer": 23, "warehouse": 9}
        assert waiting_counts(session, cap=10) == {"buyer": 10, "warehouse": 9}
        with pytest.raises(BadCursor):
            page_orders(session, cursor="bm90IGEgY3Vyc29y")


def test_the_flag_index_follows_the_orders_flags(factory: SessionFactory) -> None:
    with transaction(factory) as session:
        doc = make_order("F-1", [("TSHIRT-RED-M", 1)])
        seed_order(session, doc, stage="released", flags=["a_flag", "pick_overdue"], submitted_at=T0)
    with transaction(factory) as session:
        seed_order(session, doc, stage="released", flags=["pick_overdue", "pick_escalated"],
                   submitted_at=T0)
    with transaction(factory) as session:
        rows = session.execute(sa.select(OrderFlag.flag).where(OrderFlag.order_id == "F-1")).scalars()
        assert sorted(rows) == ["pick_escalated", "pick_overdue"]
        assert [i["order_id"] for i in page_orders(session, flag="pick_escalated")[0]] == ["F-1"]
        assert page_orders(session, flag="a_flag")[0] == []


def test_migration_0002_indexes_the_flags_of_orders_already_held(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    from models.db import MIGRATIONS_DIR

    url = f"sqlite:///{tmp_path / 'old.db'}"
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url)
    from alembic.script import ScriptDirectory

    before = ScriptDirectory.from_config(cfg).get_revision("0002").down_revision
    command.upgrade(cfg, str(before))  # the schema just before 0002, wherever it is chained
    engine = make_engine(url)
    now = T0
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO orders (order_id, workflow_id, platform, stage, flags, findings, document,"
            " created_at, submitted_at, updated_at) VALUES (:o, :w, 'x', 'released', :f, '[]', '{}',"
            " :t, :t, :t)"), [{"o": "OLD-1", "w": "order-OLD-1", "f": '["pick_overdue", "unpaid"]', "t": now},
                              {"o": "OLD-2", "w": "order-OLD-2", "f": "[]", "t": now}])
    engine.dispose()
    migrate(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = sorted(tuple(r) for r in conn.execute(sa.text("SELECT order_id, flag FROM order_flags")))
    engine.dispose()
    assert rows == [("OLD-1", "pick_overdue"), ("OLD-1", "unpaid")]


def test_the_cli_list_pages_with_limit_and_cursor(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    migrate(sqlite_url)
    engine = make_engine(sqlite_url)
    from models.db import session_factory

    ids = seed(session_factory(engine), 5, prefix="L")
    with transaction(session_factory(engine)) as session:  # a platform's order, due in a day
        doc = make_order("L-SHIP-BY", [("TSHIRT-RED-M", 1)], minutes=60)
        doc = OrderDocument.model_validate({**doc.model_dump(mode="json"),
                                            "ship_by": "2026-11-27T18:00:00+08:00"})
        seed_order(session, doc, stage="awaiting_buyer", submitted_at=T0 + timedelta(minutes=60))
    engine.dispose()
    env = env_for(tmp_path, sqlite_url)
    first = oms(env, "list", "--limit", "2", "--json")
    assert first.returncode == 0, first.stderr
    assert [o["order_id"] for o in json.loads(first.stdout)] == ids[:2]
    cursor = first.stderr.split("--cursor ", 1)[1].split()[0]
    code, out, _ = in_process(monkeypatch, capsys, env, "list", "--limit", "2", "--cursor", cursor)
    assert code == 0
    assert ids[2] in out and ids[3] in out and ids[0] not in out
    assert "next page: --cursor" in out
    code, _, err = in_process(monkeypatch, capsys, env, "list", "--cursor", "garbage")
    assert code == 1 and "--cursor" in err
    assert in_process(monkeypatch, capsys, env, "list", "--limit", "0")[0] == 1
    # the queue's order: the order with a ship-by time first, then the others oldest first
    code, out, _ = in_process(monkeypatch, capsys, env, "list", "--sort", "ship_by", "--json")
    assert code == 0
    listed = json.loads(out)
    assert [o["order_id"] for o in listed] == ["L-SHIP-BY", *ids]
    assert listed[0]["ship_by"] == "2026-11-27T10:00:00+00:00" and listed[1]["ship_by"] is None
    code, out, _ = in_process(monkeypatch, capsys, env, "list", "--sort", "ship_by", "--limit", "1")
    assert code == 0 and "L-SHIP-BY" in out and "ship by 2026-11-27 18:00" in out
    assert in_process(monkeypatch, capsys, env, "list", "--sort", "deadline")[0] == 2


# ------------------------------------------------------------------ processes


def wait_healthy(url: str, proc: subprocess.Popen[str], log: Path, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            r = httpx.get(url + "/healthz", timeout=2)
            if r.status_code == 200:
                return r.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"not healthy in {timeout}s: {log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def test_oms_serve_needs_a_session_secret_then_serves_until_ctrl_c(
    dev_env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = dev_env.client.service_client.config.target_host
    port = free_port()
    env = env_for(tmp_path, f"sqlite:///{tmp_path / 'oms.db'}", TEMPORAL_ADDRESS=target,
                  OMS_HTTP_ADDRESS=f"127.0.0.1:{port}")
    code, _, err = in_process(monkeypatch, capsys, env, "serve")
    assert code == 1 and "OMS_SESSION_SECRET" in err

    env["OMS_SESSION_SECRET"] = "s" * 40
    log = tmp_path / "serve.log"
    with open(log, "w") as sink:
        proc = subprocess.Popen([sys.executable, str(ROOT / "starter.py"), "serve"], env=env,
                                cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, text=True)
    try:
        health = wait_healthy(f"http://127.0.0.1:{port}", proc, log)
        assert health == {"status": "ok", "temporal": "ok", "database": "ok"}
        assert httpx.get(f"http://127.0.0.1:{port}/v1/orders").status_code == 401
    finally:
        code = stop(proc)
    assert code == 0, log.read_text()[-2000:]


def test_worker_dev_runs_the_service_beside_it_and_keeps_its_session_secret(
    dev_env: Any, tmp_path: Path
) -> None:
    target = dev_env.client.service_client.config.target_host  # --dev reuses a running server
    port, sdk_port = free_port(), free_port()
    env = env_for(tmp_path, f"sqlite:///{tmp_path / 'oms.db'}", TEMPORAL_ADDRESS=target,
                  OMS_HTTP_ADDRESS=f"127.0.0.1:{port}", OMS_TASK_QUEUE=f"dev-{port}",
                  OMS_SDK_METRICS_ADDRESS=f"127.0.0.1:{sdk_port}")
    log = tmp_path / "worker.log"
    with open(log, "w") as sink:
        proc = subprocess.Popen([sys.executable, str(ROOT / "worker.py"), "--dev"], env=env,
                                cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, text=True)
    try:
        assert wait_healthy(f"http://127.0.0.1:{port}", proc, log)["status"] == "ok"
        secret = tmp_path / "session-secret"
        assert secret.exists() and (secret.stat().st_mode & 0o777) == 0o600
        kept = secret.read_text()
        login = httpx.get(f"http://127.0.0.1:{port}/login")
        assert login.status_code == 200 and "csrf_token" in login.text
        # the worker's own Temporal SDK metrics, on their own port
        sdk = httpx.get(f"http://127.0.0.1:{sdk_port}/metrics", timeout=5)
        assert sdk.status_code == 200 and "temporal_" in sdk.text, sdk.text[:500]
    finally:
        code = stop(proc)
    assert code == 0, log.read_text()[-2000:]
    assert secret.read_text() == kept


def test_every_list_filter_reads_an_index_range_on_sqlite(sqlite_url: str) -> None:
    """The plans of the list's queries: a range of the index that ends in (created_at,
    order_id), never a scan of the orders or a sort of them, whatever the filter."""
    from models.db import session_factory

    migrate(sqlite_url)
    engine = make_engine(sqlite_url)
    factory = session_factory(engine)
    seed(factory, 3, prefix="P")
    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        captured.append((statement, parameters))

    from reads.queries import encode_cursor

    cursor = encode_cursor(T0, "P-00001")
    expected = {
        "waiting_for": "ix_orders_waiting_created_id", "stage": "ix_orders_stage_created_id",
        "flag": "ix_order_flags_flag_created_id", None: "ix_orders_created_id",
    }
    with transaction(factory) as session:
        for kind, index in expected.items():
            filters = {kind: {"waiting_for": "buyer", "stage": "released",
                              "flag": "pick_overdue"}[kind]} if kind else {}
            sa.event.listen(engine, "before_cursor_execute", capture)
            page_orders(session, limit=50, cursor=cursor, **filters)
            sa.event.remove(engine, "before_cursor_execute", capture)
            statement, parameters = captured[-1]
            plan = " | ".join(
                str(row[-1]) for row in
                session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            )
            assert f"USING COVERING INDEX {index}" in plan or f"USING INDEX {index}" in plan, plan
            assert "SCAN orders" not in plan and "TEMP B-TREE" not in plan, plan
    engine.dispose()
