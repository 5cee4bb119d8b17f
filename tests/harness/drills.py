"""What the drills (tests/test_drill_*.py) share: a private PostgreSQL, waiting on conditions.

`PrivatePostgres` is a throwaway cluster of its own: `initdb` from the machine's
PostgreSQL binaries (/usr/lib/postgresql/*/bin) into a fresh temporary
directory, started on a free loopback port with its socket in that directory.
A drill may stop it (`pg_ctl stop -m immediate`: a crash, no checkpoint) and
start it again; the machine's own server on 5432 is never touched. As root
(CI containers) the cluster runs as the `postgres` user, since PostgreSQL
refuses to run as root.

`wait_until` polls a condition until it holds or its deadline passes: drills
wait on what they need to see, never on a fixed sleep. `drill_stack` runs one
OMS installation (tests/harness/stack.py) with its worker, under the durability
test's quiet policy (no reminders due during a drill) and any extra settings.
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import select

from models.documents import workflow_id_for
from models.tables import Order
from tests.harness.invariants import check_invariants
from tests.harness.stack import SHORT_POLICY, OmsStack

T = TypeVar("T")

QUIET_POLICY = {
    **SHORT_POLICY,
    "OMS_POLICY__PICK__REMIND_AFTER": "PT10M",
    "OMS_POLICY__PICK__ESCALATE_AFTER": "PT20M",
    "OMS_POLICY__CONFIRMATION__REMIND_EVERY": "PT10M",
    "OMS_POLICY__CONFIRMATION__TIMEOUT": "PT30M",
}


@asynccontextmanager
async def drill_stack(
    dev_env: Any, home: Path, *, db_url: str | None = None, **settings: str
) -> AsyncIterator[OmsStack]:
    """An OMS installation on the session's dev server, its worker started; killed at the end."""
    policy = {**QUIET_POLICY, "OMS_SDK_METRICS_ADDRESS": "", **settings}
    oms = OmsStack.for_env(dev_env, home, db_url=db_url, policy_env=policy)
    await oms.start_worker()
    try:
        yield oms
    finally:
        oms.close()


async def wait_until(
    probe: Callable[[], T | Awaitable[T]],
    *,
    timeout: float,
    what: str,
    interval: float = 0.1,
    describe: Callable[[], str] | None = None,
) -> T:
    """Call `probe` until it returns something truthy (returned); fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = probe()
        if asyncio.iscoroutine(last) or isinstance(last, Awaitable):
            last = await last
        if last:
            return last
        if time.monotonic() >= deadline:
            detail = describe() if describe else repr(last)[:2000]
            raise AssertionError(f"{what}: not within {timeout:.0f}s; last seen: {detail}")
        await asyncio.sleep(interval)


async def assert_books_balance(stack: OmsStack) -> None:
    """`oms stock --audit` (the operator's command) is clean, and so are SPEC §8's invariants."""
    audit = await stack.cli("stock", "--audit")
    assert audit.code == 0 and "ledger audit: OK" in audit.out, audit
    assert stack.read(check_invariants) == []


def stage_counts(session: Any) -> Counter[str]:
    """How many orders are in each stage, straight from the database."""
    return Counter(session.execute(select(Order.stage)).scalars())


def db_stages(session: Any) -> dict[str, str]:
    return dict(session.execute(select(Order.order_id, Order.stage)).all())


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def postgres_bin(name: str) -> str:
    """A PostgreSQL server binary from the newest /usr/lib/postgresql/<version>/bin."""
    found = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    assert found, f"{name} not found under /usr/lib/postgresql/*/bin (install postgresql)"
    return found[-1]


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own, on 127.0.0.1:<free port>, trust auth."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="oms-drill-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.log = self.dir / "server.log"
        self._as: pwd.struct_passwd | None = None
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            self._as = pwd.getpwnam("postgres")
            os.chown(self.dir, self._as.pw_uid, self._as.pw_gid)
        self.user = self._as.pw_name if self._as else pwd.getpwuid(os.geteuid()).pw_name

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, Any] = {}
        if self._as is not None:
            kwargs.update(user=self._as.pw_uid, group=self._as.pw_gid, extra_groups=[])
        result = subprocess.run(
            list(args),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.dir,
            env={**os.environ, "LC_ALL": "C.UTF-8", "PGTZ": "UTC"},
            **kwargs,
        )
        assert result.returncode == 0, (
            f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}\n"
            f"{self.log.read_text(errors='replace')[-2000:] if self.log.exists() else ''}"
        )
        return result

    def init(self) -> PrivatePostgres:
        self._run(
            postgres_bin("initdb"),
            "-D", str(self.data),
            "-A", "trust",
            "-U", self.user,
            "-E", "UTF8",
            "--no-sync",
        )  # fmt: skip
        self.start()
        return self

    def start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.dir} -c max_connections=100"
        )
        self._run(
            postgres_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self, mode: str = "immediate") -> None:
        self._run(postgres_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def accepting(self) -> bool:
        """Whether the server accepts connections on its port now (`pg_isready`)."""
        probe = subprocess.run(
            [postgres_bin("pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port), "-t", "3"],
            capture_output=True,
            timeout=30,
        )
        return probe.returncode == 0

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def close(self) -> None:
        if self.running():
            subprocess.run(
                [postgres_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
                capture_output=True,
                timeout=60,
                **({"user": self._as.pw_uid} if self._as else {}),
            )
        shutil.rmtree(self.dir, ignore_errors=True)




async def signal_all(client: Any, sends: list[tuple[str, str, dict[str, Any]]]) -> None:
    """Signals straight to the workflows: they are accepted by the server even with no worker alive."""
    for order_id, name, payload in sends:  # in order: picked before packed before shipped
        await client.get_workflow_handle(workflow_id_for(order_id)).signal(name, payload)


def warehouse_signals(
    order_id: str, n: int, steps: tuple[str, ...]
) -> list[tuple[str, str, dict[str, Any]]]:
    payloads = {
        "picked": {},
        "packed": {"parcels": 1},
        "shipped": {"carrier": "SF", "tracking_no": f"SF9{n:09d}"},
    }
    return [(order_id, step, payloads[step]) for step in steps]
