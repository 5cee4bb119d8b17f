"""The operator's housekeeping: stock and the outbox, the report, keys (the API's and the payload
codec's), webhooks, the PII purge, and the HTTP service on its own (`serve`)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from commands.context import CliError, Context, emit_json, out


def cmd_stock(ctx: Context, a: argparse.Namespace) -> int:
    from inventory.audit import audit
    from reads.queries import stock_rows

    with ctx.session() as session:
        if a.audit:
            problems = audit(session)
            for p in problems:
                out(f"MISMATCH {p}")
            out("ledger audit: " + ("OK, every figure matches its movements" if not problems else f"{len(problems)} problem(s)"))
            return 1 if problems else 0
        rows = stock_rows(session, a.sku)
    if a.json:
        emit_json(rows)
        return 0
    out(f"{'sku':<20} {'warehouse':<10} {'on_hand':>8} {'reserved':>9} {'available':>10}")
    for r in rows:
        out(f"{r['sku']:<20} {r['warehouse']:<10} {r['on_hand']:>8} {r['reserved']:>9} {r['available']:>10}")
    return 0


def cmd_events(ctx: Context, a: argparse.Namespace) -> int:
    from outbox.store import list_events

    with ctx.session() as session:
        rows = list_events(session, order_id=a.order)
    data = [
        {"id": e.id, "order_id": e.order_id, "type": e.type, "status": e.status, "attempts": e.attempts,
         "created_at": e.created_at.isoformat(), "last_error": e.last_error, "payload": e.payload}
        for e in rows
    ]
    banner = _disabled_webhooks(ctx)
    if a.json:
        emit_json(data)
        for line in banner:  # stdout stays one JSON document
            sys.stderr.write(line + "\n")
        return 0
    for e in data:
        out(f"{e['created_at'][:19]} {e['status']:<9} {e['type']:<22} {e['order_id'] or '-':<20} {e['id']}")
    out(f"{len(data)} event(s)")
    for line in banner:
        out(line)
    return 0


def _disabled_webhooks(ctx: Context) -> list[str]:
    from outbox.store import endpoints

    with ctx.session() as session:
        return [
            f"webhook {e.url} DISABLED since {e.disabled_at:%Y-%m-%d %H:%M:%S} ({e.reason}); "
            f"events for it are held: `oms webhooks enable {e.url}`"
            for e in endpoints(session)
            if e.status == "disabled"
        ]


def cmd_keys_rotate_codec(ctx: Context, a: argparse.Namespace) -> int:
    """`oms keys rotate-codec`: a new payload-codec key first; the old ones keep decoding."""
    from runtime.codec import CodecConfigError, rotate

    try:
        rotation = rotate(ctx.settings)
    except CodecConfigError as exc:
        raise CliError(f"payload codec: {exc}") from exc
    older = [k.id for k in rotation.ring[1:]]
    if a.json:
        emit_json(
            {
                "new_key_id": rotation.key.id,
                "keys": [k.id for k in rotation.ring],
                "written": str(rotation.written) if rotation.written else None,
                **({} if rotation.written else {"OMS_CODEC_KEYS": rotation.env_value()}),
            }
        )
        return 0
    if rotation.written:
        out(f"codec key {rotation.key.id} added to {rotation.written}; it seals from now on")
        out(f"older keys still open what they sealed: {', '.join(older)}")
        out("running workers and services load it when they first meet it; restart them to seal with it")
        return 0
    out(f"new codec key {rotation.key.id} (OMS_CODEC_KEYS is set: nothing was written)")
    out("roll it out in two steps (README: Rotating the codec key):")
    out("  1. everywhere, the new key AFTER the current ones (every process can open it):")
    out(f"     OMS_CODEC_KEYS={','.join(k.text() for k in rotation.ring[1:])},{rotation.key.text()}")
    out("  2. once every worker, service and CLI has it, the new key FIRST (it seals):")
    out(f"     OMS_CODEC_KEYS={rotation.env_value()}")
    out(f"keep {', '.join(older)} as long as histories sealed with them are kept")
    return 0


def cmd_webhooks(ctx: Context, a: argparse.Namespace) -> int:
    """`oms webhooks list|enable URL|new-secret`: the webhook URLs' delivery state."""
    from outbox.store import enable_endpoint, endpoints, held_events
    from outbox.webhooks import new_secret

    if a.webhooks_command == "new-secret":
        out(new_secret())
        return 0
    if a.webhooks_command == "list":
        with ctx.session() as session:
            rows = endpoints(session)
            held = len(held_events(session))
        configured = ctx.settings.webhook_url
        if configured and all(r.url != configured for r in rows):
            out(f"{configured}  enabled")
        for r in rows:
            since = f" since {r.disabled_at:%Y-%m-%d %H:%M:%S} ({r.reason})" if r.status == "disabled" else ""
            out(f"{r.url}  {r.status}{since}")
        if not configured and not rows:
            out("no webhook URL configured (OMS_WEBHOOK_URL); events stay in the outbox")
        out(f"{held} event(s) held")
        return 0
    with ctx.session() as session:
        enabled = enable_endpoint(session, a.url, by=os.environ.get("USER"))
    if not enabled:
        raise CliError(f"webhook {a.url} is not disabled: nothing to enable")
    out(f"webhook {a.url} enabled")
    if a.url != ctx.settings.webhook_url:
        out("it is not this process's OMS_WEBHOOK_URL: held events are left for a worker configured with it")
        return 0
    return asyncio.run(_redeliver(ctx))


