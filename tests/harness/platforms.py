"""A harness for the shops' syncs on the real dev server, against the stand-in gateways.

`SyncRig` owns one test's database (sample catalog loaded), a worker on its own task
queue (the OMS's real `build_worker`: order workflows, the ShopSync workflow and every
activity), and any stand-in gateways the test starts. Ids are unique per test: the dev
server is shared by the whole session.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import Client

from models.db import make_engine, migrate, session_factory, transaction
from models.settings import Settings
from platforms import schedule
from platforms.messages import SyncInput, SyncResult
from platforms.shops import add_shop, list_shops, read_shop_in, set_token, shop_orders
from platforms.standin import StandinGateway, StandinShop
from platforms.standin.trades import pdd_order, taobao_trade
from platforms.tables import PiiAccess, ShopOrder
from runtime.codec import key_ring
from runtime.worker import build_worker
from tests.harness import codec_keys
from tests.harness.reference import load_sample

SKUS = [("TSHIRT-RED-M", "59.00"), ("MUG-WHITE", "35.00"), ("LAMP-DESK", "129.00")]


class Trades:
    """Platform orders with ids unique to one test (the dev server is shared)."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex[:6]
        self._next = random.randrange(10**13, 9 * 10**13)

    def new_id(self, platform: str) -> str:
        self._next += 1
        return f"39{self._next}" if platform == "taobao" else f"261126-{self._next:015d}"

    def put(self, gateway: StandinGateway, *, modified: float, lines: Any = None, **kw: Any) -> str:
        platform = gateway.shop.platform
        key = self.new_id(platform)
        lines = lines or [("TSHIRT-RED-M", 1, "59.00")]
        build = taobao_trade if platform == "taobao" else pdd_order
        gateway.shop.put(*build(key, lines=lines, modified=modified, **kw))
        return key

    def fill(self, gateway: StandinGateway, count: int, *, start: float, end: float) -> list[str]:
        step = (end - start) / count
        return [self.put(gateway, modified=start + i * step) for i in range(count)]


class SyncRig(Trades):
    def __init__(self, client: Client, settings: Settings, factory: Any) -> None:
        super().__init__()
        self.client = client
        self.settings = settings
        self.factory = factory
        self.ring = key_ring(settings)
        self.gateways: list[StandinGateway] = []

    # ------------------------------------------------------------ the platforms
    def gateway(self, platform: str) -> StandinGateway:
        shop = StandinShop(
            platform,
            app_key=f"key-{self.tag}",
            app_secret=f"secret-{self.tag}",
            session=f"session-{self.tag}",
        )
        gateway = StandinGateway(shop).start()
        self.gateways.append(gateway)
        return gateway

    # ------------------------------------------------------------ shops
    def add(self, name: str, gateway: StandinGateway, *, since: datetime, **fields: Any) -> str:
        shop = gateway.shop
        spec = read_shop_in(
            {
                "name": f"{name}-{self.tag}",
                "platform": shop.platform,
                "app_key": shop.app_key,
                "app_secret": shop.app_secret,
                "session": shop.session,
                "api_url": gateway.url,
                "since": since.isoformat(),
            }
            | fields
        )
        with transaction(self.factory) as s:
            add_shop(s, self.ring, spec)
        return spec.name

    def renew(self, name: str, token: str) -> None:
        with transaction(self.factory) as s:
            set_token(s, self.ring, name, token)

    async def run(self, name: str, timeout: float = 120, **kw: Any) -> SyncResult:
        inp = SyncInput(shop=name, retry_initial_s=0.2, retry_max_s=1.0, max_windows=500)
        inp = inp.model_copy(update=kw)
        return await asyncio.wait_for(
            self.client.execute_workflow(
                "ShopSync",
                inp,
                id=f"{schedule.schedule_id(name)}-test-{uuid.uuid4().hex[:8]}",
                task_queue=self.settings.task_queue,
                result_type=SyncResult,
            ),
            timeout,
        )

    # ------------------------------------------------------------ reading
    def shop(self, name: str) -> dict[str, Any]:
        with transaction(self.factory) as s:
            return next(x for x in list_shops(s) if x["name"] == name)

    def orders(self, name: str, outcome: str | None = None) -> list[ShopOrder]:
        with transaction(self.factory) as s:
            return shop_orders(s, name, outcome=outcome)

    def pii(self) -> list[PiiAccess]:
        from sqlmodel import select

        with transaction(self.factory) as s:
            return list(s.exec(select(PiiAccess)).all())

    async def workflow_exists(self, order_id: str) -> bool:
        try:
            await self.client.get_workflow_handle(f"order-{order_id}").describe()
        except Exception:
            return False
        return True

    async def eventually(self, check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"not {what} after {timeout}s")
            await asyncio.sleep(0.2)


@asynccontextmanager
async def sync_rig(client: Client, db_url: str, home: Any, **values: Any) -> AsyncIterator[SyncRig]:
    """`values`: settings of the rig's worker besides the defaults (a `policy`, say)."""
    migrate(db_url)
    engine = make_engine(db_url, pool_size=5)
    factory = session_factory(engine)
    load_sample(factory)
    task_queue = f"sync-{uuid.uuid4().hex[:10]}"
    settings = codec_keys.settings(database_url=db_url, task_queue=task_queue, home=home, **values)
    worker = build_worker(client, settings, factory, None, task_queue=task_queue, max_threads=8)
    rig = SyncRig(client, settings, factory)
    try:
        async with worker:
            yield rig
    finally:
        for gateway in rig.gateways:
            gateway.stop()
        engine.dispose()


def ago(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)


NOW = time.time
