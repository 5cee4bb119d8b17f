"""The shipping desk's subcommands of `oms` (SPEC §5.11): waybills, parcels, labels, verify,
split-parcel, pick-carrier; `load carriers` and the barcodes / senders of `load catalog|
warehouses` are the desk's part of `oms load` (cli/orders.py calls in here)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from commands.context import CliError, Context, emit_json, out


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


async def _resume_held(ctx: Context, carrier: str) -> int:
    """Parcels that waited for numbers get them now; their orders are told (`parcel_ready`)."""
    from commands.shipping import tell_ready
    from shipping.desk import resume_pool_holds

    served = resume_pool_holds(ctx.factory, carrier)
    if not served:
        return 0
    try:
        client = await ctx.client()
    except CliError as exc:
        out(f"warning: {exc}: the orders are not told yet")
        client = None
    for parcel in served:
        out(f"  {parcel['parcel_id']} waited for a number: waybill {parcel['waybill']}")
        if client is not None:
            await tell_ready(client, parcel)
    return 0


async def cmd_waybills(ctx: Context, a: argparse.Namespace) -> int:
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
        return await _resume_held(ctx, a.carrier)
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
    from shipping.parcels import json_view, parcels_of

    with ctx.session() as session:
        if session.get(Order, a.order_id) is None:
            raise CliError(f"unknown order {a.order_id}")
        rows = parcels_of(session, a.order_id)
    if a.json:
        emit_json([json_view(r) for r in rows])
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


async def cmd_pick_carrier(ctx: Context, a: argparse.Namespace) -> int:
    from commands.shipping import pick_and_issue
    from shipping.parcels import ParcelProblem

    try:
        client = await ctx.client()
    except CliError as exc:  # picked all the same; the order's flag clears when it is told
        out(f"warning: {exc}")
        client = None
    try:
        parcel = await pick_and_issue(client, ctx.factory, a.parcel_id, a.carrier, by="cli")
    except ParcelProblem as exc:
        raise CliError(f"refused: {exc}") from exc
    out(f"{parcel['parcel_id']}: carrier {parcel['carrier']} ({parcel['carrier_reason']}), "
        + (f"waybill {parcel['waybill']}" if parcel["waybill"] else f"no waybill yet: {parcel['note']}"))
    return 0


async def cmd_labels(ctx: Context, a: argparse.Namespace) -> int:
    from commands.shipping import due, ship_parcel
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
    if due("print", ctx.settings.policy.shipping.ship_on):  # shipped once printed
        client = await ctx.client()
        for p in printed:
            for o in await ship_parcel(client, ctx.factory, p["parcel_id"]):
                out(f"  shipped {o['order_id']}: " + ("accepted" if o["accepted"] else o["reason"]))
    return 0


async def cmd_verify(ctx: Context, a: argparse.Namespace) -> int:
    """The packing check from a shell: each scan in order, then the weight (SPEC §5.11)."""
    from commands.shipping import due, ship_parcel
    from models.db import transaction
    from shipping import packing

    policy = ctx.settings.policy
    report: dict[str, Any] = {"waybill": a.waybill, "scans": [], "complete": False,
                              "weight": None, "state": None}
    refused = False
    grams = None
    if a.weight_g is not None:
        try:
            grams = packing.parse_weight(a.weight_g)
        except ValueError as exc:
            raise CliError(str(exc)) from exc
    parcel_id = None
    reached: list[str] = []
    for barcode in a.scan or []:
        try:
            with transaction(ctx.factory) as session:
                got = packing.scan(session, a.waybill, barcode)
                parcel_id = packing.P.by_waybill(session, a.waybill).parcel_id  # type: ignore[union-attr]
        except packing.PackingRefused as exc:
            got = packing.ScanAnswer(barcode, False, str(exc))
        refused |= not got.accepted
        report["scans"].append({"barcode": barcode, "accepted": got.accepted, "reason": got.reason})
        report["complete"], report["state"] = got.complete, got.state
        if got.accepted and got.state == "verified":
            reached.append("verify")
    if grams is not None:
        try:
            with transaction(ctx.factory) as session:
                w = packing.weigh(session, a.waybill, grams, policy.weigh)
                parcel_id = packing.P.by_waybill(session, a.waybill).parcel_id  # type: ignore[union-attr]
            report["weight"] = {"accepted": w.accepted, "reason": w.reason,
                                "expected_g": list(w.expected_g) if w.expected_g else None}
            report["state"] = w.state
            refused |= not w.accepted
            if w.accepted:
                reached.append("weigh")
        except packing.PackingRefused as exc:
            report["weight"] = {"accepted": False, "reason": str(exc), "expected_g": None}
            refused = True
    if parcel_id and any(due(r, policy.shipping.ship_on) for r in reached):
        outcomes = await ship_parcel(await ctx.client(), ctx.factory, parcel_id)
        report["shipped"] = outcomes
        if all(o["accepted"] for o in outcomes):
            report["state"] = "shipped"
    if a.json:
        emit_json(report)
    else:
        for s in report["scans"]:
            out(f"{s['barcode']:>16}  " + ("ok" if s["accepted"] else f"REFUSED: {s['reason']}"))
        if report["weight"] is not None:
            w = report["weight"]
            out(f"{'weight':>16}  " + ("ok" if w["accepted"] else f"REFUSED: {w['reason']}"))
        out(f"{a.waybill}: {report['state'] or 'not packed'}"
            + (" (complete)" if report["complete"] else ""))
        for o in report.get("shipped", []):
            out(f"  shipped {o['order_id']}: " + ("accepted" if o["accepted"] else o["reason"]))
    return 1 if refused else 0


def cmd_split_parcel(ctx: Context, a: argparse.Namespace) -> int:
    from shipping.desk import split_parcel
    from shipping.parcels import ParcelProblem

    try:
        parts = split_parcel(ctx.factory, a.waybill)
    except ParcelProblem as exc:
        raise CliError(f"refused: {exc}") from exc
    for p in parts:
        out(f"{p['parcel_id']}  {p['carrier'] or '-'} {p['waybill'] or '(no waybill yet)'}  "
            f"orders {', '.join(p['orders'])}")
    return 0


def add_parsers(sub: Any) -> None:
    sp = sub.add_parser("split-parcel", help="undo a merge before printing: one parcel an order")
    sp.add_argument("waybill")

    ve = sub.add_parser("verify", help="the packing check: scans in order, then the weight")
    ve.add_argument("waybill")
    ve.add_argument("--scan", nargs="+", metavar="BARCODE", default=[])
    ve.add_argument("--weight-g", help="the parcel's weight in grams")
    ve.add_argument("--json", action="store_true")

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
    sp.set_defaults(handler=cmd_split_parcel)
    ve.set_defaults(handler=cmd_verify)
    lb.set_defaults(handler=cmd_labels)
    wb.set_defaults(handler=cmd_waybills)
    pa.set_defaults(handler=cmd_parcels)
    pc.set_defaults(handler=cmd_pick_carrier)
