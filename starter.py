"""The operator's command line: `python starter.py COMMAND` (also installed as `oms`).

Reads go to the database (the source of truth); actions go to the order
workflows as Temporal updates (`ops.actions`): the workflow itself answers,
accepted with the order's new state, or refused with its reason (exit code 1).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

from models.settings import Settings
from ops.context import CliError, Context, emit_json, out
from ops.intake import Entry, answer_entries, read_orders, start_answers


async def cmd_submit(ctx: Context, args: argparse.Namespace) -> int:
    """One line per document, in file order: started, duplicate, or `rejected: <field>:
    <reason>; ...`. Every document is read and checked on its own (`ops.intake`), so a bad
    one never stops the others; exit 1 if any was rejected."""
    entries: list[Entry] = []
    for name in args.files:
        entries.extend(read_orders(Path(name)))
    answers = answer_entries(entries)
    client = await ctx.client()
    todo = sum(1 for a in answers if a.result is None)
    progress = todo >= 50 and (sys.stderr.isatty() or args.progress)
    done = 0

    def started() -> None:
        nonlocal done
        done += 1
        if progress and (done % 10 == 0 or done == todo):
            width = 30
            filled = int(width * done / todo)
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{todo}")
            sys.stderr.flush()

    await start_answers(client, ctx.settings, answers, on_started=started)
    if progress:
        sys.stderr.write("\n")
    for answer in answers:
        out(answer.line())
    return 1 if any(a.result == "rejected" for a in answers) else 0


def _status_or_fail(ctx: Context, order_id: str) -> dict[str, Any]:
    from activities.queries import order_status

    with ctx.session() as session:
        status = order_status(session, order_id)
    if status is None:
        raise CliError(f"unknown order {order_id!r}")
    return status


def cmd_status(ctx: Context, args: argparse.Namespace) -> int:
    status = _status_or_fail(ctx, args.order_id)
    if args.json:
        emit_json(status)
        return 0
    out(f"order {status['order_id']}  stage {status['stage']}  waiting for {status['waiting_for'] or '-'}")
    out(f"flags: {', '.join(status['flags']) or '-'}")
    if status["findings"]:
        out("findings:")
        for f in status["findings"]:
            out(f"  [{f['class']}] {f['code']} ({f['field']}): {f.get('message') or ''}")
    out("lines:")
    for li in status["lines"]:
        out(
            f"  {li['line_no']}. {li['sku']} x{li['qty']}: reserved {li['reserved']}, shipped {li['shipped']}, "
            f"backordered {li['backordered']}, cancelled {li['cancelled']}"
        )
    for s in status["shipments"]:
        out(f"shipment {s['id']} from {s['warehouse']}: {s['status']} {s['carrier'] or ''} {s['tracking_no'] or ''}")
    for t in status["transfers"]:
        out(f"transfer {t['id']}: {t['sku']} x{t['qty']} {t['from']} → {t['to']} ({t['status']})")
    if status["refund"]:
        out(f"refund: {status['refund']['amount']} ({status['refund']['status']})")
    if status["cancel_reason"]:
        out(f"cancelled: {status['cancel_reason']}")
    from service import localtime, timeline

    tz = ctx.settings.timezone
    out(f"created {localtime.local(status['created_at'], tz, '%Y-%m-%d %H:%M:%S')}  "
        f"(times in {localtime.label(tz)})")
    out("timeline:")
    for e in timeline.sentences(status["events"])[-args.last:]:
        out(f"  {localtime.local(e['at'], tz, '%m-%d %H:%M:%S')}  {e['zh']}  {e['en']}")
    return 0


def cmd_list(ctx: Context, args: argparse.Namespace) -> int:
    from activities.queries import BadCursor, add_waiting_skus, page_orders

    if not 1 <= args.limit <= 1000:
        raise CliError(f"--limit must be between 1 and 1000, not {args.limit}")
    try:
        with ctx.session() as session:
            rows, next_cursor = page_orders(
                session, stage=args.stage, flag=args.flag, waiting_for=args.waiting_for,
                limit=args.limit, cursor=args.cursor,
            )
            if args.stage == "backordered" and rows:
                add_waiting_skus(session, rows)
    except BadCursor as exc:
        raise CliError(f"--cursor: {exc}") from exc
    if args.json:
        emit_json(rows)
        if next_cursor:  # stdout stays the list of SPEC §5.3
            sys.stderr.write(f"next page: --cursor {next_cursor}\n")
        return 0
    from service import localtime

    tz = ctx.settings.timezone
    out(f"created (times in {localtime.label(tz)})")
    for r in rows:
        extra = f"  waits for {', '.join(r['waiting_skus'])}" if r.get("waiting_skus") else ""
        created = localtime.local(r.get("created_at"), tz, "%Y-%m-%d %H:%M")
        out(f"{r['order_id']:<24} {created:<17} {r['stage']:<18} {r['waiting_for'] or '-':<10} "
            f"{','.join(r['flags'])}{extra}")
    out(f"{len(rows)} order(s)" + (f"; next page: --cursor {next_cursor}" if next_cursor else ""))
    return 0


async def run_action(ctx: Context, order_id: str, action: str, body: dict[str, Any]) -> int:
    """One action, answered by the order's workflow: accepted with its new state, or refused (exit 1)."""
    from ops.actions import BadBody, NotFound, act

    client = await ctx.client()
    try:
        answer = await act(client, order_id, action, _clean(body))
    except (BadBody, NotFound) as exc:
        raise CliError(str(exc)) from exc
    return _print_answer(order_id, action, answer)