async def _redeliver(ctx: Context) -> int:
    import httpx

    from outbox.store import redeliver_held
    from outbox.webhooks import WebhookConfigError, WebhookSender

    async with httpx.AsyncClient(timeout=httpx.Timeout(ctx.settings.webhook_timeout)) as http:
        try:
            sender = WebhookSender.from_settings(http, ctx.settings)
        except WebhookConfigError as exc:
            raise CliError(str(exc)) from exc
        assert sender is not None
        counts = await redeliver_held(ctx.factory, sender)
    out(
        f"held events: {counts['delivered']} delivered, {counts['failed']} failed, "
        f"{counts['still_held']} still held"
    )
    return 0 if counts["still_held"] == 0 else 1


def cmd_purge_pii(ctx: Context, a: argparse.Namespace) -> int:
    """`oms purge-pii --older-than P90D`: mask buyer data of orders that ended long ago."""
    from pydantic import TypeAdapter, ValidationError

    from privacy.purge import purge_pii

    try:
        older_than = TypeAdapter(timedelta).validate_python(a.older_than)
    except ValidationError:
        raise CliError(f"--older-than: {a.older_than!r} is not a duration (ISO 8601 like P90D, or seconds)") from None
    if older_than < timedelta(0):
        raise CliError("--older-than must not be negative")
    result = purge_pii(ctx.factory, older_than)
    if a.json:
        emit_json({"cutoff": result.cutoff.isoformat(), "purged": result.orders})
        return 0
    out(f"{len(result.orders)} order(s) that ended before {result.cutoff:%Y-%m-%d %H:%M} UTC purged of buyer data")
    return 0


def cmd_resend_write_back(ctx: Context, a: argparse.Namespace) -> int:
    """`oms resend-write-back ORDER --note TEXT`: the order's refused write-backs sent again at
    their shop's next sync run, once what the platform refused for is settled."""
    import getpass

    from models.db import transaction
    from platforms.writeback import ResendRefused, resend

    try:
        with transaction(ctx.factory) as session:
            sent = resend(session, a.order_id, by=a.by or getpass.getuser(), note=a.note)
    except ResendRefused as exc:
        raise CliError(str(exc)) from None
    if a.json:
        emit_json({"order_id": a.order_id, "resent": sent})
        return 0
    for item in sent:
        out(f"{a.order_id}: {item['carrier']} {item['tracking_no']} sent again at shop "
            f"{item['shop']}'s next sync (now: oms shops sync {item['shop']})")
    return 0


