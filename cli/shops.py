"""`oms shops add|set|list|pause|resume|token|sync` and `oms pii-log` (SPEC §5.9)."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from commands.context import CliError, Context, emit_json, out
from platforms.shops import ShopError


def add_parsers(sub: Any) -> None:
    sh = sub.add_parser("shops", help="platform shops: add, set, list, pause, resume, token, sync")
    sh.set_defaults(handler=cmd_shops)
    ss = sh.add_subparsers(dest="shops_command", required=True)
    add = ss.add_parser("add", help="add a shop and start its sync")
    add.add_argument("name")
    add.add_argument("--platform", required=True, help="taobao | pdd (jd, douyin, shopify: later)")
    add.add_argument("--app-key", required=True)
    add.add_argument("--app-secret", required=True, help="stored encrypted, never shown again")
    add.add_argument("--session", help="the session / access token (stored encrypted)")
    add.add_argument("--api-url", help="the platform's gateway (default: its production URL)")
    add.add_argument("--poll-every", default="PT1M", help="ISO 8601 duration (default PT1M)")
    add.add_argument("--since", help="sync from (ISO time; default: an hour ago)")
    add.add_argument("--ship-within", default="PT48H", help="Taobao ship-by after payment")
    add.add_argument("--carrier-ids", help="the platform's carrier ids, e.g. SF=44,ZTO=115")
    add.add_argument("--merge", choices=("on", "off"), default="on")
    add.add_argument("--json", action="store_true")
    st = ss.add_parser("set", help="change a shop's settings after add (what is left out stays)")
    st.add_argument("name")
    st.add_argument("--api-url", help="the platform's gateway")
    st.add_argument("--poll-every", help="ISO 8601 duration: the sync's interval")
    st.add_argument("--ship-within", help="Taobao ship-by after payment (ISO 8601 duration)")
    st.add_argument("--carrier-ids", help="the platform's carrier ids (replaces them; '' clears)")
    st.add_argument("--merge", choices=("on", "off"), help="merge this shop's parcels or not")
    st.add_argument("--json", action="store_true")
    ls = ss.add_parser("list", help="each shop: state, synced through, imported, last error")
    ls.add_argument("--json", action="store_true")
    for verb, text in (("pause", "stop its sync"), ("resume", "restart its sync")):
        p = ss.add_parser(verb, help=text)
        p.add_argument("name")
    tk = ss.add_parser("token", help="a renewed session token; what waited for it goes on")
    tk.add_argument("name")
    tk.add_argument("--session", required=True)
    sy = ss.add_parser("sync", help="the next window now, or a backfill of --since..--until")
    sy.add_argument("name")
    sy.add_argument("--since")
    sy.add_argument("--until")
    sy.add_argument("--wait", action="store_true", help="wait and print what it imported")
    sy.add_argument("--json", action="store_true")
    pl = sub.add_parser("pii-log", help="every decryption of a buyer's data through a platform")
    pl.set_defaults(handler=cmd_pii_log)
    pl.add_argument("--order")
    pl.add_argument("--json", action="store_true")


def _commands(ctx: Context) -> Any:
    from commands.shops import ShopCommands
    from runtime.codec import CodecConfigError, key_ring

    try:
        ring = key_ring(ctx.settings)
    except CodecConfigError as exc:
        raise CliError(f"codec key ring: {exc}") from exc
    return ShopCommands(ctx.factory, ctx.settings, ring)


def _time(field: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise CliError(f"--{field}: not an ISO time like 2026-11-26T10:00:00+08:00") from None


def _row(shop: dict[str, Any]) -> str:
    error = f"  ({shop['last_error']})" if shop.get("last_error") else ""
    return (
        f"{shop['name']:<20} {shop['platform']:<7} {shop['state']:<14} "
        f"synced through {shop['synced_through']}  imported {shop['imported']}  "
        f"last run {shop['last_run'] or '-'}{error}"
    )


async def cmd_shops(ctx: Context, a: argparse.Namespace) -> int:
    commands = _commands(ctx)
    try:
        if a.shops_command == "list":
            shops = commands.list()
            if a.json:
                keys = ("name", "platform", "state", "synced_through", "imported", "last_error")
                emit_json([{k: s[k] for k in keys} | {"last_run": s["last_run"]} for s in shops])
            else:
                for shop in shops:
                    out(_row(shop))
                if not shops:
                    out("no shops yet: oms shops add NAME --platform ...")
            return 0
        client = await ctx.client()
        if a.shops_command == "add":
            raw = {
                "name": a.name,
                "platform": a.platform,
                "app_key": a.app_key,
                "app_secret": a.app_secret,
                "session": a.session,
                "api_url": a.api_url,
                "poll_every": a.poll_every,
                "since": a.since,
                "ship_within": a.ship_within,
                "carrier_ids": a.carrier_ids,
                "merge": a.merge == "on",
            }
            shop = await commands.add(client, {k: v for k, v in raw.items() if v is not None})
            if a.json:
                emit_json(shop)
            else:
                out(
                    f"shop {shop['name']} added ({shop['platform']}, {shop['state']}); "
                    f"syncing from {shop['synced_through']}; schedule {shop['schedule']}"
                )
            return 0
        if a.shops_command == "set":
            raw = {"api_url": a.api_url, "poll_every": a.poll_every, "ship_within": a.ship_within,
                   "carrier_ids": a.carrier_ids,
                   "merge": None if a.merge is None else a.merge == "on"}
            shop = await commands.set(client, a.name, {k: v for k, v in raw.items() if v is not None})
            if a.json:
                emit_json(shop)
            else:
                what = ", ".join(shop["changed"]) or "nothing (the values were already so)"
                out(f"shop {shop['name']}: changed {what}")
            return 0
        if a.shops_command in ("pause", "resume"):
            shop = await getattr(commands, a.shops_command)(client, a.name)
            out(_row(shop))
            return 0
        if a.shops_command == "token":
            shop = await commands.token(client, a.name, a.session)
            out(f"shop {shop['name']}: token renewed; {shop['state']}")
            return 0
        answer = await commands.sync(
            client,
            a.name,
            since=_time("since", a.since),
            until=_time("until", a.until),
            wait=a.wait,
        )
        if a.json:
            emit_json(answer)
        elif not a.wait:
            out(f"shop {a.name}: sync started ({answer['started']})")
        else:
            out(
                f"shop {a.name}: {answer['windows']} windows, {answer['imported']} imported, "
                f"{answer['duplicates']} already in, {answer['rejected']} rejected, "
                f"{answer['held']} held"
            )
            for order_id in answer["orders"]:
                out(f"  {order_id}")
            for problem in answer["problems"]:
                out(f"  rejected: {problem}")
        return 0
    except ShopError as exc:
        raise CliError(str(exc)) from exc


def cmd_pii_log(ctx: Context, a: argparse.Namespace) -> int:
    rows = _commands(ctx).pii_log(a.order)
    if a.json:
        emit_json(
            [
                {k: r[k] for k in ("at", "order_id", "platform", "fields", "scene")}
                | {"outcome": r["outcome"]}
                for r in rows
            ]
        )
        return 0
    for r in rows:
        out(
            f"{r['at']}  {r['order_id']:<32} {r['platform']:<7} {','.join(r['fields']):<20} "
            f"scene {r['scene']}  {r['outcome']}"
        )
    if not rows:
        out("no decryptions logged")
    return 0
