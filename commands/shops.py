"""The shop commands, once, for the CLI (`oms shops ...`, `oms pii-log`) and the HTTP routes.

Each takes the database, the Temporal client and the settings it needs and answers plain
data (never a secret or token) or raises `ShopError` naming the field or the reason.
The database row comes first and the schedule second, so a schedule never runs for a
shop that is not there; if the schedule cannot be made, the row is taken back.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from models.db import SessionFactory, transaction
from models.settings import Settings
from platforms import schedule
from platforms.messages import SyncResult
from platforms.shops import (
    ShopError,
    add_shop,
    change_shop,
    get_shop,
    list_shops,
    pii_log,
    public,
    read_shop_in,
    read_shop_settings,
    set_state,
    set_token,
)
from platforms.tables import Shop


class ShopCommands:
    def __init__(self, factory: SessionFactory, settings: Settings, ring: Any) -> None:
        self.factory = factory
        self.settings = settings
        self.ring = ring

    def _db(self, fn: Any, *args: Any) -> Any:
        with transaction(self.factory) as s:
            return fn(s, *args)

    async def add(self, client: Client, raw: Any) -> dict[str, Any]:
        spec = read_shop_in(raw)
        shop = await asyncio.to_thread(self._db, lambda s: public(add_shop(s, self.ring, spec)))
        try:
            await schedule.create(
                client,
                shop=spec.name,
                task_queue=self.settings.task_queue,
                poll_every=spec.poll_every,
            )
        except RPCError as exc:
            await asyncio.to_thread(self._db, lambda s: s.delete(s.get(Shop, spec.name)))
            raise ShopError(
                [("(temporal)", f"the shop's schedule could not be made: {exc.message}")], 503
            ) from exc
        shop["schedule"] = schedule.schedule_id(spec.name)
        return shop

    def list(self) -> list[dict[str, Any]]:
        return self._db(list_shops)

    async def pause(self, client: Client, name: str) -> dict[str, Any]:
        await asyncio.to_thread(self._db, get_shop, name)
        await schedule.pause(client, name)
        return await asyncio.to_thread(self._db, lambda s: public(set_state(s, name, "paused")))

    async def resume(self, client: Client, name: str) -> dict[str, Any]:
        def resumed(s: Any) -> dict[str, Any]:
            shop = get_shop(s, name)
            state = "syncing" if shop.session_sealed else "token_expired"
            return public(
                set_state(s, name, state, shop.last_error if state != "syncing" else None)
            )

        shop = await asyncio.to_thread(self._db, resumed)
        await schedule.resume(client, name)
        return shop

    async def set(self, client: Client, name: str, raw: Any) -> dict[str, Any]:
        """`shops set`: the shop's settings after `add` (its schedule's interval too); a new
        carrier id or gateway lets what waited for it (a write-back) go on at once."""
        settings = read_shop_settings(raw)

        def changed_shop(s: Any) -> tuple[dict[str, Any], list[str]]:
            shop, changed = change_shop(s, name, settings)
            return public(shop), changed

        shop, changed = await asyncio.to_thread(self._db, changed_shop)
        if "poll_every_s" in changed:
            await schedule.set_interval(client, name, timedelta(seconds=shop["poll_every_s"]))
        if shop["state"] != "paused" and {"carrier_ids", "api_url"} & set(changed):
            try:
                await schedule.trigger(client, name)
            except RPCError as exc:  # no schedule (a shop synced by hand): its next run takes it
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
        return {**shop, "changed": changed}

    async def token(self, client: Client, name: str, token: str) -> dict[str, Any]:
        shop = await asyncio.to_thread(
            self._db, lambda s: public(set_token(s, self.ring, name, token))
        )
        if shop["state"] != "paused":
            await schedule.trigger(client, name)  # what waited for the token goes on now
        return shop

    async def sync(
        self,
        client: Client,
        name: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        wait: bool = False,
    ) -> dict[str, Any]:
        await asyncio.to_thread(self._db, get_shop, name)
        if since is None and until is None:
            await schedule.trigger(client, name)
            return {"shop": name, "started": schedule.schedule_id(name), "backfill": False}
        errors = []
        if since is None:
            errors.append(("since", "a backfill needs --since with --until"))
        if until is None:
            errors.append(("until", "a backfill needs --until with --since"))
        for field, value in (("since", since), ("until", until)):
            if value is not None and value.tzinfo is None:
                errors.append((field, "must carry a timezone offset, e.g. +08:00"))
        if errors:
            raise ShopError(errors)
        assert since is not None and until is not None
        if until <= since:
            raise ShopError([("until", "must be after since")])
        if until > datetime.now(UTC):
            raise ShopError([("until", "must not lie in the future")])
        handle = await schedule.backfill(
            client,
            shop=name,
            task_queue=self.settings.task_queue,
            since=since.astimezone(UTC),
            until=until.astimezone(UTC),
        )
        answer: dict[str, Any] = {"shop": name, "started": handle.id, "backfill": True}
        if wait:
            result: SyncResult = await handle.result()
            answer |= {
                "state": result.state,
                "windows": len(result.windows),
                "imported": sum(w.imported for w in result.windows),
                "duplicates": sum(w.duplicates for w in result.windows),
                "rejected": sum(w.rejected for w in result.windows),
                "held": sum(w.held for w in result.windows),
                "orders": [o for w in result.windows for o in w.orders],
                "problems": [p for w in result.windows for p in w.problems],
            }
        return answer

    def pii_log(self, order_id: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        return self._db(lambda s: pii_log(s, order_id=order_id, limit=limit))