def cmd_clear_flag(ctx: Context, a: argparse.Namespace) -> int:
    """`oms clear-flag ORDER FLAG --note TEXT`: a clerk settled what an outside flag asked for
    (a write-back the platform refused, settled on the platform)."""
    import getpass

    from models.db import transaction
    from orders.store import FlagNotCleared, clear_outside_flag

    try:
        with transaction(ctx.factory) as session:
            flags = clear_outside_flag(session, a.order_id, a.flag, by=a.by or getpass.getuser(),
                                       note=a.note)
    except FlagNotCleared as exc:
        raise CliError(str(exc)) from None
    if a.json:
        emit_json({"order_id": a.order_id, "cleared": a.flag, "flags": flags})
    else:
        out(f"{a.order_id}: {a.flag} cleared; flags now: {', '.join(flags) or 'none'}")
    return 0


def cmd_report(ctx: Context, a: argparse.Namespace) -> int:
    from commands.report import write_report

    with ctx.session() as session:
        path = write_report(session, Path(a.out), tz=ctx.settings.timezone)
    out(f"report written: {path}")
    return 0


def cmd_keys(ctx: Context, a: argparse.Namespace) -> int:
    """`keys create|list|revoke`: the HTTP API's keys (only a hash is stored)."""
    from service.keys import KeyProblem, create_key, list_keys, revoke_key

    try:
        with ctx.session() as session:
            if a.keys_command == "create":
                key = create_key(session, name=a.name, role=a.role)
            elif a.keys_command == "revoke":
                revoke_key(session, a.name)
            else:
                keys = list_keys(session)
    except KeyProblem as exc:
        raise CliError(str(exc)) from exc
    if a.keys_command == "create":
        if a.json:
            emit_json({"name": a.name, "role": a.role, "key": key})
        else:
            out(f"key {a.name} ({a.role}): {key}")
            out("keep it now: it is shown only once (the database keeps only its hash)")
    elif a.keys_command == "revoke":
        out(f"key {a.name} revoked")
    elif getattr(a, "json", False):
        emit_json(keys)
    else:
        for k in keys:
            state = f"revoked {k['revoked_at'][:19]}" if k["revoked_at"] else "active"
            out(f"{k['name']:<24} {k['role']:<10} {k['prefix']}…  created {k['created_at'][:19]}  {state}")
        out(f"{len(keys)} key(s)")
    return 0


def add_keys_parser(sub: Any) -> Any:
    """`keys` and its subcommands; returns them, for more subcommands to join (rotate-codec)."""
    from service.keys import ROLES

    k = sub.add_parser("keys", help="keys: the HTTP API's (create, list, revoke), the codec's")
    ks = k.add_subparsers(dest="keys_command", required=True)
    kc = ks.add_parser("create", help="make a key (shown once)")
    kc.add_argument("--role", required=True, choices=ROLES)
    kc.add_argument("--name", required=True)
    kc.add_argument("--json", action="store_true", help='print {"name", "role", "key"}')
    kl = ks.add_parser("list", help="every key: name, role, created, revoked")
    kl.add_argument("--json", action="store_true")
    kr = ks.add_parser("revoke", help="revoke a key at once, everywhere")
    kr.add_argument("name")
    return ks


async def cmd_serve(ctx: Context, a: argparse.Namespace) -> int:
    """`serve`: the HTTP service alone (API, console, codec endpoints, metrics)."""
    from privacy.search_keys import with_dev_search_key
    from service.server import ServiceError, serve_forever

    settings = with_dev_search_key(ctx.settings) if a.dev else ctx.settings
    try:
        return await serve_forever(settings, dev=a.dev)
    except ServiceError as exc:
        raise CliError(str(exc)) from exc