def _print_answer(order_id: str, action: str, answer: Any) -> int:
    if not answer.accepted:
        raise CliError(f"{action} refused for {order_id}: {answer.reason}")
    order = answer.order or {}
    waiting = f", waiting for {order['waiting_for']}" if order.get("waiting_for") else ""
    out(f"{order_id}: {action} accepted; the order is now {order.get('stage')}{waiting}")
    return 0


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


async def cmd_confirm(ctx: Context, a: argparse.Namespace) -> int:
    body = {
        "phone": a.phone, "name": a.name, "province": a.province, "city": a.city,
        "district": a.district, "detail": a.detail, "postal_code": a.postal_code,
        "remarks": a.remarks, "delivery_window": a.delivery_window,
        "parcel_locker": True if a.parcel_locker else None, "note": a.note, "channel": a.channel,
    }
    return await run_action(ctx, a.order_id, "confirm", body)


async def cmd_pay(ctx: Context, a: argparse.Namespace) -> int:
    return await run_action(ctx, a.order_id, "pay", {"amount": a.amount, "txn": a.txn, "method": a.method})


async def cmd_decide(ctx: Context, a: argparse.Namespace) -> int:
    return await run_action(ctx, a.order_id, "decide", {"decision": a.policy, "note": a.note})


async def cmd_approve(ctx: Context, a: argparse.Namespace) -> int:
    return await run_action(ctx, a.order_id, "approve", {"note": a.note})


async def cmd_reject(ctx: Context, a: argparse.Namespace) -> int:
    return await run_action(ctx, a.order_id, "reject", {"reason": a.reason})


async def cmd_resume(ctx: Context, a: argparse.Namespace) -> int:
    return await run_action(ctx, a.order_id, "resume", {"note": a.note})


async def cmd_delivered(ctx: Context, a: argparse.Namespace) -> int:
    return await run_action(ctx, a.order_id, "delivered", {"shipment": a.shipment})


async def cmd_warehouse(ctx: Context, a: argparse.Namespace) -> int:
    body = {
        "shipment": a.shipment,
        "carrier": getattr(a, "carrier", None),
        "tracking": getattr(a, "tracking", None),
        "parcels": getattr(a, "parcels", None),
        "weight_g": getattr(a, "weight_g", None),
    }
    return await run_action(ctx, a.order_id, a.command, body)


async def cmd_pick_exception(ctx: Context, a: argparse.Namespace) -> int:
    body = {"sku": a.sku, "qty": a.qty, "reason": a.reason, "shipment": a.shipment}
    return await run_action(ctx, a.order_id, "pick-exception", body)


