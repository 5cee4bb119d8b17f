"""Running the service: `oms serve` alone, or beside the worker (`worker.py --dev`, `demo`).

The console's cookie-signing secret has no default: `OMS_SESSION_SECRET`, or in --dev and the
demo one made once and kept under OMS_HOME (mode 0600), so a restart keeps the clerks signed
in. Every copy behind a load balancer must be given the same secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import structlog
import uvicorn

from models.errors import OmsError
from models.settings import Settings, kept_secret

log = structlog.get_logger()
SECRET_FILE = "session-secret"


class ServiceError(OmsError):
    """The service cannot start (message for the operator)."""


def session_secret(settings: Settings, *, dev: bool) -> str:
    if settings.session_secret is not None:
        value = settings.session_secret.get_secret_value()
        if len(value) < 32:
            raise ServiceError("OMS_SESSION_SECRET must be at least 32 characters")
        return value
    if not dev:
        raise ServiceError(
            "OMS_SESSION_SECRET is not set: the console's session cookies need a secret "
            "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`), the same "
            "for every copy of the service; or run with --dev"
        )
    return kept_secret(settings.home / SECRET_FILE)


class EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the process that embeds it owns Ctrl-C."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class Listener:
    """A bound socket and the address it is reachable on."""

    sock: socket.socket
    host: str
    port: int

    @property
    def url(self) -> str:
        shown = "localhost" if self.host in ("127.0.0.1", "0.0.0.0", "::", "::1") else self.host
        return f"http://{shown}:{self.port}/"

    @property
    def address(self) -> str:
        """host:port as OMS_HTTP_ADDRESS spells it (what the Web UI's codec endpoint points at)."""
        return f"{self.host}:{self.port}"


def listen(settings: Settings, *, any_port_if_busy: bool = False) -> Listener:
    """Bind OMS_HTTP_ADDRESS now (so a busy port is reported before anything starts). With
    `any_port_if_busy` (the demo, `worker.py --dev`) a busy port gives way to a free one."""
    host, port = settings.http_host_port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: without it, a response written in two parts waits for
    # the client's delayed ACK (~40 ms a request on Linux).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        if not any_port_if_busy:
            sock.close()
            raise ServiceError(f"cannot listen on {host}:{port} ({exc.strerror})") from exc
        log.warning("http port busy, using a free one", address=settings.http_address)
        sock.bind((host, 0))
    sock.listen(2048)
    sock.setblocking(False)
    return Listener(sock=sock, host=host, port=sock.getsockname()[1])


def build_server(settings: Settings, *, dev: bool, client: Any = None,
                 embedded: bool = False) -> uvicorn.Server:
    from service.app import create_app

    app = create_app(settings, session_secret=session_secret(settings, dev=dev), dev=dev,
                     client=client)
    host, port = settings.http_host_port
    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, access_log=False, lifespan="on",
        proxy_headers=True, server_header=False, timeout_graceful_shutdown=10,
    )
    return (EmbeddedServer if embedded else uvicorn.Server)(config)


async def serve_forever(settings: Settings, *, dev: bool) -> int:
    """`oms serve`: migrate, then serve until SIGINT / SIGTERM."""
    from models.db import migrate

    server = build_server(settings, dev=dev, embedded=True)
    listener = listen(settings)
    await asyncio.to_thread(migrate, settings.db_url)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # a graceful stop: requests in flight finish
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    log.info("http service starting", address=f"{listener.host}:{listener.port}",
             console=listener.url)
    try:
        await server.serve(sockets=[listener.sock])
    except SystemExit as exc:  # uvicorn's way of saying the lifespan failed
        raise ServiceError(
            f"the HTTP service did not start (cannot reach Temporal at "
            f"{settings.temporal_address} or the database?): exit {exc.code}"
        ) from None
    return 0


class Beside:
    """The service inside a process with work of its own (the worker, the demo)."""

    def __init__(
        self, settings: Settings, *, dev: bool, client: Any = None, listener: Listener | None = None
    ) -> None:
        self.listener = listener or listen(settings, any_port_if_busy=True)
        self.settings = settings.model_copy(update={"http_address": self.listener.address})
        self.server = build_server(self.settings, dev=dev, client=client, embedded=True)
        self.task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return self.listener.url

    async def start(self, timeout: float = 30.0) -> None:
        self.task = asyncio.create_task(self.server.serve(sockets=[self.listener.sock]))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.server.started:
            if self.task.done() or loop.time() > deadline:
                await self.stop()
                raise ServiceError(f"the HTTP service on {self.url} did not start")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self.task, timeout=15)
        with contextlib.suppress(OSError):
            self.listener.sock.close()
