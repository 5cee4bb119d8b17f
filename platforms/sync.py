"""One window of a shop's sync (SPEC §3.9, §8.9): read, map, decrypt, hand to intake, commit.

`WindowRunner.run` is what the sync workflow's activity does, in this order:

1. the window: from the shop's cursor (`shops.synced_through`) to at most 30 minutes on,
   ending a minute before now on Taobao and more than 3 minutes before now on Pinduoduo
   (a backfill names its own window and leaves the cursor alone);
2. every platform order modified in it, read from its last page back;
3. each one mapped (`platforms.taobao` / `platforms.pinduoduo`); one that cannot be is
   recorded `rejected` with its reason and the rest go on;
4. orders seen before: what changed on the platform reaches the running order
   (`platforms.changes`); new ones that the OMS will check and ship: their receivers
   decrypted in batches, each decryption logged (`pii_access_log`), then handed to intake
   (`ops.intake.submit_one`: one workflow per order id, a resent order is `duplicate`);
   a receiver the platform will not decrypt holds the order `pii_unavailable`;
5. only then the cursor moves to the window's end, in the same transaction as the
   shop's counters.

A crash anywhere before 5 repeats the window (the activity is retried): intake answers
`duplicate` for what was already started and a change already applied is no change the
second time, so nothing is lost or doubled.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import structlog
from sqlmodel import Session, col, func, select

from models.db import SessionFactory, transaction
from platforms import pinduoduo, taobao
from platforms.changes import ADDRESS_CHANGED, address_signal, apply_changes, diff, send_signal
from platforms.errors import PlatformError, SessionExpired
from platforms.mapping import Mapped, PlatformView, Sealed, with_receiver
from platforms.messages import DecryptHeldResult, WindowInput, WindowResult
from platforms.pdd import PddClient
from platforms.shops import Credentials, credentials, get_shop
from platforms.tables import PiiAccess, Shop, ShopOrder
from platforms.top import CHINA, TopClient

log = structlog.get_logger()

SPAN = timedelta(minutes=30)
LAG = {"taobao": timedelta(seconds=60), "pdd": timedelta(seconds=185)}
SUBMIT_AT_ONCE = 64  # as the HTTP intake starts them


class Retry(Exception):  # noqa: N818 (an instruction to the activity, not a failure)
    """The platform may answer later (rate limit, down): the activity retries with backoff."""

    def __init__(self, error: PlatformError) -> None:
        super().__init__(error.reason())
        self.error = error


@dataclass
class Window:
    start: datetime
    end: datetime
    caught_up: bool


def plan(
    platform: str, since: datetime, now: datetime, until: datetime | None = None
) -> Window | None:
    """The next window from `since`, or None when there is nothing new to read yet."""
    latest = now - LAG[platform]
    if until is not None:
        latest = min(latest, until)
    if since >= latest:
        return None
    end = min(since + SPAN, latest)
    return Window(since, end, caught_up=end >= latest)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def gateway_client(creds: Credentials, http: httpx.Client | None = None) -> Any:
    cls = TopClient if creds.platform == "taobao" else PddClient
    return cls(
        api_url=creds.api_url,
        app_key=creds.app_key,
        app_secret=creds.app_secret,
        session=creds.session,
        http=http,
    )


class WindowRunner:
    """Runs windows for any shop; built once per worker with its dependencies."""

    def __init__(
        self,
        *,
        factory: SessionFactory,
        ring: Any,
        submit: Callable[[Any], Any],
        temporal: Callable[[], Any],
        http: httpx.Client | None = None,
        heartbeat: Callable[..., None] = lambda *a: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.factory = factory
        self.ring = ring
        self.submit = submit  # async (OrderDocument) -> "started" | "duplicate"
        self.temporal = temporal  # () -> the Temporal client, for changes to running orders
        self.http = http
        self.heartbeat = heartbeat
        self.clock = clock
        self.calls = 0  # gateway calls made (the benchmark's calls per order)
        # seconds spent per phase, summed over windows (logged; the benchmark prints them)
        self.timings: Counter[str] = Counter()

    # ------------------------------------------------------------------ the window
    async def run(self, inp: WindowInput) -> WindowResult:
        def load() -> tuple[Shop, Credentials]:
            with transaction(self.factory) as s:
                shop = get_shop(s, inp.shop)
                return shop, credentials(s, self.ring, inp.shop)

        shop, creds = await asyncio.to_thread(load)
        backfill = inp.since is not None
        if not backfill and shop.state in ("paused", "token_expired"):
            return WindowResult(shop=shop.name, state=shop.state, error=shop.last_error)
        if creds.session is None:
            await asyncio.to_thread(
                self._set_state,
                shop.name,
                "token_expired",
                "no session token: `oms shops token NAME --session ...`",
            )
            return WindowResult(shop=shop.name, state="token_expired")
        now = self.clock()
        since = datetime.fromisoformat(inp.since) if inp.since else _aware(shop.synced_through)
        until = datetime.fromisoformat(inp.until) if inp.until else None
        window = plan(shop.platform, _aware(since), now, until)
        client = gateway_client(creds, self.http)
        try:
            held = WindowResult(shop=shop.name, state=shop.state, caught_up=True)
            if inp.retry_held and not backfill:  # once per run, before its first window
                await self._write_back(shop, client, held)
                await self._retry_held(shop, client, held)
            if window is None:
                await asyncio.to_thread(self._commit_held, shop.name, held)
                return held
            result = await self._window(shop, client, window, backfill=backfill)
            result.written_back = held.written_back
            result.write_back_refused = held.write_back_refused
            result.imported += held.imported
            result.orders[:0] = held.orders
        except SessionExpired as exc:
            await asyncio.to_thread(self._set_state, shop.name, "token_expired", exc.reason())
            return WindowResult(shop=shop.name, state="token_expired", error=exc.reason())
        except PlatformError as exc:
            if exc.retryable:
                await asyncio.to_thread(self._touch, shop.name, exc.reason())
                raise Retry(exc) from exc
            await asyncio.to_thread(self._set_state, shop.name, "failing", exc.reason())
            return WindowResult(shop=shop.name, state="failing", error=exc.reason())
        finally:
            self.calls += client.calls
            if self.http is None:
                client.close()
        t0 = time.perf_counter()
        await asyncio.to_thread(self._commit, shop.name, window, result, backfill)
        self.timings["commit"] += time.perf_counter() - t0
        log.info("shop window", shop=shop.name, seen=result.seen, imported=result.imported,
                 **{f"{k}_s": round(v, 2) for k, v in self.timings.items()})
        return result

    async def _window(
        self, shop: Shop, client: Any, window: Window, *, backfill: bool
    ) -> WindowResult:
        platform = shop.platform
        result = WindowResult(
            shop=shop.name,
            state="syncing",
            start=window.start.isoformat(),
            end=window.end.isoformat(),
            caught_up=window.caught_up,
        )

        loop = asyncio.get_running_loop()

        def beat(page: int) -> None:  # from the reading thread: the heartbeat is the loop's
            loop.call_soon_threadsafe(self.heartbeat, f"page {page}")

        def read() -> list[Any]:
            if platform == "taobao":
                fmt = "%Y-%m-%d %H:%M:%S"
                return taobao.read_window(
                    client,
                    window.start.astimezone(CHINA).strftime(fmt),
                    window.end.astimezone(CHINA).strftime(fmt),
                    on_page=beat,
                )
            return pinduoduo.read_window(
                client, int(window.start.timestamp()), int(window.end.timestamp()), on_page=beat
            )

        t0 = time.perf_counter()
        raw = await asyncio.to_thread(read)
        self.timings["read"] += time.perf_counter() - t0
        result.seen = len(raw)
        ship_within = timedelta(seconds=shop.ship_within_s)
        mapped = [
            taobao.map_trade(t, shop=shop.name, ship_within=ship_within)
            if platform == "taobao"
            else pinduoduo.map_order(t, shop=shop.name)
            for t in raw
        ]
        known = await asyncio.to_thread(self._known, [m.order_id for m in mapped if m.order_id])
        to_import: list[Mapped] = []
        to_change: list[tuple[Mapped, ShopOrder]] = []
        records: list[dict[str, Any]] = []
        for m in mapped:
            if not m.order_id:
                result.rejected += 1
                result.problems.append("; ".join(f"{p.field}: {p.message}" for p in m.problems))
                continue
            row = known.get(m.order_id)
            if row is not None and row.outcome == "imported":
                if m.view is not None:
                    to_change.append((m, row))
                continue
            if m.document is None:
                reason = "; ".join(f"{p.field}: {p.message}" for p in m.problems)
                records.append(self._record(shop.name, m, "rejected", reason))
                result.rejected += 1
                result.problems.append(f"{m.order_id}: {reason}")
                continue
            if not m.importable:
                records.append(
                    self._record(
                        shop.name, m, "skipped", "closed, shipped or refunded before import"
                    )
                )
                result.skipped += 1
                continue
            to_import.append(m)
        if records:
            await asyncio.to_thread(self._save, records)
        if to_import:
            await self._import(shop, client, to_import, result)
        if to_change:
            await self._changes(shop, client, to_change, result)
        del result.problems[50:]
        return result

    # ------------------------------------------------------------------ new orders
    async def _import(
        self, shop: Shop, client: Any, batch: list[Mapped], result: WindowResult,
        *, held_before: bool = False,
    ) -> None:
        """Decrypt, check and hand to intake. A receiver the platform refuses: the order is
        started held (`pii_unavailable`, the reason) and asked for again on the next runs;
        decrypted then (`held_before`), its running order is sent the receiver."""
        from models.documents import check_document

        receivers, refused = await self._decrypt(shop, client, batch)
        t2 = time.perf_counter()
        ready: list[tuple[Mapped, Any]] = []
        records: list[dict[str, Any]] = []
        hold: list[tuple[Any, str]] = []  # (document without its receiver, the platform's reason)
        for m in batch:
            pid = m.platform_order_id
            if pid in refused or pid not in receivers:
                reason = refused.get(pid, "not decrypted")
                records.append(self._record(shop.name, m, "pii_unavailable", reason))
                result.held += 1
                if not held_before and m.document is not None:
                    bare = check_document(m.document)
                    if bare.document is not None:
                        hold.append((bare.document, reason))
                continue
            assert m.document is not None
            if held_before and await self._send_receiver(m, receivers[pid]):
                records.append(self._record(shop.name, m, "imported", None))
                result.imported += 1
                continue
            checked = check_document(with_receiver(m.document, receivers[pid]))
            if checked.document is None:
                reason = "; ".join(f"{f}: {msg}" for f, msg in checked.errors)
                records.append(self._record(shop.name, m, "rejected", reason))
                result.rejected += 1
                result.problems.append(f"{m.order_id}: {reason}")
                continue
            ready.append((m, checked.document))
        if records:
            await asyncio.to_thread(self._save, records)
        gate = asyncio.Semaphore(SUBMIT_AT_ONCE)
        done = 0

        async def submit(document: Any) -> str:
            nonlocal done
            async with gate:
                answer = await self.submit(document)
            done += 1
            if done % 100 == 0:
                self.heartbeat(f"handed {done} to intake")
            return str(answer)

        t3 = time.perf_counter()
        self.timings["check"] += t3 - t2
        for document, reason in hold:  # started held: the clerk sees them, `resume` retries
            async with gate:
                await self.submit(document, pii_unavailable=reason)
        answers = await asyncio.gather(*(submit(doc) for _, doc in ready))
        t4 = time.perf_counter()
        self.timings["intake"] += t4 - t3
        rows = []
        for (m, _), answer in zip(ready, answers, strict=True):
            rows.append(self._record(shop.name, m, "imported", None))
            if answer == "duplicate":
                result.duplicates += 1
            else:
                result.imported += 1
            if len(result.orders) < 1000:
                result.orders.append(m.order_id)
        if rows:
            await asyncio.to_thread(self._save, rows)
            self.timings["save"] += time.perf_counter() - t4

    async def _write_back(self, shop: Shop, client: Any, result: WindowResult) -> None:
        """The shop's shipped shipments told to the platform, each once (platforms.writeback)."""
        from platforms import writeback

        def load() -> list[Any]:
            with transaction(self.factory) as s:
                return writeback.pending(s, shop.name)

        def save(records: list[dict[str, Any]]) -> None:
            with transaction(self.factory) as s:
                writeback.record(s, shop.name, records)

        items = await asyncio.to_thread(load)
        if not items:
            return
        try:
            done, records = await asyncio.to_thread(
                writeback.write_back, client, shop.platform, items, dict(shop.carrier_ids or {})
            )
        except PlatformError as exc:  # retryable: keep what was done, then back off
            await asyncio.to_thread(save, getattr(exc, "recorded", []))
            raise
        await asyncio.to_thread(save, records)
        result.written_back += done.done
        result.write_back_refused += done.refused
        if done.session_expired:
            raise SessionExpired(shop.platform, "write-back", msg=done.session_expired)

    async def _retry_held(self, shop: Shop, client: Any, result: WindowResult) -> None:
        """Orders held `pii_unavailable`: the platform is asked again on every run."""

        def held() -> list[Mapped]:
            out = []
            with transaction(self.factory) as s:
                query = (
                    select(ShopOrder)
                    .where(ShopOrder.shop == shop.name, ShopOrder.outcome == "pii_unavailable")
                    .order_by(col(ShopOrder.first_seen))
                    .limit(200)
                )
                for row in s.exec(query):
                    if row.pending:
                        out.append(_held_mapped(row, shop.platform))
            return out

        batch = await asyncio.to_thread(held)
        if batch:
            await self._import(shop, client, batch, result, held_before=True)
            result.held = 0  # counted once, in the window that first held them

    async def _send_receiver(self, m: Mapped, receiver: Any) -> bool:
        """A held order's receiver, decrypted at last, sent to its running workflow (False:
        no such workflow, an order held before orders were started held: intake takes it)."""
        sent, _ = await send_signal(self.temporal(), m.order_id, "platform_address",
                                    address_signal(m, receiver))
        return sent

    async def decrypt_held(self, order_id: str) -> DecryptHeldResult:
        """`resume` of an order held `pii_unavailable`: its platform asked again, the
        decryption logged; the receiver (the `platform_address` payload) or why not."""

        def load() -> tuple[Shop, Credentials, Mapped] | None:
            with transaction(self.factory) as s:
                row = s.get(ShopOrder, order_id)
                if row is None or row.outcome != "pii_unavailable" or not row.pending:
                    return None
                shop = get_shop(s, row.shop)
                return shop, credentials(s, self.ring, row.shop), _held_mapped(row, shop.platform)

        found = await asyncio.to_thread(load)
        if found is None:
            return DecryptHeldResult(reason="no receiver of a shop's order waits to be decrypted")
        shop, creds, m = found
        if creds.session is None:
            return DecryptHeldResult(reason="the shop has no session token: `oms shops token`")
        client = gateway_client(creds, self.http)
        try:
            receivers, refused = await self._decrypt(shop, client, [m])
        except PlatformError as exc:
            if exc.retryable:
                raise Retry(exc) from exc
            return DecryptHeldResult(reason=exc.reason())
        finally:
            if self.http is None:
                client.close()
        receiver = receivers.get(m.platform_order_id)
        if receiver is None:
            reason = refused.get(m.platform_order_id, "not decrypted")
            await asyncio.to_thread(self._save, [self._record(shop.name, m, "pii_unavailable", reason)])
            return DecryptHeldResult(reason=reason)
        await asyncio.to_thread(self._save, [self._record(shop.name, m, "imported", None)])
        return DecryptHeldResult(receiver=address_signal(m, receiver))

    # ------------------------------------------------------------------ changes
    async def _changes(
        self, shop: Shop, client: Any, pairs: list[tuple[Mapped, ShopOrder]], result: WindowResult
    ) -> None:
        changed: list[tuple[Mapped, PlatformView, list[str]]] = []
        for m, row in pairs:
            assert m.view is not None
            old = PlatformView.from_dict(row.view) if row.view else None
            found = diff(old, m.view) if old is not None else []
            if found:
                changed.append((m, old, found))  # type: ignore[arg-type]
        # A changed address is decrypted (in one batch, logged like any decryption) to be
        # sent to its order; one the platform will not decrypt is asked again next run.
        moved = [m for m, _, found in changed if ADDRESS_CHANGED in found and m.sealed is not None]
        receivers: dict[str, Any] = {}
        refused: dict[str, str] = {}
        if moved:
            receivers, refused = await self._decrypt(shop, client, moved)
        for m, old, found in changed:
            receiver = receivers.get(m.platform_order_id)
            outcomes = await apply_changes(self.temporal(), m, found, receiver=receiver)
            view = m.view
            if ADDRESS_CHANGED in found and receiver is None:
                reason = refused.get(m.platform_order_id, "not decrypted")
                outcomes = [o for o in outcomes if o["change"] != ADDRESS_CHANGED]
                outcomes.append({"at": self.clock().isoformat(), "change": ADDRESS_CHANGED,
                                 "applied": False, "reason": f"decryption refused: {reason}"})
                view = replace(m.view, receiver=old.receiver)  # type: ignore[arg-type]
            result.changed += 1
            await asyncio.to_thread(self._save_changes, m, outcomes, view)

    async def _decrypt(
        self, shop: Shop, client: Any, batch: list[Mapped]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The receivers of `batch` through its platform's decryption call (in batches), each
        decryption or refusal logged (`pii-log`): (receivers, refusals) by platform order id."""
        connector = taobao if shop.platform == "taobao" else pinduoduo
        sealed = [m.sealed for m in batch if m.sealed is not None]
        t0 = time.perf_counter()
        receivers, refused = await asyncio.to_thread(connector.decrypt, client, sealed)
        t1 = time.perf_counter()
        await asyncio.to_thread(self._log_pii, shop, batch, receivers, refused)
        self.timings["decrypt"] += t1 - t0
        self.timings["pii_log"] += time.perf_counter() - t1
        return receivers, refused

    # ------------------------------------------------------------------ database
    def _record(self, shop: str, m: Mapped, outcome: str, reason: str | None) -> dict[str, Any]:
        pending = None
        if outcome == "pii_unavailable" and m.document is not None and m.sealed is not None:
            pending = {"document": m.document, "sealed": asdict(m.sealed)}
        return {
            "pending": pending,
            "order_id": m.order_id,
            "shop": shop,
            "platform_order_id": m.platform_order_id,
            "outcome": outcome,
            "reason": reason[:1000] if reason else None,
            "view": m.view.as_dict() if m.view is not None else {},
        }

    def _known(self, ids: list[str]) -> dict[str, ShopOrder]:
        out: dict[str, ShopOrder] = {}
        with transaction(self.factory) as s:
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                for row in s.exec(select(ShopOrder).where(col(ShopOrder.order_id).in_(chunk))):
                    out[row.order_id] = row
        return out

    def _save(self, records: list[dict[str, Any]]) -> None:
        now = self.clock()
        with transaction(self.factory) as s:
            ids = [r["order_id"] for r in records]
            existing: dict[str, ShopOrder] = {}
            for i in range(0, len(ids), 500):
                query = select(ShopOrder).where(col(ShopOrder.order_id).in_(ids[i : i + 500]))
                existing.update((row.order_id, row) for row in s.exec(query))
            for r in records:
                row = existing.get(r["order_id"])
                if row is None:
                    row = ShopOrder(first_seen=now, last_seen=now, changes=[], **r)
                    existing[r["order_id"]] = row
                elif row.outcome == "imported" and r["outcome"] != "imported":
                    continue  # handed to intake once: never taken back by a later reading
                else:
                    row.outcome, row.reason, row.view = r["outcome"], r["reason"], r["view"]
                    row.pending = r["pending"]
                    row.last_seen = now
                s.add(row)

    def _save_changes(
        self, m: Mapped, outcomes: list[dict[str, Any]], view: PlatformView | None = None
    ) -> None:
        view = view or m.view
        assert view is not None
        with transaction(self.factory) as s:
            row = s.get(ShopOrder, m.order_id)
            if row is None:
                return
            row.view = view.as_dict()
            row.changes = [*row.changes, *outcomes][-50:]
            row.last_seen = self.clock()
            s.add(row)

    def _log_pii(
        self, shop: Shop, batch: list[Mapped], receivers: dict[str, Any], refused: dict[str, str]
    ) -> None:
        now = self.clock()
        scene = taobao.SCENE if shop.platform == "taobao" else pinduoduo.SCENE
        with transaction(self.factory) as s:
            for m in batch:
                pid = m.platform_order_id
                if pid not in receivers and pid not in refused:
                    continue
                s.add(
                    PiiAccess(
                        at=now,
                        order_id=m.order_id,
                        shop=shop.name,
                        platform=shop.platform,
                        fields=["name", "phone", "address"],
                        scene=scene,
                        outcome="decrypted" if pid in receivers else "refused",
                    )
                )

    def _set_state(self, name: str, state: str, error: str | None) -> None:
        with transaction(self.factory) as s:
            shop = get_shop(s, name)
            if shop.state == "paused" and state != "paused":
                return
            shop.state, shop.last_error = state, (error or "")[:1000] or None
            shop.last_run = self.clock()
            s.add(shop)

    def _touch(self, name: str, error: str | None) -> None:
        with transaction(self.factory) as s:
            shop = get_shop(s, name)
            shop.last_run = self.clock()
            if error is not None:
                shop.last_error = error[:1000]
            s.add(shop)

    def _commit_held(self, name: str, result: WindowResult) -> None:
        with transaction(self.factory) as s:
            shop = get_shop(s, name)
            shop.imported = _imported(s, name)
            shop.last_run = self.clock()
            s.add(shop)

    def _commit(self, name: str, window: Window, result: WindowResult, backfill: bool) -> None:
        """The cursor moves (never back) with the counters, after the window's orders are in."""
        with transaction(self.factory) as s:
            shop = s.get(Shop, name, with_for_update=True) if _pg(s) else s.get(Shop, name)
            assert shop is not None
            if not backfill and _aware(shop.synced_through) < window.end:
                shop.synced_through = window.end
            shop.imported = _imported(s, name)
            shop.last_run = self.clock()
            if shop.state in ("syncing", "failing"):
                shop.state, shop.last_error = "syncing", None
            s.add(shop)


def _held_mapped(row: ShopOrder, platform: str) -> Mapped:
    """An order held `pii_unavailable` as it was mapped: its document and sealed receiver."""
    assert row.pending
    return Mapped(
        order_id=row.order_id,
        platform=platform,
        platform_order_id=row.platform_order_id,
        document=row.pending["document"],
        problems=[],
        view=PlatformView.from_dict(row.view) if row.view else None,
        sealed=Sealed(**row.pending["sealed"]),
    )


def _imported(session: Session, shop: str) -> int:
    """The shop's orders handed to intake (counted, so a repeated window never counts twice)."""
    query = select(func.count()).select_from(ShopOrder)
    query = query.where(ShopOrder.shop == shop, ShopOrder.outcome == "imported")
    return int(session.exec(query).one())


def _pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"