async def cmd_cancel(ctx: Context, a: argparse.Namespace) -> int:
    return await run_action(ctx, a.order_id, "cancel", {"reason": a.reason})


async def cmd_transfer_arrived(ctx: Context, a: argparse.Namespace) -> int:
    from ops.actions import NotFound, transfer_arrived

    try:
        answer = await transfer_arrived(await ctx.client(), ctx.factory, a.transfer_id)
    except NotFound as exc:
        raise CliError(str(exc)) from exc
    return _print_answer(a.transfer_id, "transfer-arrived", answer)


async def cmd_restock(ctx: Context, a: argparse.Namespace) -> int:
    from ops.actions import BadBody, restock

    try:
        served = await restock(await ctx.client(), ctx.factory, ctx.settings, a.sku, a.qty, a.warehouse)
    except BadBody as exc:
        raise CliError(f"restock refused: {exc}") from exc
    warehouse = served[0]["warehouse"] if served else a.warehouse
    out(f"restocked {a.qty} x {a.sku}" + (f" at {warehouse}" if warehouse else ""))
    for item in served:
        out(f"  → {item['order_id']} line {item['line_no']}: {item['qty']} reserved")
    return 0


def cmd_load(ctx: Context, a: argparse.Namespace) -> int:
    from activities.ledger import LedgerError
    from activities.queries import load_reference

    try:
        items = json.loads(Path(a.file).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CliError(f"{a.file}: {exc}") from exc
    if not isinstance(items, list):
        raise CliError(f"{a.file}: expected a JSON array of {a.kind} records")
    try:
        with ctx.session() as session:
            count, errors = load_reference(session, a.kind, items)
            if errors:
                raise CliError(f"{a.file}: nothing loaded:\n  " + "\n  ".join(errors))
    except LedgerError as exc:
        raise CliError(f"{a.file}: nothing loaded: {exc}") from exc
    out(f"loaded {count} {a.kind} record(s)")
    return 0


def cmd_stock(ctx: Context, a: argparse.Namespace) -> int:
    from activities.ledger import audit
    from activities.queries import stock_rows

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
    from activities.outbox import list_events

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
    from activities.outbox import endpoints

    with ctx.session() as session:
        return [
            f"webhook {e.url} DISABLED since {e.disabled_at:%Y-%m-%d %H:%M:%S} ({e.reason}); "
            f"events for it are held: `oms webhooks enable {e.url}`"
            for e in endpoints(session)
            if e.status == "disabled"
        ]


# ------------------------------------------------------- privacy (helper priv)


def cmd_keys_rotate_codec(ctx: Context, a: argparse.Namespace) -> int:
    """`oms keys rotate-codec`: a new payload-codec key first; the old ones keep decoding."""
    from activities.codec import CodecConfigError, rotate

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
    from activities.outbox import enable_endpoint, endpoints, held_events
    from activities.webhooks import new_secret

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

    from activities.outbox import redeliver_held
    from activities.webhooks import WebhookConfigError, WebhookSender

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

    from activities.pii import purge_pii

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


def cmd_report(ctx: Context, a: argparse.Namespace) -> int:
    from ops.report import write_report

    with ctx.session() as session:
        path = write_report(session, Path(a.out), tz=ctx.settings.timezone)
    out(f"report written: {path}")
    return 0


async def cmd_demo(ctx: Context, a: argparse.Namespace) -> int:
    from ops.demo import run_demo

    return await run_demo(ctx, keep=a.keep)


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
    from service.server import ServiceError, serve_forever

    try:
        return await serve_forever(ctx.settings, dev=a.dev)
    except ServiceError as exc:
        raise CliError(str(exc)) from exc


def add_serve_parser(sub: Any) -> argparse.ArgumentParser:
    sv = sub.add_parser("serve", help="the HTTP service: API, console, codec endpoints, metrics")
    sv.add_argument(
        "--dev", action="store_true",
        help="development: keep a session secret under OMS_HOME, codec endpoints open on loopback",
    )
    return sv


# ------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="oms", description="Order-management system on Temporal.")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="start the embedded stack and run sample orders down every path")
    d.add_argument("--keep", action="store_true", help="leave the stack running to browse the Web UI")

    ld = sub.add_parser("load", help="load reference data (idempotent upsert)")
    ld.add_argument("kind", choices=["catalog", "warehouses", "stock"])
    ld.add_argument("file")

    s = sub.add_parser("submit", help="start one workflow per valid order")
    s.add_argument("files", nargs="+")
    s.add_argument("--progress", action="store_true", help="show a progress bar even when not on a terminal")

    st = sub.add_parser("status", help="one order's stage, findings, lines, shipments, timeline")
    st.add_argument("order_id")
    st.add_argument("--json", action="store_true")
    st.add_argument("--last", type=int, default=20, help="timeline entries to show")

    ls = sub.add_parser("list", help="orders, oldest first")
    ls.add_argument("--stage")
    ls.add_argument("--flag")
    ls.add_argument("--waiting-for")
    ls.add_argument("--limit", type=int, default=1000, help="orders per page (1-1000, default 1000)")
    ls.add_argument("--cursor", help="the next-page cursor a previous page printed")
    ls.add_argument("--json", action="store_true")

    c = sub.add_parser("confirm", help="buyer_confirmed, with corrections")
    c.add_argument("order_id")
    for opt in ("phone", "name", "province", "city", "district", "detail", "postal-code", "note", "remarks",
                "delivery-window"):
        c.add_argument(f"--{opt}")
    c.add_argument("--parcel-locker", action="store_true")
    c.add_argument("--channel", choices=["im", "sms", "phone"])

    pay = sub.add_parser("pay", help="payment_received")
    pay.add_argument("order_id")
    pay.add_argument("--amount", required=True)
    pay.add_argument("--txn", required=True)
    pay.add_argument("--method")

    de = sub.add_parser("decide", help="shortage_decision")
    de.add_argument("order_id")
    de.add_argument("policy", choices=["partial", "cancel", "wait", "transfer"])
    de.add_argument("--note")

    r = sub.add_parser("restock", help="stock in; handed to waiting orders first come first served")
    r.add_argument("sku")
    r.add_argument("qty", type=int)
    r.add_argument("--warehouse")

    ta = sub.add_parser("transfer-arrived", help="transfer_arrived")
    ta.add_argument("transfer_id")

    ap = sub.add_parser("approve")
    ap.add_argument("order_id")
    ap.add_argument("--note")
    rj = sub.add_parser("reject")
    rj.add_argument("order_id")
    rj.add_argument("--reason", required=True)

    for name in ("picked", "packed", "shipped"):
        w = sub.add_parser(name, help=f"warehouse event: {name}")
        w.add_argument("order_id")
        w.add_argument("--shipment", type=int)
        if name == "packed":
            w.add_argument("--parcels", type=int)
            w.add_argument("--weight-g", type=int)
        if name == "shipped":
            w.add_argument("--carrier")
            w.add_argument("--tracking")

    pe = sub.add_parser("pick-exception", help="damaged / missing units at picking")
    pe.add_argument("order_id")
    pe.add_argument("--sku", required=True)
    pe.add_argument("--qty", type=int, required=True)
    pe.add_argument("--reason", required=True, choices=["damaged", "missing"])
    pe.add_argument("--shipment", type=int)

    rs = sub.add_parser("resume", help="take an order off hold (a failed step runs again)")
    rs.add_argument("order_id")
    rs.add_argument("--note")
    dl = sub.add_parser("delivered", help="the carrier delivered (when orders complete on delivery)")
    dl.add_argument("order_id")
    dl.add_argument("--shipment", type=int)

    ca = sub.add_parser("cancel", help="cancel with compensation")
    ca.add_argument("order_id")
    ca.add_argument("--reason", required=True)

    sk = sub.add_parser("stock", help="on_hand, reserved, available per SKU and warehouse")
    sk.add_argument("sku", nargs="?")
    sk.add_argument("--json", action="store_true")
    sk.add_argument("--audit", action="store_true", help="recompute everything from the movements")

    ev = sub.add_parser("events", help="the outbox")
    ev.add_argument("--order")
    ev.add_argument("--json", action="store_true")

    rp = sub.add_parser("report", help="the operations report (HTML + JSON)")
    rp.add_argument("--out", default="reports")

    keys_sub = add_keys_parser(sub)
    add_serve_parser(sub)
    add_privacy_parsers(sub, keys_sub)
    return p


def add_privacy_parsers(sub: Any, keys_sub: Any) -> None:
    """`keys rotate-codec`, `webhooks list|enable|new-secret`, `purge-pii` (helper priv)."""
    rc = keys_sub.add_parser("rotate-codec", help="add a new payload-codec key; old ones keep decoding")
    rc.add_argument("--json", action="store_true")

    wh = sub.add_parser("webhooks", help="webhook URLs: state, re-enable after 410 Gone, new secret")
    wh_sub = wh.add_subparsers(dest="webhooks_command", required=True)
    wh_sub.add_parser("list", help="each URL's delivery state and the held events")
    en = wh_sub.add_parser("enable", help="re-enable a URL disabled by 410 Gone and send what was held")
    en.add_argument("url")
    wh_sub.add_parser("new-secret", help="print a fresh whsec_ secret for OMS_WEBHOOK_SECRETS")

    pp = sub.add_parser("purge-pii", help="mask buyer name, phone, address detail of orders ended long ago")
    pp.add_argument("--older-than", default="P90D", help="ISO 8601 duration or seconds (default P90D)")
    pp.add_argument("--json", action="store_true")


COMMANDS: dict[str, Any] = {
    "demo": cmd_demo,
    "load": cmd_load,
    "submit": cmd_submit,
    "status": cmd_status,
    "list": cmd_list,
    "confirm": cmd_confirm,
    "pay": cmd_pay,
    "decide": cmd_decide,
    "restock": cmd_restock,
    "transfer-arrived": cmd_transfer_arrived,
    "approve": cmd_approve,
    "reject": cmd_reject,
    "picked": cmd_warehouse,
    "packed": cmd_warehouse,
    "shipped": cmd_warehouse,
    "pick-exception": cmd_pick_exception,
    "resume": cmd_resume,
    "delivered": cmd_delivered,
    "cancel": cmd_cancel,
    "stock": cmd_stock,
    "events": cmd_events,
    "report": cmd_report,
    "keys": lambda ctx, a: COMMANDS_KEYS.get(a.keys_command, cmd_keys)(ctx, a),
    "serve": cmd_serve,
    "webhooks": cmd_webhooks,
    "purge-pii": cmd_purge_pii,
}

COMMANDS_KEYS: dict[str, Any] = {"rotate-codec": cmd_keys_rotate_codec}


def run(argv: Iterable[str] | None = None) -> int:
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    try:
        settings = Settings()
    except ValueError as exc:  # pydantic's ValidationError: one line per bad setting
        errors = getattr(exc, "errors", lambda: [])()
        for e in errors or [{"loc": ("settings",), "msg": str(exc)}]:
            sys.stderr.write(f"setting {'.'.join(map(str, e['loc']))}: {e['msg']}\n")
        return 2
    from activities.runtime import configure_logging

    if args.command != "demo":
        settings = settings.model_copy(update={"log_level": "WARNING"})
    configure_logging(settings)
    ctx = Context(settings)
    handler = COMMANDS[args.command]
    try:
        result = handler(ctx, args)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        return int(result or 0)
    except CliError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    finally:
        ctx.close()


def main() -> None:
    try:
        code = run()
    except BrokenPipeError:  # `oms list | head`
        code = 0
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        pass
    # Skip interpreter finalisation: the Temporal client's native threads can
    # abort the process while Python tears down (seen as exit 134 after a signal).
    os._exit(code)


if __name__ == "__main__":
    main()
