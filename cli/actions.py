"""The actions' commands, one subcommand per action of the registry (`workflows.order.actions`):
its options are the action's fields (the API's names, with dashes), each answered by the order's
workflow, accepted with its new state, or refused with its reason (exit code 1). And `restock`,
which stocks in and hands the stock to the orders that wait for it.
"""

from __future__ import annotations

import argparse
from typing import Any

from commands.actions import BadBody, NotFound, act
from commands.context import CliError, Context, out
from workflows.order.actions import ACTIONS, ActionSpec, Field


async def cmd_action(ctx: Context, a: argparse.Namespace) -> int:
    """One order action, its body from the options (the API's field names)."""
    spec: ActionSpec = a.spec
    body = {f.name: getattr(a, f.positional or f.name) for f in spec.fields}
    body = {k: v for k, v in body.items() if v not in (None, False)}
    client = await ctx.client()
    try:
        answer = await act(client, a.order_id, spec.name, body)
    except (BadBody, NotFound) as exc:
        raise CliError(str(exc)) from exc
    return _print_answer(a.order_id, spec.name, answer)


def _print_answer(order_id: str, action: str, answer: Any) -> int:
    if not answer.accepted:
        raise CliError(f"{action} refused for {order_id}: {answer.reason}")
    order = answer.order or {}
    waiting = f", waiting for {order['waiting_for']}" if order.get("waiting_for") else ""
    out(f"{order_id}: {action} accepted; the order is now {order.get('stage')}{waiting}")
    return 0


async def cmd_transfer_arrived(ctx: Context, a: argparse.Namespace) -> int:
    from commands.actions import transfer_arrived

    try:
        answer = await transfer_arrived(await ctx.client(), ctx.factory, a.transfer_id)
    except NotFound as exc:
        raise CliError(str(exc)) from exc
    return _print_answer(a.transfer_id, a.spec.name, answer)


async def cmd_restock(ctx: Context, a: argparse.Namespace) -> int:
    from commands.actions import restock

    try:
        served = await restock(await ctx.client(), ctx.factory, ctx.settings, a.sku, a.qty, a.warehouse)
    except BadBody as exc:
        raise CliError(f"restock refused: {exc}") from exc
    warehouse = served[0]["warehouse"] if served else a.warehouse
    out(f"restocked {a.qty} x {a.sku}" + (f" at {warehouse}" if warehouse else ""))
    for item in served:
        out(f"  → {item['order_id']} line {item['line_no']}: {item['qty']} reserved")
    return 0


def _add_field(parser: argparse.ArgumentParser, f: Field) -> None:
    kind: dict[str, Any] = {}
    if f.kind in ("number", "shipment"):
        kind["type"] = int
    if f.choices:
        kind["choices"] = [str(value) for value, _ in f.choices]
    if f.positional:
        parser.add_argument(f.positional, **kind)
    elif f.kind == "checkbox":
        parser.add_argument(f"--{f.name.replace('_', '-')}", action="store_true")
    else:
        parser.add_argument(f"--{f.name.replace('_', '-')}", required=f.required, **kind)


def add_parsers(sub: Any) -> None:
    """A subcommand for each action of the registry, and `restock`."""
    for spec in ACTIONS.values():
        parser = sub.add_parser(spec.name, help=spec.help)
        if spec.by_transfer:
            parser.add_argument("transfer_id")
            parser.set_defaults(handler=cmd_transfer_arrived, spec=spec)
            continue
        parser.add_argument("order_id")
        for f in spec.fields:
            _add_field(parser, f)
        parser.set_defaults(handler=cmd_action, spec=spec)

    r = sub.add_parser("restock", help="stock in; handed to waiting orders first come first served")
    r.add_argument("sku")
    r.add_argument("qty", type=int)
    r.add_argument("--warehouse")
    r.set_defaults(handler=cmd_restock)
