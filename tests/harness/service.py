"""A harness for the HTTP service: the real app on uvicorn on a free port, on the real dev server.

`running_service` gives one test module its world: a fresh database (migrated, sample
reference data loaded), a worker on a uuid task queue (the project's own `build_worker`,
with the dev-env client), and the service itself, started the way `worker.py --dev` starts
it (`service.server.Beside`) on 127.0.0.1:0, with its own Temporal client made by
`runtime.temporal.connect`. One API key per role is made with the same code as
`oms keys create`. Clients talk to it over TCP with httpx, as a platform would.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from models.db import SessionFactory, make_engine, migrate, session_factory, transaction
from models.settings import Policy, Settings
from runtime.worker import build_worker
from service.keys import ROLES, create_key
from service.server import Beside
from tests.harness import codec_keys
from tests.harness.documents import make_order, service_policy
from tests.harness.reference import load_sample

SESSION_SECRET = "test-session-secret-" + "x" * 24


@dataclass
class ServiceStack:
    settings: Settings
    factory: SessionFactory
    url: str
    keys: dict[str, str]
    client: Any  # the dev env's Temporal client (the worker's)
    service: Beside
    http: httpx.AsyncClient = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.AsyncClient(base_url=self.url, timeout=httpx.Timeout(60.0))

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    async def get(self, path: str, role: str = "clerk", **kw: Any) -> httpx.Response:
        return await self.http.get(path, headers={**self.auth(role), **kw.pop("headers", {})}, **kw)

    async def post(self, path: str, role: str = "clerk", **kw: Any) -> httpx.Response:
        headers = {**self.auth(role), **kw.pop("headers", {})}
        return await self.http.post(path, headers=headers, **kw)

    def doc(self, order_id: str, lines: list[tuple[str, int]] | None = None, **kw: Any) -> dict[str, Any]:
        """An order document (JSON) that clears the check: paid, priced, a good address."""
        return make_order(order_id, lines or [("TSHIRT-RED-M", 1)], **kw).model_dump(mode="json")

    async def submit(self, *docs: dict[str, Any], role: str = "platform") -> list[dict[str, Any]]:
        r = await self.post("/v1/orders", role, json=list(docs))
        assert r.status_code == 200, r.text
        return r.json()["results"]

    async def order(self, order_id: str) -> dict[str, Any]:
        r = await self.get(f"/v1/orders/{order_id}")
        assert r.status_code == 200, r.text
        return r.json()

    async def wait_stage(self, order_id: str, *stages: str, timeout: float = 60.0) -> dict[str, Any]:
        """Poll the API until the order is in one of `stages` (as the database records it)."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            r = await self.get(f"/v1/orders/{order_id}")
            if r.status_code == 200:
                last = r.json()
                if last["stage"] in stages:
                    return last
            await asyncio.sleep(0.2)
        raise AssertionError(f"{order_id} not in {stages} after {timeout}s: {last and last['stage']}")

    async def history_length(self, order_id: str) -> int:
        handle = self.client.get_workflow_handle(f"order-{order_id}")
        return len((await handle.fetch_history()).events)

    async def settled_history(self, order_id: str) -> int:
        """The history's length once the workflow has stopped writing (the database can show
        a stage a moment before the workflow task that reached it is complete)."""
        last = await self.history_length(order_id)
        for _ in range(50):
            await asyncio.sleep(0.3)
            now = await self.history_length(order_id)
            if now == last:
                return now
            last = now
        raise AssertionError(f"{order_id}: its history keeps growing")


@asynccontextmanager
async def running_service(
    dev_env: Any,
    home: Path,
    db_url: str | None = None,
    *,
    stock: dict[tuple[str, str], int] | None = None,
    policy: Policy | None = None,
    worker: bool = True,
    dev: bool = False,
) -> AsyncIterator[ServiceStack]:
    home.mkdir(parents=True, exist_ok=True)
    url = db_url or f"sqlite:///{home / 'oms.db'}"
    target = dev_env.client.service_client.config.target_host
    settings = codec_keys.settings(
        home=home,
        database_url=url,
        task_queue=f"svc-{uuid.uuid4().hex[:10]}",
        temporal_address=target,
        temporal_namespace="default",
        http_address="127.0.0.1:0",
        session_secret=SESSION_SECRET,
        sdk_metrics_address="",
        policy=policy or service_policy(),
    )
    await asyncio.to_thread(migrate, url)
    engine = make_engine(url)
    factory = session_factory(engine)
    load_sample(factory, stock or {})
    keys = {}
    with transaction(factory) as session:
        for role in ROLES:
            keys[role] = create_key(session, name=f"test-{role}", role=role)
    stop = asyncio.Event()
    worker_task = None
    if worker:
        w = build_worker(dev_env.client, settings, factory, None)

        async def run() -> None:
            async with w:
                await stop.wait()

        worker_task = asyncio.create_task(run())
    service = Beside(settings, dev=dev)
    await service.start()
    stack = ServiceStack(settings=settings, factory=factory,
                         url=service.url.replace("localhost", "127.0.0.1").rstrip("/"),
                         keys=keys, client=dev_env.client, service=service)
    try:
        yield stack
    finally:
        await stack.http.aclose()
        await service.stop()
        stop.set()
        if worker_task is not None:
            await asyncio.wait_for(worker_task, timeout=30)
        engine.dispose()
