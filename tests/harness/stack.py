"""End-to-end harness: the real worker and the real CLI as subprocesses on a real Temporal server.

`OmsStack` owns one isolated installation: a temporary OMS_HOME, its own
database (a fresh SQLite file, or a PostgreSQL database from the `pg_url`
fixture) and a uuid task queue, pointed at the session's dev server. It runs
`python worker.py` as a child process (which a test may SIGKILL and restart)
and `python starter.py ...` exactly as an operator would, returning the exit
code and both output streams.

Policy durations are shortened through the same `OMS_POLICY__...` environment
variables an operator would use; nothing in the application knows it is being
tested.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.db import make_engine, session_factory, transaction
from tests.harness import (
    ROOT,
    codec_keys,
)

SAMPLE = ROOT / "sample"

# Short, but not so short that a slow CI machine trips a timeout the test did not ask for.
SHORT_POLICY: dict[str, str] = {
    "OMS_POLICY__PICK__REMIND_AFTER": "PT30S",
    "OMS_POLICY__PICK__ESCALATE_AFTER": "PT60S",
    "OMS_POLICY__CONFIRMATION__REMIND_EVERY": "PT30S",
    "OMS_POLICY__CONFIRMATION__TIMEOUT": "PT10M",
    "OMS_POLICY__PAYMENT__UNPAID_WINDOW": "PT10M",
    "OMS_POLICY__SHORTAGE__BACKORDER_DEADLINE": "PT10M",
    "OMS_POLICY__APPROVAL__ESCALATE_AFTER": "PT5M",
}


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def __str__(self) -> str:  # shown in assertion messages
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


@dataclass
class OmsStack:
    """One OMS installation on a shared Temporal server: worker subprocess + CLI subprocesses."""

    target: str
    home: Path
    db_url: str
    task_queue: str = field(default_factory=lambda: f"e2e-{uuid.uuid4().hex[:12]}")
    policy_env: Mapping[str, str] = field(default_factory=lambda: dict(SHORT_POLICY))
    worker: subprocess.Popen[bytes] | None = None
    worker_starts: int = 0

    @classmethod
    def for_env(
        cls,
        dev_env: Any,
        home: Path,
        db_url: str | None = None,
        policy_env: Mapping[str, str] | None = None,
    ) -> OmsStack:
        target = dev_env.client.service_client.config.target_host
        home.mkdir(parents=True, exist_ok=True)
        url = db_url or f"sqlite:///{home / 'oms.db'}"
        return cls(
            target=target, home=home, db_url=url, policy_env=dict(policy_env or SHORT_POLICY)
        )

    # ------------------------------------------------------------------ env

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OMS_", "TEMPORAL_"))}
        env.update(
            {
                "TEMPORAL_ADDRESS": self.target,
                "TEMPORAL_NAMESPACE": "default",
                "OMS_HOME": str(self.home),
                "OMS_DATABASE_URL": self.db_url,
                "OMS_TASK_QUEUE": self.task_queue,
                "OMS_LOG_FORMAT": "json",
                "PYTHONUNBUFFERED": "1",
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                # the session's codec key ring: the worker, the CLI and the tests' own
                # client seal and open each other's payloads
                **codec_keys.ENV,
            }
        )
        env.update(self.policy_env)
        return env

    # --------------------------------------------------------------- worker

    async def start_worker(self, *, timeout: float = 60.0) -> None:
        """Start `python worker.py` and wait until it polls its task queue."""
        assert self.worker is None or self.worker.poll() is not None, "a worker is already running"
        self.worker_starts += 1
        log = self.home / f"worker-{self.worker_starts}.log"
        with open(log, "wb") as sink:
            self.worker = subprocess.Popen(
                [sys.executable, str(ROOT / "worker.py")],
                cwd=self.home,
                env=self.env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.worker.poll() is not None:
                raise AssertionError(
                    f"worker exited with {self.worker.returncode}:\n{log.read_text()[-3000:]}"
                )
            if "worker running" in log.read_text(errors="replace"):
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"worker did not start within {timeout}s:\n{log.read_text()[-3000:]}")

    def kill_worker(self, sig: int = signal.SIGKILL) -> None:
        """Kill the worker subprocess (SIGKILL by default: no shutdown, no goodbyes)."""
        proc = self.worker
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def worker_log(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-4000:] for p in sorted(self.home.glob("worker-*.log"))
        )

    # ------------------------------------------------------------------ CLI

    async def cli(self, *args: str, timeout: float = 60.0) -> CliResult:
        """`python starter.py ARGS...` with this installation's environment."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "starter.py"),
            *args,
            cwd=str(self.home),
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise AssertionError(
                f"starter.py {' '.join(args)} did not finish within {timeout}s"
            ) from None
        assert proc.returncode is not None
        return CliResult(proc.returncode, out.decode(), err.decode())

    async def ok(self, *args: str) -> CliResult:
        """A CLI command that must succeed."""
        result = await self.cli(*args)
        assert result.code == 0, f"starter.py {' '.join(args)}: {result}"
        return result

    async def load_sample(self) -> None:
        for kind, name in (
            ("catalog", "catalog.json"),
            ("warehouses", "warehouses.json"),
            ("stock", "stock.json"),
        ):
            await self.ok("load", kind, str(SAMPLE / name))

    async def status(self, order_id: str) -> dict[str, Any]:
        return (await self.ok("status", order_id, "--json")).json()

    async def wait_for_stage(
        self, order_id: str, stage: str, timeout: float = 60.0
    ) -> dict[str, Any]:
        """Poll `status --json` until the order reaches `stage`; fail with its last status otherwise."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            result = await self.cli("status", order_id, "--json")
            if result.code == 0:
                last = result.json()
                if last["stage"] == stage:
                    return last
            await asyncio.sleep(0.2)
        raise AssertionError(
            f"{order_id} did not reach {stage} within {timeout}s; last status: "
            f"{json.dumps(last, ensure_ascii=False)[:1500]}\nworker log:\n{self.worker_log()[-3000:]}"
        )

    async def wait_for_stages(
        self, expected: Mapping[str, str], timeout: float = 90.0
    ) -> dict[str, str]:
        """Poll `list --json` until every order in `expected` is in its stage."""
        deadline = time.monotonic() + timeout
        stages: dict[str, str] = {}
        while time.monotonic() < deadline:
            result = await self.cli("list", "--json")
            if result.code == 0:
                stages = {row["order_id"]: row["stage"] for row in result.json()}
                if all(stages.get(k) == v for k, v in expected.items()):
                    return stages
            await asyncio.sleep(0.3)
        wrong = {k: (stages.get(k), v) for k, v in expected.items() if stages.get(k) != v}
        raise AssertionError(
            f"orders not in their stage after {timeout}s (actual, expected): {wrong}\n"
            f"worker log:\n{self.worker_log()[-3000:]}"
        )

    # ------------------------------------------------------------- database

    def read(self, fn: Any) -> Any:
        """Run `fn(session)` against this installation's database (a short read)."""
        engine = make_engine(self.db_url, pool_size=1)
        try:
            with transaction(session_factory(engine)) as session:
                return fn(session)
        finally:
            engine.dispose()

    def close(self) -> None:
        self.kill_worker()


# --------------------------------------------------------------- order files


def write_orders(path: Path, orders: Iterable[dict[str, Any]]) -> Path:
    path.write_text(json.dumps(list(orders), ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def submit_lines(out: str) -> dict[str, str]:
    """`submit` output → {order_id: status}; a repeated id keeps every status, joined by '|'."""
    result: dict[str, str] = {}
    for line in out.splitlines():
        key, sep, value = line.partition(": ")
        if sep:
            result[key] = f"{result[key]}|{value}" if key in result else value
    return result
