"""The orders' commands: `submit`, `status`, `list`, and `load` of the reference data.

Reads go to the database (the source of truth); intake goes through the one intake check
(`commands.intake`), as the HTTP API's does.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from commands.context import CliError, Context, emit_json, out
from commands.intake import Entry, answer_entries, read_orders, start_answers


async def cmd_submit(ctx: Context, args: argparse.Namespace) -> int:
    """One line per document, in file order: started, duplicate, or `rejected: <field>:
    <reason>; ...`. Every document is read and checked on its own (`commands.intake`), so a bad
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
    from reads.queries import order_status

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
    from reads import localtime
    from service import timeline

    tz = ctx.settings.timezone
    out(f"created {localtime.local(status['created_at'], tz, '%Y-%m-%d %H:%M:%S')}  "
        f"(times in {localtime.label(tz)})")
    out("timeline:")
    for e in timeline.sentences(status["events"])[-args.last:]:
        out(f"  {localtime.local(e['at'], tz, '%m-%d %H:%M:%S')}  {e['zh']}  {e['en']}")
    return 0


def cmd_list(ctx: Context, args: argparse.Namespace) -> int:
    from reads.queries import BadCursor, add_waiting_skus, page_orders

    if not 1 <= args.limit <= 1000:
        raise CliError(f"--limit must be between 1 and 1000, not {args.limit}")
    try:
        with ctx.session() as session:
            rows, next_cursor = page_orders(
                session, stage=args.stage, flag=args.flag, waiting_for=args.waiting_for,
                limit=args.limit, cursor=args.cursor, sort=args.sort,
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
    from reads import localtime

    tz = ctx.settings.timezone
    out(f"created (times in {localtime.label(tz)})")
    for r in rows:
        extra = f"  waits for {', '.join(r['waiting_skus'])}" if r.get("waiting_skus") else ""
        created = localtime.local(r.get("created_at"), tz, "%Y-%m-%d %H:%M")
        if r.get("ship_by"):
            extra += f"  ship by {localtime.local(r['ship_by'], tz, '%Y-%m-%d %H:%M')}"
        out(f"{r['order_id']:<24} {created:<17} {r['stage']:<18} {r['waiting_for'] or '-':<10} "
            f"{','.join(r['flags'])}{extra}")
    out(f"{len(rows)} order(s)" + (f"; next page: --cursor {next_cursor}" if next_cursor else ""))
    return 0


def cmd_load(ctx: Context, a: argparse.Namespace) -> int:
    from cli import shipping as desk
    from inventory.ledger import LedgerError
    from reads.queries import load_reference

    if a.kind == "carriers":  # the shipping desk's reference data
        return desk.load_carriers(ctx, a.file)

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
            desk.load_extras(session, a.kind, items, a.file)  # barcodes, senders
    except LedgerError as exc:
        raise CliError(f"{a.file}: nothing loaded: {exc}") from exc
    out(f"loaded {count} {a.kind} record(s)")
    return 0


def add_parsers(sub: Any) -> None:
    ld = sub.add_parser("load", help="load reference data (idempotent upsert)")
    ld.add_argument("kind", choices=["catalog", "warehouses", "stock", "carriers"])
    ld.add_argument("file")
    ld.set_defaults(handler=cmd_load)

    s = sub.add_parser("submit", help="start one workflow per valid order")
    s.add_argument("files", nargs="+")
    s.add_argument("--progress", action="store_true", help="show a progress bar even when not on a terminal")
    s.set_defaults(handler=cmd_submit)

    st = sub.add_parser("status", help="one order's stage, findings, lines, shipments, timeline")
    st.add_argument("order_id")
    st.add_argument("--json", action="store_true")
    st.add_argument("--last", type=int, default=20, help="timeline entries to show")
    st.set_defaults(handler=cmd_status)

    ls = sub.add_parser("list", help="orders, oldest first")
    ls.add_argument("--stage")
    ls.add_argument("--flag")
    ls.add_argument("--waiting-for")
    ls.add_argument("--limit", type=int, default=1000, help="orders per page (1-1000, default 1000)")
    ls.add_argument("--cursor", help="the next-page cursor a previous page printed")
    ls.add_argument("--sort", choices=["created", "ship_by"], default="created",
                    help="created: oldest first (default); ship_by: the queue's order, the soonest "
                         "platform ship-by time first, then the orders without one oldest first")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=cmd_list)