def add_serve_parser(sub: Any) -> argparse.ArgumentParser:
    sv = sub.add_parser("serve", help="the HTTP service: API, console, codec endpoints, metrics")
    sv.add_argument(
        "--dev", action="store_true",
        help="development: keep a session secret under OMS_HOME, codec endpoints open on loopback",
    )
    return sv


def add_parsers(sub: Any) -> None:
    sk = sub.add_parser("stock", help="on_hand, reserved, available per SKU and warehouse")
    sk.add_argument("sku", nargs="?")
    sk.add_argument("--json", action="store_true")
    sk.add_argument("--audit", action="store_true", help="recompute everything from the movements")
    sk.set_defaults(handler=cmd_stock)

    ev = sub.add_parser("events", help="the outbox")
    ev.add_argument("--order")
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(handler=cmd_events)

    rp = sub.add_parser("report", help="the operations report (HTML + JSON)")
    rp.add_argument("--out", default="reports")
    rp.set_defaults(handler=cmd_report)

    from service.keys import ROLES

    k = sub.add_parser("keys", help="keys: the HTTP API's (create, list, revoke), the codec's")
    ks = k.add_subparsers(dest="keys_command", required=True)
    kc = ks.add_parser("create", help="make a key (shown once)")
    kc.add_argument("--role", required=True, choices=ROLES)
    kc.add_argument("--name", required=True)
    kc.add_argument("--json", action="store_true", help='print {"name", "role", "key"}')
    kl = ks.add_parser("list", help="every key: name, role, created, revoked")
    kl.add_argument("--json", action="store_true")
    kr = ks.add_parser("revoke", help="revoke a key at once, everywhere")
    kr.add_argument("name")
    for parser in (kc, kl, kr):
        parser.set_defaults(handler=cmd_keys)
    rc = ks.add_parser("rotate-codec", help="add a new payload-codec key; old ones keep decoding")
    rc.add_argument("--json", action="store_true")
    rc.set_defaults(handler=cmd_keys_rotate_codec)

    sv = sub.add_parser("serve", help="the HTTP service: API, console, codec endpoints, metrics")
    sv.add_argument(
        "--dev", action="store_true",
        help="development: keep a session secret under OMS_HOME, codec endpoints open on loopback",
    )
    sv.set_defaults(handler=cmd_serve)

    wh = sub.add_parser("webhooks", help="webhook URLs: state, re-enable after 410 Gone, new secret")
    wh_sub = wh.add_subparsers(dest="webhooks_command", required=True)
    wh_sub.add_parser("list", help="each URL's delivery state and the held events")
    en = wh_sub.add_parser("enable", help="re-enable a URL disabled by 410 Gone and send what was held")
    en.add_argument("url")
    wh_sub.add_parser("new-secret", help="print a fresh whsec_ secret for OMS_WEBHOOK_SECRETS")
    wh.set_defaults(handler=cmd_webhooks)

    cf = sub.add_parser("clear-flag", help="clear a flag raised beside the order (platform_ship_refused) once settled")
    cf.add_argument("order_id")
    cf.add_argument("flag")
    cf.add_argument("--note", help="what was done (in the order's timeline)")
    cf.add_argument("--by", help="who (default: this login)")
    cf.add_argument("--json", action="store_true")
    cf.set_defaults(handler=cmd_clear_flag)

    rw = sub.add_parser("resend-write-back",
                        help="send an order's refused write-backs to its platform again, once settled")
    rw.add_argument("order_id")
    rw.add_argument("--note", help="what was settled (in the order's timeline)")
    rw.add_argument("--by", help="who (default: this login)")
    rw.add_argument("--json", action="store_true")
    rw.set_defaults(handler=cmd_resend_write_back)

    pp = sub.add_parser("purge-pii", help="mask buyer name, phone, address detail of orders ended long ago")
    pp.add_argument("--older-than", default="P90D", help="ISO 8601 duration or seconds (default P90D)")
    pp.add_argument("--json", action="store_true")
    pp.set_defaults(handler=cmd_purge_pii)
