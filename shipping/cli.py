"""The desk's subcommands of `oms` (SPEC §5.11): carriers, waybills, parcels, labels, verify.

`add_parsers` adds them to starter.py's parser and `COMMANDS` maps them to handlers, so the
desk's whole command line lives here and starter.py only registers it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ops.context import CliError, Context, emit_json, out


def load_carriers(ctx: Context, path: str) -> int:
    from shipping.reference import BadReference
    from shipping.reference import load_carriers as load

    try:
        items = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CliError(f"{path}: {exc}") from exc
    try:
        with ctx.session() as session:
            count = load(session, items)
    except BadReference as exc:
        raise CliError(f"{path}: nothing loaded:\n  " + str(exc).replace("\n", "\n  ")) from exc
    out(f"loaded {count} carriers record(s)")
    return 0


def load_extras(session: Any, kind: str, items: list[Any], path: str) -> None:
    """The barcodes and senders of a catalog or warehouses file (called by `oms load`)."""
    from shipping.reference import load_extras as extras

    errors = extras(session, kind, items)
    if errors:
        raise CliError(f"{path}: nothing loaded:\n  " + "\n  ".join(errors))


def cmd_waybills(ctx: Context, a: argparse.Namespace) -> int:
    from shipping import pool

    if a.waybills_command == "load":
        try:
            text = Path(a.file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"{a.file}: {exc}") from exc
        numbers, errors = pool.read_numbers(text)
        if errors:
            raise CliError(f"{a.file}: nothing loaded:\n  " + "\n  ".join(errors[:20]))
        if not numbers:
            raise CliError(f"{a.file}: no waybill numbers in it")
        try:
            with ctx.session() as session:
                answer = pool.load(session, a.carrier, numbers)
        except pool.PoolProblem as exc:
            raise CliError(str(exc)) from exc
        out(f"{a.carrier}: {answer['added']} added, {answer['skipped']} known before and "
            f"skipped, {answer['free']} free")
        return 0
    with ctx.session() as session:
        rows = pool.status(session)
    if a.json:
        emit_json(rows)
        return 0
    if not rows:
        out("no carrier takes its waybills from a pool")
    for r in rows:
        out(f"{r['carrier']:8} free {r['free']:>7}  used {r['used']:>7}"
            + (f"  LOW (below {r['low_at']})" if r["low"] else ""))
    return 0


def cmd_parcels(ctx: Context, a: argparse.Namespace) -> int:
    from models.tables import Order
    from shipping.parcels import parcels_of

    with ctx.session() as session:
        if session.get(Order, a.order_id) is None:
            raise CliError(f"unknown order {a.order_id}")
        rows = parcels_of(session, a.order_id)
    if a.json:
        emit_json([{k: r[k] for k in ("parcel_id", "carrier", "waybill", "orders", "state",
                                      "weight_g")} | {"lines": [
            {"order_id": ln["order_id"], "sku": ln["sku"], "qty": ln["qty"]} for ln in r["lines"]
        ]} for r in rows])
        return 0
    if not rows:
        out(f"{a.order_id}: no parcel yet")
    for r in rows:
        out(f"{r['parcel_id']}  {r['carrier'] or '-'} {r['waybill'] or '(no waybill)'}  "
            f"{r['state']}" + (f"  held: {r['hold']}" if r["hold"] else ""))
        out(f"  orders: {', '.join(r['orders'])}")
        for ln in r["lines"]:
            out(f"  {ln['sku']} x {ln['qty']}  (scanned {ln['scanned']})")
    return 0


def cmd_pick_carrier(ctx: Context, a: argparse.Namespace) -> int:
    from shipping.parcels import ParcelProblem, pick_carrier

    try:
        with ctx.session() as session:
            parcel = pick_carrier(session, a.parcel_id, a.carrier, by="cli")
    except ParcelProblem as exc:
        raise CliError(f"refused: {exc}") from exc
    out(f"{parcel['parcel_id']}: carrier {parcel['carrier']} ({parcel['carrier_reason']})")
    return 0


def cmd_labels(ctx: Context, a: argparse.Namespace) -> int:
    from shipping.desk import LabelProblem, labels_for
    from shipping.parcels import ParcelProblem

    try:
        size = a.size or ctx.settings.policy.shipping.label_size
        pdf, printed = labels_for(ctx.factory, a.order_ids, size=size)
    except (LabelProblem, ParcelProblem) as exc:
        raise CliError(str(exc)) from exc
    Path(a.out).write_bytes(pdf)
    for p in printed:
        out(f"{p['waybill']}  {p['parcel_id']}  orders {', '.join(p['orders'])}")
    out(f"{len(printed)} label(s) written to {a.out}")
    return 0


def add_parsers(sub: Any) -> None:
    lb = sub.add_parser("labels", help="the labels of orders' parcels, one PDF (waybills issued)")
    lb.add_argument("order_ids", nargs="+", metavar="ORDER_ID")
    lb.add_argument("--size", choices=["76x130", "100x180"], default=None)
    lb.add_argument("--out", required=True, help="the PDF file to write")

    wb = sub.add_parser("waybills", help="waybill number pools: load a range, what is left")
    wb_sub = wb.add_subparsers(dest="waybills_command", required=True)
    wl = wb_sub.add_parser("load", help="add numbers (one a line) to a carrier's pool")
    wl.add_argument("carrier")
    wl.add_argument("file")
    ws = wb_sub.add_parser("status", help="free and used numbers per carrier")
    ws.add_argument("--json", action="store_true")

    pa = sub.add_parser("parcels", help="an order's parcels: carrier, waybill, lines, state")
    pa.add_argument("order_id")
    pa.add_argument("--json", action="store_true")

    pc = sub.add_parser("pick-carrier", help="a clerk's carrier for a parcel (e.g. no_carrier)")
    pc.add_argument("parcel_id")
    pc.add_argument("carrier")


COMMANDS: dict[str, Any] = {
    "labels": cmd_labels,
    "waybills": cmd_waybills,
    "parcels": cmd_parcels,
    "pick-carrier": cmd_pick_carrier,
}


