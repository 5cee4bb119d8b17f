"""The operator's command line: `python starter.py COMMAND` (also installed as `oms`).

Each group of commands adds its own subcommands (`orders`, `actions`, `admin`, `demo`); every
command runs in one `Context` (settings, database, Temporal client, built once).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Iterable

from cli import actions, admin, orders, search, shipping, shops
from commands.context import CliError, Context
from models.settings import Settings


async def cmd_demo(ctx: Context, a: argparse.Namespace) -> int:
    from cli.demo import run_demo

    return await run_demo(ctx, keep=a.keep)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="oms", description="Order-management system on Temporal.")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="start the embedded stack and run sample orders down every path")
    d.add_argument("--keep", action="store_true", help="leave the stack running to browse the Web UI")
    d.set_defaults(handler=cmd_demo)
    orders.add_parsers(sub)
    actions.add_parsers(sub)
    admin.add_parsers(sub)
    shipping.add_parsers(sub)
    shops.add_parsers(sub)  # issue 19: shops, pii-log
    search.add_parsers(sub)  # issue 21: search reindex
    return p


def run(argv: Iterable[str] | None = None) -> int:
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    try:
        settings = Settings()
    except ValueError as exc:  # pydantic's ValidationError: one line per bad setting
        errors = getattr(exc, "errors", lambda: [])()
        for e in errors or [{"loc": ("settings",), "msg": str(exc)}]:
            sys.stderr.write(f"setting {'.'.join(map(str, e['loc']))}: {e['msg']}\n")
        return 2
    from runtime.logs import configure_logging

    if args.command != "demo":
        settings = settings.model_copy(update={"log_level": "WARNING"})
    configure_logging(settings)
    ctx = Context(settings)
    handler = args.handler
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

